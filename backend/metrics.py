"""Reconstruction metrics: IoU at thresholds and F-score@1%, aggregated per category.

IoU follows Pix2Vox: per sample, thresholded prediction against the true grid; the mean per category; then the
overall mean over all samples (Pix2Vox weights categories by their sample count, which this equals).
F-score@1% follows the what3d protocol (Tatarchenko et al. 2019): surfaces from marching cubes, 8192 points
sampled on each, a point counts when within 1% of the cube side (the unit cube here) of the other surface.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

THRESHOLDS = (0.3, 0.4, 0.5)


def iou(
    probs: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, thresholds=THRESHOLDS
) -> np.ndarray:
    """Per-sample IoU [B, len(thresholds)] of probabilities [B, R, R, R] against targets (> 0.5 is occupied).

    An empty prediction of an empty grid counts as 1."""
    p = _tensor(probs).flatten(1)
    t = _tensor(target).flatten(1) > 0.5
    out = []
    for th in thresholds:
        b = p >= th
        inter = (b & t).sum(1).float()
        union = (b | t).sum(1).float()
        out.append(torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)))
    return torch.stack(out, 1).cpu().numpy()


def _tensor(a) -> torch.Tensor:
    return a.float() if torch.is_tensor(a) else torch.from_numpy(np.array(a, dtype=np.float32))


def surface_points(grid: np.ndarray, count: int = 8192, level: float = 0.5, seed: int = 0) -> np.ndarray:
    """`count` points sampled uniformly (by area) on the marching-cubes surface of a grid, in world units."""
    from skimage.measure import marching_cubes

    r = grid.shape[0]
    padded = np.pad(np.asarray(grid, dtype=np.float32), 1)  # closes surfaces touching the border
    if padded.max() <= level or padded.min() >= level:
        return np.zeros((0, 3))
    verts, faces, _, _ = marching_cubes(padded, level)
    verts = (
        verts - 1 + 0.5
    ) / r - 0.5  # padded index -> voxel index -> world (voxel centres at -0.5 + (i+.5)/R)
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if area.sum() <= 0:
        return np.zeros((0, 3))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(tri), size=count, p=area / area.sum())
    u, v = rng.random((2, count))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def _nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each point of `a` to its nearest point of `b` (a k-d tree when scipy is there)."""
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        ta, tb = torch.from_numpy(a).float(), torch.from_numpy(b).float()
        return torch.cat(
            [torch.cdist(ta[i : i + 2048], tb).min(1).values for i in range(0, len(ta), 2048)]
        ).numpy()
    return cKDTree(b).query(a, k=1)[0]


def fscore(
    pred_grid: np.ndarray,
    true_grid: np.ndarray | None = None,
    distance: float = 0.01,
    count: int = 8192,
    threshold: float = 0.3,
    true_points: np.ndarray | None = None,
) -> float:
    """F-score at `distance` (world units; the cube side is 1) between the thresholded prediction and the truth.

    `true_points` (surface_points of the true grid) may be passed instead of the grid, to reuse them."""
    pp = surface_points((np.asarray(pred_grid) >= threshold).astype(np.float32), count)
    tp = (
        true_points
        if true_points is not None
        else surface_points((np.asarray(true_grid) > 0.5).astype(np.float32), count)
    )
    if len(pp) == 0 or len(tp) == 0:
        return 1.0 if len(pp) == len(tp) else 0.0
    precision = float((_nearest(pp, tp) < distance).mean())
    recall = float((_nearest(tp, pp) < distance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


class Scores:
    """Collects per-sample metrics with their category; `summary()` gives per-category and overall means."""

    def __init__(self, names: list[str]):
        self.names = names
        self.rows: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, categories: list[str], values: np.ndarray) -> None:
        for c, row in zip(categories, np.asarray(values, dtype=np.float64)):
            self.rows[c].append(row)

    def summary(self) -> dict:
        per_cat = {
            c: dict(zip(self.names, np.mean(rows, 0).tolist()), samples=len(rows))
            for c, rows in sorted(self.rows.items())
        }
        every = [r for rows in self.rows.values() for r in rows]
        overall = dict(zip(self.names, np.mean(every, 0).tolist()), samples=len(every)) if every else {}
        return {"categories": per_cat, "overall": overall}


def metric_names(thresholds=THRESHOLDS, with_fscore: bool = True) -> list[str]:
    return [f"iou@{t:g}" for t in thresholds] + (["fscore@1%"] if with_fscore else [])


def format_table(summary: dict, title: str = "") -> str:
    names = [k for k in summary["overall"] if k != "samples"] if summary["overall"] else []
    lines = [title] if title else []
    lines.append(f"{'category':<12} {'samples':>7} " + " ".join(f"{n:>10}" for n in names))
    for c, row in [*summary["categories"].items(), ("overall", summary["overall"])]:
        lines.append(
            f"{c or '?':<12} {row.get('samples', 0):>7} " + " ".join(f"{row[n]:>10.3f}" for n in names)
        )
    return "\n".join(lines)
