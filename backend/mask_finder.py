"""Finding the object in a picture without alpha: a mask model (models/mask.py) run on the whole picture.

    finder = load_mask_finder()          # the one voxlift ships (assets/mask.safetensors), or None
    probs = finder(gray)                 # gray [H, W] in [0, 1] -> object probabilities [H, W]

framing.frame_picture takes it as `find_mask`; every reconstructing model uses the same one.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from .starter import ASSETS

SHIPPED = ASSETS / "mask.safetensors"


class MaskFinder:
    def __init__(self, network: torch.nn.Module, size: int, device: torch.device, path):
        self.network, self.size, self.device, self.path = network.eval(), size, device, path

    @torch.no_grad()
    def __call__(self, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape
        side = max(h, w)
        x = torch.from_numpy(np.ascontiguousarray(gray, np.float32))[None, None]
        # square, padded with the picture's own edge pixels (no new border), then the network's size
        x = F.pad(x, (0, side - w, 0, side - h), mode="replicate")
        x = F.interpolate(x, size=(self.size, self.size), mode="area" if side > self.size else "bilinear")
        x = (x * 2 - 1).to(self.device)
        # the picture and its mirror image, averaged: the network's mistakes on clutter do not mirror with the
        # picture, so the mean keeps what both agree on, and a mirrored photo gets the mirrored mask. Measured
        # through reconstruct (BENCHMARKS.md): +0.01-0.02 IoU on the starter's busy pictures, unchanged elsewhere
        both = torch.sigmoid(self.network(torch.cat([x, x.flip(-1)])).float()).cpu()
        probs = (both[:1] + both[1:].flip(-1)) / 2
        probs = F.interpolate(probs, size=(side, side), mode="bilinear", align_corners=False)
        return probs[0, 0, :h, :w].numpy()


def load_mask_finder(path: str | os.PathLike | None = None, device: str = "cpu") -> MaskFinder | None:
    """The mask model at `path` (a run folder or file), else the shipped one; None when there is none."""
    from .device import pick_device
    from .models.mask import MaskConfig, mask_network

    if path is None:
        if not SHIPPED.is_file():
            return None
        path = SHIPPED
    p = ckpt.resolve_checkpoint(path)
    tensors, meta = ckpt.load_checkpoint(p, kinds=("mask",))
    config = MaskConfig.from_dict(meta["config"], p)
    network = mask_network(config)
    ckpt.load_module_state(network, tensors, "model.", p)
    dev = pick_device(device)
    return MaskFinder(network.to(dev), config.size, dev, p)
