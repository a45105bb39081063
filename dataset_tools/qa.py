"""Do renderings and voxel grids line up? Project the occupied voxels with world_to_pixel, compare with alpha.

For every model and view:
  * coverage: the share of silhouette pixels (alpha > 128: more than half covered, which for a straight edge
    means the pixel centre is on the object) whose centre lies inside the footprint of some occupied voxel.
    The grids are conservative, so this should be ~1.
  * on_silhouette: the share of occupied voxels whose footprint overlaps at least one pixel with any
    coverage (alpha > 0). Overlap, not centre: a conservative grid holds voxels that only touch the surface,
    and their footprint may border the object without reaching a pixel centre on it. A voxel that projects
    beside the object means the grid or the camera is off.
A voxel's footprint is the bounding box of its 8 projected corners (a slight superset of the exact hexagon:
it errs towards passing, but a grid shifted by one voxel still fails, see tests/test_qa.py).
A model's score is the worst of both figures over its views. numpy only.
"""

from __future__ import annotations

import os

import numpy as np

SILHOUETTE = 129  # alpha from which a pixel counts as object: more than half covered
ANY = 1  # alpha from which a pixel counts as touched by the object
# Conservative voxelisers keep voxels that only share a face or an edge with the surface (a leg exactly on
# a voxel boundary): their footprint ends exactly where the object's begins, and the pixel there may hold a
# sliver of the object too thin to reach a sample of a 2x supersampled render (alpha 0). A quarter pixel
# of slack (half a sample step at K=2) lets them reach the object; a grid off by one voxel is off by
# ~2 pixels at 128 px (~1 at 64 px), well beyond it (tests/test_qa.py checks that it still fails).
TOUCH_EPS = 0.25

_CORNERS = np.array([[dx, dy, dz] for dx in (-0.5, 0.5) for dy in (-0.5, 0.5) for dz in (-0.5, 0.5)])


def footprints(
    voxels: np.ndarray, voxel_to_world: np.ndarray, world_to_pixel: np.ndarray, size: int, touch: bool = False
):
    """Integer pixel rectangles [N, 4] = x0, x1, y0, y1 (inclusive; empty when x0 > x1) of the occupied
    voxels' footprints: the pixels whose centre (x + 0.5, y + 0.5) lies in the projected corners' box, or
    with touch=True every pixel whose square overlaps that box."""
    idx = np.argwhere(voxels)
    if len(idx) == 0:
        return np.zeros((0, 4), np.int64)
    corners = (idx[:, None, :] + _CORNERS[None]).reshape(-1, 3)
    world = corners @ voxel_to_world[:3, :3].T + voxel_to_world[:3, 3]
    h = np.c_[world, np.ones(len(world))] @ np.asarray(world_to_pixel).T
    uv = (h[:, :2] / h[:, 2:3]).reshape(len(idx), 8, 2)
    lo, hi = uv.min(axis=1), uv.max(axis=1)
    if touch:  # TOUCH_EPS: a voxel that shares only a face with the object still reaches its pixels
        lo, hi = lo - TOUCH_EPS, hi + TOUCH_EPS
        x0, y0 = np.floor(lo[:, 0]), np.floor(lo[:, 1])
        x1, y1 = np.ceil(hi[:, 0]) - 1, np.ceil(hi[:, 1]) - 1
    else:
        x0, y0 = np.ceil(lo[:, 0] - 0.5), np.ceil(lo[:, 1] - 0.5)
        x1, y1 = np.floor(hi[:, 0] - 0.5), np.floor(hi[:, 1] - 0.5)
    rect = np.stack([x0, x1, y0, y1], axis=1)
    return np.clip(rect, -1, size).astype(np.int64)


def paint(rects: np.ndarray, size: int) -> np.ndarray:
    """bool [S, S] (rows = y) of the union of the rectangles, with a 2D difference array (no per-voxel loop)."""
    x0, x1 = np.clip(rects[:, 0], 0, size), np.clip(rects[:, 1] + 1, 0, size)
    y0, y1 = np.clip(rects[:, 2], 0, size), np.clip(rects[:, 3] + 1, 0, size)
    ok = (x0 < x1) & (y0 < y1)
    x0, x1, y0, y1 = x0[ok], x1[ok], y0[ok], y1[ok]
    d = np.zeros((size + 1, size + 1), np.int64)
    np.add.at(d, (y0, x0), 1)
    np.add.at(d, (y0, x1), -1)
    np.add.at(d, (y1, x0), -1)
    np.add.at(d, (y1, x1), 1)
    return d.cumsum(0).cumsum(1)[:size, :size] > 0


