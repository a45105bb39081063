"""Tiny paired datasets made without Blender: procedural chair and table grids, splatted into images.

Each occupied voxel is sampled at a few points inside it; the points are projected with each view's
world_to_pixel and z-buffered, so the image is a depth-shaded silhouette and the alpha exactly the pixels
the grid covers: the same alignment the renderer guarantees, at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np

from voxlift.dataset_tools import DatasetWriter, fixed_views, make_view
from voxlift.dataset_tools.dataset import voxel_to_world

BACKGROUND = 255  # white, like a typical render background


def _box(grid, lo, hi):
    r = grid.shape[0]
    a = [int(np.clip(np.floor((v + 0.5) * r), 0, r)) for v in lo]
    b = [int(np.clip(np.ceil((v + 0.5) * r), 0, r)) for v in hi]
    grid[a[0] : max(b[0], a[0] + 1), a[1] : max(b[1], a[1] + 1), a[2] : max(b[2], a[2] + 1)] = True


def furniture_grid(kind: str, rng: np.random.Generator, r: int = 32) -> np.ndarray:
    """A chair (legs, seat, back on the +Y side, i.e. at the back) or a table (legs, top), in the unit cube."""
    g = np.zeros((r, r, r), dtype=bool)
    w = rng.uniform(0.3, 0.5)  # half width (x)
    d = rng.uniform(0.25, 0.5)  # half depth (y)
    leg = rng.uniform(0.04, 0.08)
    if kind == "chair":
        seat = rng.uniform(-0.15, 0.05)
        for sx in (-1, 1):
            for sy in (-1, 1):
                _box(
                    g,
                    (sx * w - leg if sx > 0 else -w, sy * d - leg if sy > 0 else -d, -0.5),
                    (w if sx > 0 else -w + leg, d if sy > 0 else -d + leg, seat),
                )
        _box(g, (-w, -d, seat), (w, d, seat + 0.06))
        _box(g, (-w, d - 0.07, seat), (w, d, 0.5))  # the back, behind (+Y)
    else:
        top = rng.uniform(0.1, 0.5) - 0.5
        w, d = rng.uniform(0.35, 0.5), rng.uniform(0.2, 0.5)
        for sx in (-1, 1):
            for sy in (-1, 1):
                _box(
                    g,
                    (sx * w - leg if sx > 0 else -w, sy * d - leg if sy > 0 else -d, -0.5),
                    (w if sx > 0 else -w + leg, d if sy > 0 else -d + leg, top),
                )
        _box(g, (-w, -d, top), (w, d, top + 0.07))
    return g


def splat(
    grid: np.ndarray, world_to_pixel: np.ndarray, size: int, samples: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """(image, alpha) uint8 [size, size]: the grid's voxels seen through a 3x4 projection, depth-shaded."""
    r = grid.shape[0]
    idx = np.argwhere(grid).astype(np.float64)
    image = np.full((size, size), BACKGROUND, np.uint8)
    alpha = np.zeros((size, size), np.uint8)
    if len(idx) == 0:
        return image, alpha
    offs = (
        np.stack(np.meshgrid(*[np.arange(samples)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5
    ) / samples
    pts = (idx[:, None, :] + offs[None]).reshape(-1, 3) / r - 0.5
    h = np.c_[pts, np.ones(len(pts))] @ np.asarray(world_to_pixel).T
    u, v, depth = h[:, 0] / h[:, 2], h[:, 1] / h[:, 2], h[:, 2]
    ui, vi = np.floor(u).astype(int), np.floor(v).astype(int)
    ok = (ui >= 0) & (ui < size) & (vi >= 0) & (vi < size)
    flat = vi[ok] * size + ui[ok]
    zbuf = np.full(size * size, np.inf)
    np.minimum.at(zbuf, flat, depth[ok])
    hit = np.isfinite(zbuf)
    near, far = zbuf[hit].min(), zbuf[hit].max()
    shade = 220 - 160 * (zbuf[hit] - near) / max(far - near, 1e-9)
    image.reshape(-1)[hit] = shade.astype(np.uint8)
    alpha.reshape(-1)[hit] = 255
    return image, alpha


def make_dataset(
    path,
    chairs: int = 6,
    tables: int = 6,
    size: int = 32,
    views: int = 8,
    resolution: int = 32,
    seed: int = 0,
    elevation: float = 20.0,
    per_model_views: bool = False,
) -> str:
    """A dataset folder of procedural chairs and tables with splatted renderings (8 views 45 degrees apart).

    per_model_views: random azimuths and elevations for each model, stored in cameras.f64 (like 3D-R2N2)."""
    rng = np.random.default_rng(seed)
    shared = fixed_views(views, elevation=elevation, size=size)
    with DatasetWriter(
        path,
        image_size=size,
        views_per_model=views,
        resolution=resolution,
        views=None if per_model_views else shared,
    ) as w:
        for k, kind in enumerate(["chair"] * chairs + ["table"] * tables):
            grid = furniture_grid(kind, rng, resolution)
            vs = shared
            if per_model_views:
                vs = [
                    make_view(rng.uniform(0, 360), rng.uniform(10, 35), 2.5, 40.0, size) for _ in range(views)
                ]
            pairs = [splat(grid, v.world_to_pixel, size) for v in vs]
            cameras = np.array(
                [[v.azimuth, v.elevation, v.distance, v.fov, *v.world_to_pixel.ravel()] for v in vs]
            )
            w.append(
                id=f"{kind}-{seed}-{k}",
                category=kind,
                source="procedural-test",
                images=np.stack([p[0] for p in pairs]),
                alpha=np.stack([p[1] for p in pairs]),
                voxels=grid,
                durable=False,
                cameras=cameras if per_model_views else None,
            )
    return str(path)


def voxel_centres(grid: np.ndarray) -> np.ndarray:
    """World coordinates [N, 3] of the centres of a grid's voxels above 0.5."""
    idx = np.argwhere(np.asarray(grid) > 0.5)
    return (np.c_[idx, np.ones(len(idx))] @ voxel_to_world(grid.shape[0]).T)[:, :3]


def paired_network(config: dict):
    """The paired model's network for a config dict (kind and defaults filled in as for a checkpoint)."""
    from voxlift.backend.models.paired import PairedConfig, build_network

    return build_network(
        PairedConfig.from_dict({"kind": "paired", "image_size": 32, **config}, "test config")
    )
