"""Using a trained checkpoint: what `voxlift evaluate` and the Blender add-on's reconstruct panel call.

    p = load_predictor("runs/chairs")              # a run folder (its best checkpoint) or a .safetensors file
    gray, alpha = p.prepare(picture)               # find the object (alpha, plain border or mask model), cut it
                                                   # out onto the training background and frame it
    probs = p.predict(gray[None])                  # float32 [1, R, R, R] occupancy probabilities
    grid = probs[0] >= p.threshold                 # the model's own threshold, chosen on validation
    if p.viewer_centred:                           # the grid is as seen from the front: turn it back
        probs = to_object_frame(probs, azimuth)    # azimuth (degrees) of the view the image was taken from

Every model kind whose checkpoints map an image to a grid says so in registry.KINDS (`reconstructs`) and
builds that network in its `image_to_grid`; its checkpoint's config is read through the kind's typed config.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..dataset_tools.errors import VoxliftError
from . import checkpoint as ckpt
from .config import RunConfig
from .data import resize_input, to_object_frame_torch
from .framing import Framed, frame_picture
from .pictures import unit_float
from .registry import model_class, reconstructing_kinds
from .run_files import FALLBACK_THRESHOLD


class Predictor:
    def __init__(
        self, network: torch.nn.Module, config: RunConfig, device: torch.device, path, threshold=None
    ):
        self.network, self.config, self.device, self.path = network.eval(), config, device, path
        self.kind: str = config.kind
        self.viewer_centred: bool = config.viewer_centred
        self.image_size: int = config.image_size  # images as the training renderings were
        self.input_size: int = config.input_size
        self.resolution: int = config.resolution
        self.background: float = config.background
        self.fill: float = config.fill
        self.threshold: float = float(threshold) if threshold is not None else FALLBACK_THRESHOLD
        self.mask_model = None  # a mask run or file; None: the one voxlift ships (mask_finder.py)
        self._mask_finder = False  # not loaded yet: only pictures without alpha and a plain border need it
        # "bbox": trained on pictures framed by their object's bounding box, as prepare() frames users'
        self.framing: str = getattr(config, "framing", "render")

    @property
    def mask_finder(self):
        """The mask model that finds objects in pictures without alpha (loaded when first needed), or None."""
        if self._mask_finder is False:
            from .mask_finder import load_mask_finder

            self._mask_finder = load_mask_finder(self.mask_model, str(self.device))
        return self._mask_finder

    def predict_views(self, images, alpha) -> np.ndarray:
        """A dataset's views (gray and alpha [V, S, S]) as this model takes them: framed like users'
        pictures when it was trained so, else as rendered. Probabilities [V, R, R, R] in its frame."""
        if self.framing != "bbox":
            return self.predict(images)
        framed = [self.prepare(g, a) for g, a in zip(np.asarray(images), np.asarray(alpha), strict=True)]
        return self.predict(np.stack([g for g, _ in framed]))  # already on the background: composite once

    def prepare(self, picture, alpha=None) -> tuple[np.ndarray, np.ndarray]:
        """A user's picture -> (gray, alpha) [S, S] framed like the training renderings (framing.py); the gray is
        already composited onto the training background, so predict() takes it without the alpha."""
        framed = self.frame(picture, alpha)
        return framed.gray, framed.alpha

    def frame(self, picture, alpha=None) -> Framed:
        """prepare(), with how the object was found ("alpha", "border", "mask model", "border*") and its box."""
        return frame_picture(picture, self.image_size, self.background, self.fill, alpha, self._find_mask)

    def _find_mask(self, gray: np.ndarray):
        finder = self.mask_finder  # loaded here, the first time a picture needs it
        return None if finder is None else finder(gray)

    @torch.no_grad()
    def predict(self, images, alpha=None, batch_size: int = 64) -> np.ndarray:
        """Gray images [B, S, S] (uint8, or float in [0, 1]) -> float32 probabilities [B, R, R, R].

        With `alpha` ([B, S, S], same scale as the images) the images are composited onto the training
        background first. The grid is in the model's frame: viewer-centred unless config says otherwise."""
        x = unit_float(images)
        if x.ndim != 3:
            raise VoxliftError(f"predict: images must be [B, S, S] gray, got shape {tuple(x.shape)}")
        if alpha is not None:
            a = unit_float(alpha)
            x = x * a + self.background * (1 - a)
        out = []
        for lo in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[lo : lo + batch_size]).float().to(self.device)
            xb = resize_input((xb * 2 - 1).unsqueeze(1), self.input_size)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                logits = self.network(xb)
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0,) + (self.resolution,) * 3, np.float32)


def load_predictor(checkpoint: str | os.PathLike, device: str = "auto", mask_model=None) -> Predictor:
    """A Predictor from a checkpoint file or run folder; bad files raise VoxliftError naming them. Pictures
    without alpha are cut out with `mask_model` (a mask run or file; default: the one voxlift ships)."""
    from .device import pick_device

    path = ckpt.resolve_checkpoint(checkpoint)
    tensors, meta = ckpt.load_checkpoint(path, kinds=reconstructing_kinds())
    kind = model_class(meta["config"]["kind"])
    config = kind.Config.from_dict(meta["config"], path)
    device = pick_device(device)
    try:
        network = kind.image_to_grid(config, tensors, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise VoxliftError(f"{path}: config does not describe a usable model ({exc!r})") from None
    threshold = (meta.get("val") or {}).get("threshold") if isinstance(meta.get("val"), dict) else None
    if threshold is not None and not (isinstance(threshold, int | float) and 0 < threshold < 1):
        raise VoxliftError(f"{path}: its threshold {threshold!r} is not a probability")
    predictor = Predictor(network.to(device), config, device, path, threshold)
    predictor.mask_model = mask_model
    return predictor


def to_object_frame(probs: np.ndarray, azimuth) -> np.ndarray:
    """Viewer-centred grids [B, R, R, R] (or one [R, R, R]) seen from `azimuth` degrees -> the object frame."""
    p = np.asarray(probs, dtype=np.float32)
    single = p.ndim == 3
    t = torch.from_numpy(p[None] if single else p)
    az = np.broadcast_to(np.asarray(azimuth, dtype=np.float64), (t.shape[0],))
    out = to_object_frame_torch(t, az).numpy()
    return out[0] if single else out
