"""Voxel losses on logits [B, R, R, R] against (possibly soft) targets in [0, 1].

`weighted_bce` is the default: occupied voxels are only ~3% of a 32^3 grid of furniture, so plain BCE is
happy predicting empty space; weighting them by w = (1 - share) / share balances the two classes
(w about 30 at a 3% share). Plain BCE, L1 (on probabilities) and Dice are there for comparison.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("weighted-bce", "bce", "l1", "dice")


def positive_weight(occupancy: float) -> float:
    """Weight of occupied voxels from their share in the training set (so both classes weigh the same)."""
    occupancy = min(max(occupancy, 1e-4), 0.5)
    return (1 - occupancy) / occupancy


def voxel_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "weighted-bce",
               pos_weight: float = 1.0) -> torch.Tensor:
    logits, target = logits.float(), target.float()
    if kind == "weighted-bce":
        # Normalised by the total weight so the loss scale does not grow with pos_weight.
        w = 1 + (pos_weight - 1) * target
        return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum() / w.sum()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "l1":
        return (torch.sigmoid(logits) - target).abs().mean()
    if kind == "dice":
        p = torch.sigmoid(logits).flatten(1)
        t = target.flatten(1)
        return (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()
    raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")
