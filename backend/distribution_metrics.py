"""Distances between sets of shapes, for results that have no ground truth partner (unpaired, unconditional).

With d a distance between two samples (1 - IoU for voxel grids, mean absolute difference for images), a
generated set G and a held-out reference set R (Achlioptas et al. 2018; Yang et al. 2019):

    MMD       minimum matching distance: mean over r in R of min over g in G of d(g, r). Lower is better:
              every real shape has a close generated one.
    coverage  fraction of R that is the nearest neighbour (in R) of at least one g. Higher is better: the
              generated shapes are spread over the real ones, not collapsed on a few.
    1-NNA     leave-one-out accuracy of the 1-nearest-neighbour classifier telling G from R in G u R.
              0.5 is ideal (indistinguishable); 1.0 means every sample's nearest neighbour is of its own kind.

Distances are computed in batches with torch matrix products, so 1000 x 1000 grids of 32^3 take seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


def _flat(x, device=None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.reshape(t.shape[0], -1).to(device=device, dtype=torch.float32)


def iou_distance(a, b, batch: int = 256, device=None) -> torch.Tensor:
    """[n, m] matrix of 1 - IoU between the binary grids a [n, ...] and b [m, ...] (two empty grids: 0)."""
    a, b = _flat(a, device) > 0.5, _flat(b, device) > 0.5
    a, b = a.float(), b.float()
    sa, sb = a.sum(1), b.sum(1)
    out = torch.empty(a.shape[0], b.shape[0])
    for i in range(0, a.shape[0], batch):
        inter = a[i : i + batch] @ b.T
        union = sa[i : i + batch, None] + sb[None, :] - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        out[i : i + batch] = (1 - iou).cpu()
    return out


def l1_distance(a, b, batch: int = 256, device=None) -> torch.Tensor:
    """[n, m] matrix of mean absolute differences between samples (images)."""
    a, b = _flat(a, device), _flat(b, device)
    out = torch.empty(a.shape[0], b.shape[0])
    for i in range(0, a.shape[0], batch):
        out[i : i + batch] = torch.cdist(a[i : i + batch], b, p=1).cpu() / a.shape[1]
    return out


@dataclass
class DistributionScores:
    mmd: float
    coverage: float
    nna: float  # 1-NN accuracy
    n_generated: int
    n_reference: int

    def to_dict(self) -> dict:
        return asdict(self)


def mmd(d_gr: torch.Tensor) -> float:
    """Minimum matching distance from the [G, R] distance matrix."""
    return float(d_gr.min(0).values.mean())


def coverage(d_gr: torch.Tensor) -> float:
    return float(torch.unique(d_gr.argmin(1)).numel() / d_gr.shape[1])


def one_nna(d_gg: torch.Tensor, d_rr: torch.Tensor, d_gr: torch.Tensor) -> float:
    """Leave-one-out 1-NN accuracy on G u R; a tie between the two sets counts half."""
    inf = torch.tensor(float("inf"))
    own_g = d_gg.clone().fill_diagonal_(inf).min(1).values
    own_r = d_rr.clone().fill_diagonal_(inf).min(1).values
    other_g, other_r = d_gr.min(1).values, d_gr.min(0).values

    def right(own, other):
        return ((own < other).float() + 0.5 * (own == other).float()).sum()

    return float((right(own_g, other_g) + right(own_r, other_r)) / (len(own_g) + len(own_r)))


def distribution_scores(generated, reference, distance=iou_distance, device=None) -> DistributionScores:
    """MMD, coverage and 1-NNA of `generated` against `reference` (both [n, ...]; grids or images)."""
    if len(generated) < 2 or len(reference) < 2:
        raise ValueError("distribution metrics need at least 2 generated and 2 reference samples")
    d_gr = distance(generated, reference, device=device)
    d_gg = distance(generated, generated, device=device)
    d_rr = distance(reference, reference, device=device)
    return DistributionScores(
        mmd(d_gr), coverage(d_gr), one_nna(d_gg, d_rr, d_gr), len(generated), len(reference)
    )


def prediction_scores(predictions, truths, threshold: float = 0.5, device=None) -> dict:
    """Distribution scores of a reconstruction model on a split, as `voxlift evaluate` reports them.

    predictions: per model, its V predicted grids [V, R, R, R] (object frame); truths: the models' grids.
    One prediction per model (the i-th model's view i mod V, so every view takes its turn) against the true
    grids: both sets then have one sample per model, as 1-NNA needs."""
    pick = np.stack([np.asarray(p[i % len(p)]) >= threshold for i, p in enumerate(predictions)])
    return distribution_scores(pick, np.stack([np.asarray(t) > 0.5 for t in truths]), device=device).to_dict()
