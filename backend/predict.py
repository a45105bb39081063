"""Using a trained checkpoint: what `voxlift evaluate` and the Blender add-on's reconstruct panel call.

    p = load_predictor("runs/chairs")              # a run folder (its best checkpoint) or a .safetensors file
    gray, alpha = prepare_image(rgba, p.image_size, p.background, p.fill)
    probs = p.predict(gray[None], alpha[None])     # float32 [1, R, R, R] occupancy probabilities
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
from .data import to_object_frame_torch
from .registry import model_class, reconstructing_kinds


class Predictor:
    def __init__(self, network: torch.nn.Module, config: RunConfig, device: torch.device, path):
        self.network, self.config, self.device, self.path = network.eval(), config, device, path
        self.kind: str = config.kind
        self.viewer_centred: bool = config.viewer_centred
        self.image_size: int = config.image_size  # images as the training renderings were
        self.input_size: int = config.input_size
        self.resolution: int = config.resolution
        self.background: float = config.background
        self.fill: float = config.fill

    @torch.no_grad()
    def predict(self, images, alpha=None, batch_size: int = 64) -> np.ndarray:
        """Gray images [B, S, S] (uint8, or float in [0, 1]) -> float32 probabilities [B, R, R, R].

        With `alpha` ([B, S, S], same scale as the images) the images are composited onto the training
        background first. The grid is in the model's frame: viewer-centred unless config says otherwise."""
        x = _unit(images)
        if x.ndim != 3:
            raise VoxliftError(f"predict: images must be [B, S, S] gray, got shape {tuple(x.shape)}")
        if alpha is not None:
            a = _unit(alpha)
            x = x * a + self.background * (1 - a)
        out = []
        for lo in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[lo : lo + batch_size]).float().to(self.device)
            xb = (xb * 2 - 1).unsqueeze(1)
            if xb.shape[-1] != self.input_size or xb.shape[-2] != self.input_size:
                mode = "area" if xb.shape[-1] > self.input_size else "bilinear"
                xb = torch.nn.functional.interpolate(xb, size=(self.input_size, self.input_size), mode=mode)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                logits = self.network(xb)
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0,) + (self.resolution,) * 3, np.float32)


def _unit(a) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def load_predictor(checkpoint: str | os.PathLike, device: str = "auto") -> Predictor:
    """A Predictor from a checkpoint file or run folder; bad files raise VoxliftError naming them."""
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
    return Predictor(network.to(device), config, device, path)


def to_object_frame(probs: np.ndarray, azimuth) -> np.ndarray:
    """Viewer-centred grids [B, R, R, R] (or one [R, R, R]) seen from `azimuth` degrees -> the object frame."""
    p = np.asarray(probs, dtype=np.float32)
    single = p.ndim == 3
    t = torch.from_numpy(p[None] if single else p)
    az = np.broadcast_to(np.asarray(azimuth, dtype=np.float64), (t.shape[0],))
    out = to_object_frame_torch(t, az).numpy()
    return out[0] if single else out


def prepare_image(
    image, size: int, background: float = 1.0, fill: float = 0.7, alpha=None
) -> tuple[np.ndarray, np.ndarray]:
    """A user's picture -> (gray, alpha) float32 [size, size] in [0, 1], framed like the renderings.

    `image` is [H, W] gray, [H, W, 3] RGB or [H, W, 4] RGBA, uint8 or float in [0, 1]. The coverage is the
    alpha channel, or `alpha`, or else (no transparency) the pixels that differ from the median border
    colour. The gray image is composited onto `background` (the training renderings' background), and the
    object is centred and scaled so that its bounding box's longest side is `fill` of the image side."""
    img = _unit(image)
    if img.ndim == 3 and img.shape[2] == 4 and alpha is None:
        alpha = img[..., 3]
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32) if img.shape[2] >= 3 else img[..., 0]
    if img.ndim != 2 or min(img.shape) < 2:
        raise VoxliftError(f"prepare_image: expected a 2D image, got shape {np.shape(image)}")
    if alpha is None:
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        alpha = (np.abs(img - np.median(border)) > 0.04).astype(np.float32)
    a = _unit(alpha)
    if a.shape != img.shape:
        raise VoxliftError(f"prepare_image: alpha shape {a.shape} differs from the image's {img.shape}")
    gray = img * a + background * (1 - a)
    ys, xs = np.nonzero(a > 0.5)
    if len(xs) == 0:
        raise VoxliftError("prepare_image: no object found in the image (empty alpha)")
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / fill
    # Sample a square window of `side` source pixels around the object's centre (background outside).
    theta = torch.tensor(
        [
            [
                [side / img.shape[1], 0, (2 * cx / img.shape[1]) - 1],
                [0, side / img.shape[0], (2 * cy / img.shape[0]) - 1],
            ]
        ],
        dtype=torch.float32,
    )
    grid = torch.nn.functional.affine_grid(theta, [1, 2, size, size], align_corners=False)
    both = torch.from_numpy(np.stack([gray - background, a]))[None]
    if side > size * 1.5:  # shrinking a lot: blur first so the result is area-averaged, like a render
        k = int(side / size)
        both = torch.nn.functional.avg_pool2d(both, k, stride=1, padding=k // 2, count_include_pad=False)
        both = both[..., : gray.shape[0], : gray.shape[1]]
    res = torch.nn.functional.grid_sample(
        both, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[0].numpy()
    return (res[0] + background).clip(0, 1).astype(np.float32), res[1].clip(0, 1).astype(np.float32)
