"""numpy meshes into Blender, fast (foreach_set, no Python object per vertex or voxel): the one place that
builds Blender meshes from arrays.

A reconstructed object keeps its probability grid as a custom property (`voxlift_probs`, float32, flattened
[x, y, z] C order, plus `voxlift_resolution`), so the threshold, mesh mode and greedy option in the
object's `voxlift` settings re-mesh it without running the network again.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from .. import meshing
from ..io.constants import MATERIAL_COLOR, MATERIAL_NAME, MATERIAL_ROUGHNESS

PROBS_KEY = "voxlift_probs"
RES_KEY = "voxlift_resolution"
MODEL_KEY = "voxlift_model"  # the model that made it: "starter" or its run's name
FOUND_KEY = "voxlift_found"  # how its picture's object was found (backend/framing.py)
THRESHOLD_MIN, THRESHOLD_MAX = 0.01, 0.99


def fill_mesh(
    mesh: bpy.types.Mesh, vertices: np.ndarray, faces: np.ndarray, smooth: bool | None = None
) -> None:
    """Replace the geometry of `mesh` with faces [F, N] (N corners each: triangles or quads) over vertices
    [V, 3]. `smooth` sets the shading (None leaves it)."""
    mesh.clear_geometry()
    v = np.ascontiguousarray(vertices, dtype=np.float32).reshape(-1, 3)
    f = np.ascontiguousarray(faces, dtype=np.int32)
    if f.ndim != 2:
        raise ValueError(f"faces must be [F, N] vertex indices, got shape {f.shape}")
    corners = f.shape[1]
    mesh.vertices.add(len(v))
    mesh.vertices.foreach_set("co", v.ravel())
    mesh.loops.add(f.size)
    mesh.loops.foreach_set("vertex_index", f.ravel())
    mesh.polygons.add(len(f))
    mesh.polygons.foreach_set("loop_start", np.arange(0, f.size, corners, dtype=np.int32))
    mesh.update()
    if smooth is True:
        mesh.shade_smooth()
    elif smooth is False:
        mesh.shade_flat()


def new_mesh(
    name: str, vertices: np.ndarray, faces: np.ndarray, smooth: bool | None = None
) -> bpy.types.Mesh:
    """A new mesh datablock holding faces [F, N] over vertices [V, 3] (see fill_mesh)."""
    mesh = bpy.data.meshes.new(name)
    fill_mesh(mesh, vertices, faces, smooth)
    return mesh


def voxlift_material() -> bpy.types.Material:
    """One shared, simple material: the look of io/constants.py (the glTF writer uses the same)."""
    mat = bpy.data.materials.get(MATERIAL_NAME)
    if mat is None:
        mat = bpy.data.materials.new(MATERIAL_NAME)
        mat.diffuse_color = MATERIAL_COLOR
        mat.roughness = MATERIAL_ROUGHNESS
        try:
            if mat.node_tree is None:  # Blender < 5: node trees are opt-in (5.0 deprecates use_nodes)
                mat.use_nodes = True
            bsdf = mat.node_tree.nodes.get("Principled BSDF")
            if bsdf is not None:
                bsdf.inputs["Base Color"].default_value = MATERIAL_COLOR
                bsdf.inputs["Roughness"].default_value = MATERIAL_ROUGHNESS
        except (AttributeError, KeyError, TypeError):
            pass  # the viewport colour above is enough
    return mat


def store_probs(obj: bpy.types.Object, probs: np.ndarray) -> None:
    p = np.ascontiguousarray(probs, dtype=np.float32)
    # Delete first: resizing an existing array property in place crashed Blender 5.0.1 here.
    forget_probs(obj)
    obj[PROBS_KEY] = p.ravel()
    obj[RES_KEY] = int(p.shape[0])


def forget_probs(obj: bpy.types.Object) -> None:
    """Drop the stored probabilities (the mesh stays; it can no longer be re-meshed)."""
    for key in (PROBS_KEY, RES_KEY):
        if key in obj:
            del obj[key]


def load_probs(obj: bpy.types.Object) -> np.ndarray | None:
    if PROBS_KEY not in obj or RES_KEY not in obj:
        return None
    r = int(obj[RES_KEY])
    out = np.empty(r**3, dtype=np.float32)
    out[:] = obj[PROBS_KEY]
    return out.reshape(r, r, r)


def rebuild(obj: bpy.types.Object) -> bool:
    """Re-mesh `obj` from its stored probabilities with its current settings; False if it has none."""
    probs = load_probs(obj)
    if probs is None or obj.type != "MESH":
        return False
    s = obj.voxlift
    verts, quads = meshing.mesh_from_probs(probs, s.mode.lower(), s.threshold, s.greedy)
    fill_mesh(obj.data, verts, quads, smooth=s.mode == "SMOOTH")
    return True


def new_object(
    name: str,
    probs: np.ndarray,
    *,
    mode: str = "CUBES",
    threshold: float = meshing.DEFAULT_THRESHOLD,
    greedy: bool = False,
    rotation_z: float = 0.0,
) -> bpy.types.Object:
    """A mesh object (not linked to any scene) from a probability grid, with the voxlift material.
    `rotation_z` (degrees) turns a viewer-centred grid back into the scene's frame."""
    mesh = bpy.data.meshes.new(name)
    obj = bpy.data.objects.new(name, mesh)
    store_probs(obj, probs)
    # Setting the properties runs their update callbacks; build once afterwards instead.
    obj.voxlift.building = True
    obj.voxlift.mode, obj.voxlift.threshold, obj.voxlift.greedy = mode, threshold, greedy
    obj.voxlift.building = False
    rebuild(obj)
    mesh.materials.append(voxlift_material())
    obj.rotation_euler = (0.0, 0.0, math.radians(rotation_z))
    return obj