def count_in(mask: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """How many True pixels of mask fall in each rectangle (summed-area table)."""
    size = mask.shape[0]
    sat = np.zeros((size + 1, size + 1), np.int64)
    sat[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    x0, x1 = np.clip(rects[:, 0], 0, size), np.clip(rects[:, 1] + 1, 0, size)
    y0, y1 = np.clip(rects[:, 2], 0, size), np.clip(rects[:, 3] + 1, 0, size)
    x1, y1 = np.maximum(x1, x0), np.maximum(y1, y0)
    return sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]


def qa_view(alpha: np.ndarray, voxels: np.ndarray, voxel_to_world: np.ndarray, world_to_pixel: np.ndarray):
    """(coverage, on_silhouette, covered mask) of one view; alpha uint8 [S, S] rows top first."""
    size = alpha.shape[0]
    rects = footprints(voxels, voxel_to_world, world_to_pixel, size)
    covered = paint(rects, size)
    sil = alpha >= SILHOUETTE
    n_sil = int(sil.sum())
    coverage = float((sil & covered).sum() / n_sil) if n_sil else 1.0
    touching = footprints(voxels, voxel_to_world, world_to_pixel, size, touch=True)
    on = float((count_in(alpha >= ANY, touching) > 0).mean()) if len(rects) else 1.0
    return coverage, on, covered


def qa_model(alpha: np.ndarray, voxels: np.ndarray, voxel_to_world: np.ndarray, world_to_pixel: np.ndarray):
    """Per-view coverage and on_silhouette lists of one model (alpha [V, S, S], world_to_pixel [V, 3, 4])."""
    cov, on = [], []
    vox = np.asarray(voxels, dtype=bool)
    for a, p in zip(alpha, world_to_pixel):
        c, o, _ = qa_view(np.asarray(a), vox, voxel_to_world, p)
        cov.append(c)
        on.append(o)
    return cov, on


def qa_dataset(path: str | os.PathLike, indices=None) -> dict:
    """The report of a dataset: per model figures and a summary (JSON-ready)."""
    from .dataset import open_dataset

    ds = open_dataset(path)
    models = []
    for i in range(len(ds)) if indices is None else indices:
        m = ds.models[i]
        cov, on = qa_model(ds.alpha[i], ds.voxels[i], ds.voxel_to_world, ds.world_to_pixel(i))
        models.append(
            {
                "index": int(i),
                "id": m.id,
                "category": m.category,
                "coverage": [round(c, 5) for c in cov],
                "on_silhouette": [round(o, 5) for o in on],
                "min_coverage": round(min(cov), 5),
                "min_on_silhouette": round(min(on), 5),
                "score": round(min(min(cov), min(on)), 5),
            }
        )
    return {"dataset": str(path), "summary": summarize(models), "models": models}


def summarize(models: list[dict]) -> dict:
    if not models:
        return {"models": 0}
    cov = np.array([m["min_coverage"] for m in models])
    on = np.array([m["min_on_silhouette"] for m in models])
    score = np.minimum(cov, on)
    return {
        "models": len(models),
        "share_coverage_ge_0.99": float((cov >= 0.99).mean()),
        "share_on_silhouette_ge_0.99": float((on >= 0.99).mean()),
        "share_both_ge_0.99": float((score >= 0.99).mean()),
        "min_coverage": float(cov.min()),
        "min_on_silhouette": float(on.min()),
        "mean_coverage": float(cov.mean()),
        "mean_on_silhouette": float(on.mean()),
        "min_score": float(score.min()),
    }


def format_report(report: dict, worst: int = 10, threshold: float = 0.99) -> str:
    s = report["summary"]
    if not s["models"]:
        return f"{report['dataset']}: no models"
    lines = [
        f"{report['dataset']}: {s['models']} models (worst view of each model)",
        (
            f"  silhouette pixels covered by voxels: >= 0.99 for {100 * s['share_coverage_ge_0.99']:.1f}% "
            f"of models, min {s['min_coverage']:.4f}, mean {s['mean_coverage']:.4f}"
        ),
        (
            f"  occupied voxels on the silhouette:   >= 0.99 for {100 * s['share_on_silhouette_ge_0.99']:.1f}% "
            f"of models, min {s['min_on_silhouette']:.4f}, mean {s['mean_on_silhouette']:.4f}"
        ),
        f"  both >= 0.99: {100 * s['share_both_ge_0.99']:.1f}% of models; worst score {s['min_score']:.4f}",
    ]
    ranked = sorted(report["models"], key=lambda m: m["score"])[:worst]
    lines.append(f"  worst {len(ranked)} models:")
    lines.append(f"    {'score':>7} {'coverage':>9} {'on_sil':>7}  id")
    for m in ranked:
        flag = "  <-" if m["score"] < threshold else ""
        lines.append(
            f"    {m['score']:7.4f} {m['min_coverage']:9.4f} {m['min_on_silhouette']:7.4f}  "
            f"{m['id']} ({m['category']}){flag}"
        )
    return "\n".join(lines)


def overlay(alpha: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """RGB [S, S, 3]: green silhouette covered by voxels, red silhouette missed, blue voxels off the object."""
    sil = alpha >= SILHOUETTE
    touched = alpha >= ANY
    out = np.full(alpha.shape + (3,), 255, np.uint8)
    out[sil & covered] = (60, 170, 60)
    out[sil & ~covered] = (230, 30, 30)
    out[covered & ~touched] = (60, 90, 230)
    out[covered & touched & ~sil] = (150, 210, 150)
    return out


def write_sheet(path: str | os.PathLike, report: dict, out: str | os.PathLike, rows: int = 12) -> None:
    """PNG contact sheet of the worst `rows` models: per view, the rendering beside its projected grid."""
    from .dataset import open_dataset
    from .png import write_png

    ds = open_dataset(path)
    ranked = sorted(report["models"], key=lambda m: m["score"])[:rows]
    s, gap = ds.image_size, 2
    tiles = []
    for m in ranked:
        i = m["index"]
        p = ds.world_to_pixel(i)
        row = []
        for v in range(ds.views_per_model):
            gray = np.asarray(ds.images[i, v])
            _, _, covered = qa_view(
                np.asarray(ds.alpha[i, v]), np.asarray(ds.voxels[i]), ds.voxel_to_world, p[v]
            )
            pair = np.concatenate(
                [np.repeat(gray[..., None], 3, 2), overlay(np.asarray(ds.alpha[i, v]), covered)], 1
            )
            row.append(np.pad(pair, ((gap, gap), (gap, gap), (0, 0)), constant_values=255))
        tiles.append(np.concatenate(row, 1))
    if not tiles:
        tiles = [np.full((s, s, 3), 255, np.uint8)]
    write_png(out, np.concatenate(tiles, 0))
