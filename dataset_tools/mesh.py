"""A triangle mesh as two numpy arrays, and the canonical frame every source is brought into.

Canonical frame (one rule for every source, see README "Canonical frame"):
  * right-handed, Z up, the model's front (where one sits on a chair) faces -Y, so Blender's Front view
    (numpad 1) looks at it; +X is on the viewer's right in that view.
  * the axis-aligned bounding box is centred on the origin and scaled uniformly so that its longest side
    is 1: the model fills the cube [-0.5, 0.5]^3 along its longest side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import VoxliftError

# OBJ's default diffuse colour (Kd) when a material gives none.
DEFAULT_DIFFUSE = (0.8, 0.8, 0.8)


@dataclass
class Material:
    """One material of a source (an MTL `newmtl`): what a renderer needs to show its colour."""

    name: str
    color: tuple[float, float, float] = DEFAULT_DIFFUSE  # Kd, in [0, 1] as the file writes it (sRGB-like)
    opacity: float = 1.0  # d (or 1 - Tr)
    texture: str | None = None  # map_Kd: the key of its bytes in MeshMaterials.textures, when they were found


@dataclass
class MeshMaterials:
    """Materials of a mesh, face by face (faces in the order of Mesh.faces)."""

    face_material: np.ndarray  # int32 [F]: index into `materials`, -1 where a face has none
    materials: list[Material]
    uv: np.ndarray | None = None  # float32 [F, 3, 2]: texture coordinates of each triangle's corners
    textures: dict[str, bytes] = field(default_factory=dict)  # image file bytes (PNG, JPEG...), by name


@dataclass
class Mesh:
    vertices: np.ndarray  # float64 [V, 3]
    faces: np.ndarray  # int64 [F, 3], triangles, 0-based
    # Reads the source's materials on demand (MTL colours, textures): the geometry path never pays for them.
    # Transforms keep it (they keep the faces' order). None: the source has no materials.
    materials_loader: Callable[[], MeshMaterials | None] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self):
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)

    def load_materials(self) -> MeshMaterials | None:
        """The source's materials, or None when it has none (or they cannot be read: they are optional)."""
        if self.materials_loader is None:
            return None
        found = self.materials_loader()
        if found is not None and len(found.face_material) != len(self.faces):
            return None  # a loader that disagrees with the geometry is not trusted
        return found

    def check(self, name: str = "mesh") -> Mesh:
        """Raise VoxliftError unless the mesh is usable: faces, finite vertices, indices in range."""
        if len(self.faces) == 0:
            raise VoxliftError(f"{name}: the mesh has no faces")
        if not np.isfinite(self.vertices).all():
            raise VoxliftError(f"{name}: the mesh has NaN or infinite vertex coordinates")
        if self.faces.min() < 0 or self.faces.max() >= len(self.vertices):
            raise VoxliftError(f"{name}: a face refers to a vertex that does not exist")
        return self

    def transformed(self, matrix: np.ndarray) -> Mesh:
        """A copy with vertices multiplied by a 3x3 (linear) or 4x4 (affine) matrix."""
        m = np.asarray(matrix, dtype=np.float64)
        v = self.vertices @ m[:3, :3].T
        if m.shape == (4, 4):
            v = v + m[:3, 3]
        return Mesh(v, self.faces.copy(), self.materials_loader)


# Rotations that take common source frames to the canonical one (Z up, front towards -Y). All are proper
# rotations (determinant +1): a source is never mirrored.
# Y-up frames with the front towards +Z (Sweet Home 3D's OBJ models, most OBJ exports): (x, y, z) -> (x, -z, y).
Y_UP_FRONT_PLUS_Z = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# ShapeNetCore v1 (`<synset>/<id>/model.obj`). Its README.txt: "The OBJ files have been pre-aligned so that
# the up direction is the +Y axis, and the front is the +X axis ... The X-Y plane is the bilateral symmetry
# plane for most categories." Front +X, up +Y: (x, y, z) -> (-z, -x, y).
SHAPENET_V1 = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# ShapeNetCore v2 (`<synset>/<id>/models/model_normalized.obj`). Its README.txt: "The OBJ files are now
# pre-aligned so that the up direction is the +Y axis, and the front is the -Z axis (this fixes the mirroring
# issue in ShapeNetCore v1). The Y-Z plane is the bilateral symmetry plane for most categories."
# Front -Z, up +Y: (x, y, z) -> (-x, z, y). (v2 = v1 turned 90 degrees about Y, so both land the same way.)
SHAPENET_V2 = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def normalize_to_unit_cube(mesh: Mesh) -> Mesh:
    """Centre the bounding box on the origin and scale its longest side to 1 (the canonical frame's rule)."""
    mesh.check()
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    extent = float((hi - lo).max())
    if not extent > 0:
        raise VoxliftError("mesh: all vertices coincide (zero-size bounding box)")
    return Mesh((mesh.vertices - (lo + hi) / 2) / extent, mesh.faces.copy(), mesh.materials_loader)


def to_canonical(mesh: Mesh, rotation: np.ndarray | None = None) -> Mesh:
    """Rotate a mesh from its source frame into the canonical one, then centre and scale it."""
    if rotation is not None:
        mesh = mesh.transformed(rotation)
    return normalize_to_unit_cube(mesh)
