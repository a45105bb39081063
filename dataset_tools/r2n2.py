"""The 3D-R2N2 release (Choy et al. 2016) converted as it is into a voxlift dataset (views differ per model).

Input layout:
    ROOT/ShapeNetRendering/<synset>/<id>/rendering/00.png .. 23.png   137x137 RGBA, rendered by Blender
    ROOT/ShapeNetRendering/<synset>/<id>/rendering/rendering_metadata.txt
        one line per view: azimuth elevation in-plane-rotation distance-ratio fov
    ROOT/ShapeNetVox32/<synset>/<id>/model.binvox                        32^3 grid of the ShapeNetCore v1 model

Camera model (from the public code that aligns these files: meshrcnn's shapenet/utils/coords.py, copied into
pytorch3d/datasets/r2n2/utils.py as compute_extrinsic_matrix, with the intrinsics in pytorch3d's r2n2.py):
  * The renderer imported ShapeNetCore v1's model.obj into Blender, which turns ShapeNet's Y-up frame into
    Blender's Z-up one: b = (x, -z, y).
  * The camera sits at distance = distance-ratio * 1.75 (MAX_CAMERA_DISTANCE) at
    b = distance * (cos az cos el, -sin az cos el, sin el), looks at the origin, +Z up (an ordinary Blender
    camera: looks down its local -Z, +Y up). The in-plane rotation is 0 in the release and is ignored, as
    meshrcnn and pytorch3d do.
  * Intrinsics: Blender's default 35 mm lens on a 32 mm sensor, focal 35/16 = 2.1875 in half-image units,
    i.e. a 49.13 degree field of view. The metadata's fov column (25) is NOT the field of view of the images
    (meshrcnn's K uses 2.1875); with fov 25 the objects would not fit in the frame.
Voxel grids: binvox's own index order decoded (read_binvox: [x, y, z]) follows the v1 mesh's axes (meshrcnn
aligns the decoded coordinates to the mesh's x, y, z by their bounding boxes); the header's translate and
scale place the grid in the mesh's coordinates: centre of voxel i = translate + (i + 0.5) / 32 * scale.
ShapeNetCore v1 is up +Y, front +X (mesh.SHAPENET_V1), so the grid is turned into voxlift's frame
(Z up, front -Y) with    ours[i, j, k] = r2n2[R-1-j, k, R-1-i]    (grid_to_canonical) and every view gets
the world_to_pixel matrix that maps voxlift's voxel centres (dataset voxel_to_world) onto its image.
In voxlift's convention a view of R2N2 azimuth az has azimuth -az (az 0 looks at the model's front).

Not checkable here: the release itself is not on this machine, so the tests check that these formulas are
self-consistent (a grid drawn with meshrcnn's camera lands on our projected voxels) and frame the release's
documented conventions; a first real import should be checked with `voxlift qa`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import intrinsics
from .errors import VoxliftError
from .mesh import SHAPENET_V1
from .shapenet import SYNSETS

RENDERINGS = "ShapeNetRendering"
VOXELS = "ShapeNetVox32"
VIEWS = 24
IMAGE_SIZE = 137
RESOLUTION = 32
MAX_CAMERA_DISTANCE = 1.75
FOCAL = 35.0 / 16.0  # Blender default: 35 mm lens, 32 mm sensor, in half-image units
FOV = math.degrees(2 * math.atan(1 / FOCAL))  # 49.13 degrees
# Blender's OBJ import of a Y-up file: b = (x, -z, y).
SHAPENET_TO_BLENDER = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])


@dataclass
class R2N2Model:
    synset: str
    model_id: str
    rendering_dir: Path
    binvox: Path

    @property
    def id(self) -> str:
        return f"{self.synset}/{self.model_id}"

    @property
    def category(self) -> str:
        return SYNSETS.get(self.synset, self.synset)


def read_metadata(path: Path, views: int = VIEWS) -> np.ndarray:
    """float64 [views, 5]: azimuth, elevation, in-plane rotation, distance ratio, fov (degrees)."""
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        raise VoxliftError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VoxliftError(f"{path}: cannot read ({exc})") from None
    if len(lines) < views:
        raise VoxliftError(f"{path}: {len(lines)} lines, expected {views} (one per view)")
    rows = []
    for n, ln in enumerate(lines[:views], 1):
        try:
            vals = [float(x) for x in ln.split()]
        except ValueError:
            vals = []
        if len(vals) != 5 or not np.isfinite(vals).all() or not 0 < vals[3] < 10:
            raise VoxliftError(
                f"{path}: line {n} is not 'azimuth elevation rotation distance-ratio fov': {ln!r}"
            )
        rows.append(vals)
    return np.array(rows)


def grid_to_canonical(grid: np.ndarray) -> np.ndarray:
    """R2N2 grid [x, y, z] in ShapeNet v1's frame (Y up, front +X) -> voxlift's [x, y, z] (Z up, front -Y)."""
    return np.ascontiguousarray(np.transpose(grid, (2, 0, 1))[::-1, ::-1, :])


def canonical_to_shapenet(translate, scale: float) -> np.ndarray:
    """4x4 affine taking a point of voxlift's cube [-0.5, 0.5]^3 to ShapeNet v1 coordinates of the same spot
    of the grid (inverse rotation of SHAPENET_V1, then the binvox header's scale and translation)."""
    m = np.eye(4)
    m[:3, :3] = scale * SHAPENET_V1.T
    m[:3, 3] = np.asarray(translate, float) + scale * 0.5
    return m


def blender_camera(azimuth: float, elevation: float, distance: float) -> np.ndarray:
    """matrix_world of the R2N2 renderer's camera in Blender's world (see the module docstring)."""
    az, el = math.radians(azimuth), math.radians(elevation)
    back = np.array([math.cos(az) * math.cos(el), -math.sin(az) * math.cos(el), math.sin(el)])
    right = np.array([math.sin(az), math.cos(az), 0.0])
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, distance * back
    return m


def camera_rows(metadata: np.ndarray, translate, scale: float, size: int = IMAGE_SIZE) -> np.ndarray:
    """float64 [V, 16] for the dataset's cameras.f64: voxlift azimuth, elevation, distance (in cube units),
    fov, then the 3x4 world_to_pixel taking voxlift's cube coordinates to pixels of the R2N2 image."""
    to_sn = canonical_to_shapenet(translate, scale)
    to_blender = np.eye(4)
    to_blender[:3, :3] = SHAPENET_TO_BLENDER
    k = intrinsics(FOV, size)
    rows = []
    for az, el, _roll, ratio, _fov in metadata:
        dist = ratio * MAX_CAMERA_DISTANCE
        cam = blender_camera(az, el, dist)
        p = k @ np.diag([1.0, -1.0, -1.0]) @ np.linalg.inv(cam)[:3] @ to_blender @ to_sn
        rows.append([(-az) % 360.0, el, dist / scale, FOV, *p.ravel()])
    return np.array(rows)


def rgba_to_gray_alpha(rgba: np.ndarray, background: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Straight-alpha RGBA (or RGB, gray) -> gray composited on `background` and alpha, as voxlift's renderer
    stores them (Rec. 709 luma)."""
    x = np.asarray(rgba, np.float32)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.shape[2] == 2:
        x = np.concatenate([np.repeat(x[..., :1], 3, axis=2), x[..., 1:]], axis=2)
    x /= 255.0
    a = x[..., 3] if x.shape[2] == 4 else np.ones(x.shape[:2], np.float32)
    lum = 0.2126 * x[..., 0] + 0.7152 * x[..., 1] + 0.0722 * x[..., 2]
    gray = lum * a + (1.0 - a) * (background / 255.0)

    def to_u8(z):
        return np.clip(np.rint(z * 255.0), 0, 255).astype(np.uint8)

    return to_u8(gray), to_u8(a)


def iter_r2n2(root: str | os.PathLike, categories: set[str] | None = None) -> Iterator[R2N2Model]:
    """Models with both renderings and a grid, sorted by (synset, id); `categories` are taxonomy names."""
    root = Path(root)
    rend, vox = root / RENDERINGS, root / VOXELS
    if not rend.is_dir() or not vox.is_dir():
        raise VoxliftError(f"{root}: not a 3D-R2N2 folder (needs {RENDERINGS}/ and {VOXELS}/ in it)")
    for sdir in sorted(p for p in rend.iterdir() if p.is_dir()):
        if categories is not None and SYNSETS.get(sdir.name, sdir.name) not in categories:
            continue
        for mdir in sorted(p for p in sdir.iterdir() if p.is_dir()):
            yield R2N2Model(
                sdir.name, mdir.name, mdir / "rendering", vox / sdir.name / mdir.name / "model.binvox"
            )


def load_r2n2(model: R2N2Model, views: int = VIEWS):
    """(gray [V,S,S], alpha [V,S,S], voxels bool [32,32,32], cameras [V,16]) in voxlift's frame."""
    from .binvox import read_binvox
    from .png import read_png

    if not model.binvox.is_file():
        raise VoxliftError(f"{model.binvox}: no such file (the model has renderings but no grid)")
    grid = read_binvox(model.binvox)
    vox = np.asarray(grid.voxels, bool)
    if vox.shape != (RESOLUTION,) * 3:
        raise VoxliftError(f"{model.binvox}: grid of {vox.shape}, expected {RESOLUTION}^3")
    scale = float(np.asarray(grid.scale).ravel()[0])
    if not (np.isfinite(scale) and scale > 0):
        raise VoxliftError(f"{model.binvox}: bad scale {scale}")
    metadata = read_metadata(model.rendering_dir / "rendering_metadata.txt", views)
    grays, alphas = [], []
    for v in range(views):
        path = model.rendering_dir / f"{v:02d}.png"
        image = read_png(path)
        if image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE) or image.dtype != np.uint8:
            raise VoxliftError(
                f"{path}: {image.shape[1]}x{image.shape[0]} {image.dtype} image, expected "
                f"{IMAGE_SIZE}x{IMAGE_SIZE} 8-bit"
            )
        g, a = rgba_to_gray_alpha(image)
        grays.append(g)
        alphas.append(a)
    return (
        np.stack(grays),
        np.stack(alphas),
        grid_to_canonical(vox),
        camera_rows(metadata, grid.translate, scale),
    )


def import_r2n2(
    root: str | os.PathLike,
    out: str | os.PathLike,
    categories: set[str] | None = None,
    limit: int | None = None,
    log: Callable[[str], None] = print,
    progress=None,
) -> dict:
    """Append every R2N2 model to the dataset `out` (resuming: models already there are skipped).
    Returns counts: added, existing, skipped."""
    from .dataset import DatasetWriter

    counts = {"added": 0, "existing": 0, "skipped": 0}
    models = list(iter_r2n2(root, categories))
    if limit is not None:
        models = models[:limit]
    with DatasetWriter(
        out,
        image_size=IMAGE_SIZE,
        views_per_model=VIEWS,
        resolution=RESOLUTION,
        views=None,
        extra_manifest={"origin": "3D-R2N2 (ShapeNetRendering + ShapeNetVox32)"},
    ) as writer:
        for model in progress(models) if progress else models:
            if model.id in writer:
                counts["existing"] += 1
                continue
            try:
                gray, alpha, voxels, cameras = load_r2n2(model)
            except VoxliftError as exc:
                log(f"skipped {model.id}: {exc}")
                writer.skip(model.id, "r2n2", str(exc))
                counts["skipped"] += 1
                continue
            writer.append(
                id=model.id,
                category=model.category,
                source="r2n2",
                images=gray,
                alpha=alpha,
                voxels=voxels,
                cameras=cameras,
                durable=False,
            )
            counts["added"] += 1
    return counts
