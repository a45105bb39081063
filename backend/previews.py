"""Pictures of predictions for TensorBoard: the input beside the predicted and the true grid."""

from __future__ import annotations

import numpy as np
import torch


def preview(images: torch.Tensor, probs: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Rows of [input | predicted grid | true grid], grids drawn as depth-shaded views from the front."""
    s = images.shape[-1]
    rows = []
    for img, p, t in zip(images, probs, target):
        tiles = [((img[0].float().cpu() + 1) / 2).numpy()]
        for g in (p, t):
            tiles.append(render_grid(g.float().cpu().numpy() > 0.5, s))
        rows.append(np.concatenate(tiles, 1))
    return np.concatenate(rows, 0).clip(0, 1)


def render_grid(grid: np.ndarray, size: int) -> np.ndarray:
    """A [size, size] depth-shaded orthographic view of a boolean grid [x, y, z] seen from the front (-Y)."""
    r = grid.shape[0]
    hit = grid.any(1)  # [x, z]
    first = np.argmax(grid, axis=1)  # nearest occupied y for each (x, z)
    shade = np.where(hit, 1.0 - 0.7 * first / r, 0.0)
    img = shade.T[::-1]  # rows top first: z up
    reps = max(1, size // r)
    img = np.kron(img, np.ones((reps, reps)))
    out = np.zeros((size, size))
    out[: img.shape[0], : img.shape[1]] = img[:size, :size]
    return out