def create_object(
    context, name: str, probs: np.ndarray, *, location=None, scale: float = 1.0, **kw
) -> bpy.types.Object:
    """new_object, linked to the active collection at the 3D cursor (or `location`), scaled uniformly by
    `scale`, selected and active."""
    obj = new_object(name, probs, **kw)
    context.collection.objects.link(obj)
    obj.location = context.scene.cursor.location if location is None else tuple(location)
    obj.scale = (scale, scale, scale)
    for other in context.view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj


def remove_object(obj: bpy.types.Object) -> None:
    """Remove an object and its mesh datablock."""
    mesh = obj.data
    bpy.data.objects.remove(obj)
    if mesh is not None and mesh.users == 0:
        bpy.data.meshes.remove(mesh)


def _on_change(self, context):
    if not self.building:
        rebuild(self.id_data)


def threshold_property(**kw):
    """The occupancy threshold, the same wherever it is set (panel, object settings)."""
    return bpy.props.FloatProperty(
        name="Threshold",
        description="Probability above which a voxel counts as filled: lower keeps more of what the model "
        "is unsure of, higher only what it is sure of",
        default=meshing.DEFAULT_THRESHOLD,
        min=THRESHOLD_MIN,
        max=THRESHOLD_MAX,
        **kw,
    )


def greedy_property(**kw):
    return bpy.props.BoolProperty(
        name="Merge faces",
        description="Merge coplanar voxel sides into larger rectangles (cubes mode)",
        default=False,
        **kw,
    )


def mode_property(**kw):
    return bpy.props.EnumProperty(
        name="Mesh",
        description="How the grid becomes a mesh: voxel cubes, or a smooth surface through the probabilities",
        items=meshing.MODE_ITEMS,
        default=meshing.MODE_ITEMS[0][0],
        **kw,
    )


class VoxliftObjectSettings(bpy.types.PropertyGroup):
    mode: mode_property(update=_on_change)
    threshold: threshold_property(update=_on_change)
    greedy: greedy_property(update=_on_change)
    building: bpy.props.BoolProperty(options={"HIDDEN", "SKIP_SAVE"})


def register():
    bpy.utils.register_class(VoxliftObjectSettings)
    bpy.types.Object.voxlift = bpy.props.PointerProperty(type=VoxliftObjectSettings)


def unregister():
    del bpy.types.Object.voxlift
    bpy.utils.unregister_class(VoxliftObjectSettings)
