"""Tiny chair/table datasets for the unpaired-model tests, made with numpy alone (no Blender).

Chairs are a seat, four legs and a back; tables a top and four legs, wider and lower. The grids are boxes
filled voxel by voxel; the images are the occupied voxels splatted through the dataset's own world_to_pixel
matrices with a z-buffer, brighter when nearer, so images and grids line up as in a rendered dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxlift.dataset_tools.camera import View, camera_matrix_world, world_to_pixel
from voxlift.dataset_tools.dataset import DatasetWriter

VIEWS = [(30.0, 25.0), (-30.0, 25.0), (150.0, 25.0), (90.0, 10.0)]


def make_views(image_size: int, views: int = 2) -> list[View]:
    out = []
    for az, el in VIEWS[:views]:
        m = camera_matrix_world(az, el, 2.6)
        out.append(View(az, el, 2.6, 40.0, world_to_pixel(m, 40.0, image_size)))
    return out


def _boxes(category: str, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Axis-aligned boxes (lo, hi) in the canonical cube [-0.5, 0.5]^3, Z up, front towards -Y."""
    leg = rng.uniform(0.08, 0.14)
    if category == "chair":
        w, d = rng.uniform(0.5, 0.75), rng.uniform(0.5, 0.75)
        seat_z, seat_t = rng.uniform(-0.1, 0.05), rng.uniform(0.08, 0.14)
        boxes = [
            ((-w / 2, -d / 2, seat_z), (w / 2, d / 2, seat_z + seat_t)),  # seat
            ((-w / 2, d / 2 - 0.12, seat_z), (w / 2, d / 2, 0.5)),
        ]  # back, at +Y
    else:
        w, d = rng.uniform(0.8, 1.0), rng.uniform(0.6, 0.95)
        seat_z, seat_t = rng.uniform(0.0, 0.25), rng.uniform(0.08, 0.14)
        boxes = [((-w / 2, -d / 2, seat_z), (w / 2, d / 2, seat_z + seat_t))]  # top
    for sx in (-1, 1):
        for sy in (-1, 1):
            x0 = w / 2 - leg if sx > 0 else -w / 2
            y0 = d / 2 - leg if sy > 0 else -d / 2
            boxes.append(((x0, y0, -0.5), (x0 + leg, y0 + leg, seat_z)))
    return [(np.array(lo), np.array(hi)) for lo, hi in boxes]


def voxelize_boxes(boxes, resolution: int) -> np.ndarray:
    c = -0.5 + (np.arange(resolution) + 0.5) / resolution
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    grid = np.zeros((resolution,) * 3, bool)
    for lo, hi in boxes:
        grid |= (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
    return grid


def splat(grid: np.ndarray, view: View, image_size: int, sub: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """uint8 image and alpha of the occupied voxels seen through `view` (nearest wins)."""
    r = grid.shape[0]
    idx = np.argwhere(grid).astype(np.float64)
    offsets = (np.stack(np.meshgrid(*[np.arange(sub)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) / sub
    pts = (idx[:, None, :] + offsets[None]).reshape(-1, 3) / r - 0.5
    h = np.c_[pts, np.ones(len(pts))] @ view.world_to_pixel.T
    u, v, w = h[:, 0] / h[:, 2], h[:, 1] / h[:, 2], h[:, 2]
    ui, vi = np.floor(u).astype(int), np.floor(v).astype(int)
    ok = (ui >= 0) & (ui < image_size) & (vi >= 0) & (vi < image_size)
    ui, vi, w = ui[ok], vi[ok], w[ok]
    depth = np.full((image_size, image_size), np.inf)
    np.minimum.at(depth, (vi, ui), w)
    seen = np.isfinite(depth)
    image = np.zeros((image_size, image_size), np.uint8)
    if seen.any():
        d = depth[seen]
        shade = 1.0 - (d - d.min()) / max(d.max() - d.min(), 1e-9)
        image[seen] = (80 + 175 * shade).astype(np.uint8)
    return image, (seen * 255).astype(np.uint8)


def make_dataset(
    path: str | Path,
    n_per_category: int = 24,
    image_size: int = 32,
    resolution: int = 16,
    views: int = 2,
    seed: int = 0,
) -> Path:
    """A dataset of n chairs and n tables (splits by hash of the id, as in every dataset)."""
    rng = np.random.default_rng(seed)
    vs = make_views(image_size, views)
    path = Path(path)
    with DatasetWriter(
        path, image_size=image_size, views_per_model=views, resolution=resolution, views=vs
    ) as w:
        for i in range(n_per_category):
            for cat in ("chair", "table"):
                grid = voxelize_boxes(_boxes(cat, rng), resolution)
                ims, als = zip(*(splat(grid, v, image_size) for v in vs))
                w.append(
                    id=f"{cat}-{seed}-{i:04d}",
                    category=cat,
                    source="synthetic",
                    images=np.stack(ims),
                    alpha=np.stack(als),
                    voxels=grid,
                    durable=False,
                )
    return path
