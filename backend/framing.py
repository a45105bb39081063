"""A user's picture -> the network's input: find the object, frame it as the renderings were, composite it.

    framed = frame_picture(image, size, background, fill, find_mask=predictor.mask_finder)
    framed.gray, framed.alpha, framed.how, framed.box

Where the object is, in order:
  "alpha"      the picture's own alpha channel (an RGBA cut-out, a rendering), when it has transparency;
  "border"     the pixels unlike the border's colour, when the border is one plain colour (a product shot on
               white, a grey studio backdrop): the fast path, used only where it is safe;
  "mask model"  the model's mask model (mask_net.py) on the whole picture: photos, clutter, gradients, noise
               (its largest sure region, with the unsure pixels joined to it: grown_object);
  "border*"    a model without a mask model (trained before it) on a busy picture: the border rule anyway.
The object is then framed like the training renderings (its bounding box's longest side `fill` of the
picture, centred) and composited onto the renderings' background level with its (soft) mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset_tools.errors import VoxliftError
from .pictures import MIN_IMAGE_SIDE, OPAQUE, downsample, unit_float

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec.601, as the renderings' gray was made
BORDER_TOLERANCE = 0.04  # a pixel differs from the border colour by more than this: the object
BORDER_SAFE_SHARE = 0.97  # the border rule is used when this share of the border is within the tolerance
MASK_LEVEL = 0.5  # the object: alpha (or the mask model's probability) above this
# The mask model is sure of an object's body and unsure of its thin parts (legs, slats: a pixel or two at its
# size): those are kept where they are above MASK_GROW_LEVEL and joined to the body (hysteresis, as Canny keeps
# weak edges), so framing does not lose a chair's legs and with them its height.
MASK_GROW_LEVEL = 0.25


class Framed(NamedTuple):
    """A picture as a model takes it: gray and alpha [size, size], how its object was found, and the object's
    box in the picture, (x0, y0, x1, y1) as fractions of its width and height, rows from the top."""

    gray: np.ndarray
    alpha: np.ndarray
    how: str
    box: np.ndarray


def gray_and_alpha(image, alpha=None) -> tuple[np.ndarray, np.ndarray | None]:
    """[H, W] gray, [H, W, 3] RGB or [H, W, 4] RGBA -> (gray [H, W], alpha [H, W] or None); an alpha channel
    that is opaque everywhere says nothing about the object and is dropped."""
    img = unit_float(image)
    if img.ndim == 3 and img.shape[2] in (2, 4) and alpha is None:
        alpha = img[..., -1]
        img = img[..., :-1]
    if img.ndim == 3:
        img = img[..., :3] @ LUMA if img.shape[2] >= 3 else img[..., 0]
    if img.ndim != 2:
        raise VoxliftError(f"expected a 2D picture, got shape {np.shape(image)}")
    if alpha is not None:
        alpha = unit_float(alpha)
        if alpha.shape != img.shape:
            raise VoxliftError(f"alpha shape {alpha.shape} differs from the picture's {img.shape}")
        if alpha.min() >= OPAQUE:
            alpha = None
    return img, alpha


def shrink(gray: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Pictures larger than WORKING_SIDE are box-filtered down first (a 12-megapixel photo in milliseconds)."""
    small = downsample(gray if alpha is None else np.stack([gray, alpha], axis=-1))
    return (small, None) if alpha is None else (small[..., 0], small[..., 1])


def border_is_plain(gray: np.ndarray) -> tuple[bool, float]:
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    level = float(np.median(border))
    return bool(np.mean(np.abs(border - level) <= BORDER_TOLERANCE) >= BORDER_SAFE_SHARE), level


def components(mask: torch.Tensor) -> torch.Tensor:
    """Labels of the 8-connected regions of a boolean [H, W] mask (0 outside; spread by max-pooling)."""
    h, w = mask.shape
    labels = torch.where(mask, torch.arange(1, h * w + 1, dtype=torch.float32).view(h, w), torch.zeros(h, w))
    for _ in range(h + w):
        grown = F.max_pool2d(labels[None, None], 3, stride=1, padding=1)[0, 0] * mask
        if torch.equal(grown, labels):
            break
        labels = grown
    return labels


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """The largest 8-connected region of a boolean [H, W] mask."""
    if not mask.any():
        return mask
    labels = components(mask)
    ids, counts = torch.unique(labels[mask], return_counts=True)
    return labels == ids[torch.argmax(counts)]


def grown_object(probs: np.ndarray) -> np.ndarray:
    """The mask model's probabilities [H, W] -> alpha: its largest region above MASK_LEVEL, with the pixels
    above MASK_GROW_LEVEL connected to it (made opaque enough to count as the object); 0 elsewhere."""
    body = largest_component(torch.from_numpy(probs > MASK_LEVEL))
    if not body.any():
        return np.zeros_like(probs)
    labels = components(torch.from_numpy(probs > MASK_GROW_LEVEL))  # holds the body: MASK_LEVEL is higher
    keep = torch.isin(labels, torch.unique(labels[body])).numpy()
    return np.where(keep, np.maximum(probs, MASK_LEVEL + 0.01), 0.0).astype(np.float32)


def find_object(gray, alpha, find_mask: Callable | None) -> tuple[np.ndarray, str]:
    """(alpha [H, W] in [0, 1], how it was found): see the module's docstring."""
    if alpha is not None:
        return alpha, "alpha"
    plain, level = border_is_plain(gray)
    probs = None if plain or find_mask is None else find_mask(gray)  # None: no mask model to ask
    if probs is None:
        return (np.abs(gray - level) > BORDER_TOLERANCE).astype(np.float32), "border" if plain else "border*"
    return grown_object(np.asarray(probs, np.float32)), "mask model"


def frame_picture(
    image,
    size: int,
    background: float = 1.0,
    fill: float = 0.7,
    alpha=None,
    find_mask: Callable | None = None,
) -> Framed:
    """The picture framed and composited like the renderings (see the module's docstring).
    `find_mask(gray [H, W]) -> probabilities [H, W]` is the mask model (mask_finder.py)."""
    gray, alpha = gray_and_alpha(image, alpha)
    if min(gray.shape) < MIN_IMAGE_SIDE:
        raise VoxliftError(
            f"a picture of {gray.shape[1]}x{gray.shape[0]} pixels is too small to show an object "
            f"(at least {MIN_IMAGE_SIDE} pixels a side)"
        )
    gray, alpha = shrink(gray, alpha)
    a, how = find_object(gray, alpha, find_mask)
    ys, xs = np.nonzero(a > MASK_LEVEL)
    if len(xs) == 0:
        raise VoxliftError("no object found in the picture (it looks like background everywhere)")
    if max(np.ptp(xs), np.ptp(ys)) + 1 < MIN_IMAGE_SIDE / 2:
        raise VoxliftError(f"the object found is only {np.ptp(xs) + 1}x{np.ptp(ys) + 1} pixels: too small")
    composite = gray * a + background * (1 - a)
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / fill
    h, w = gray.shape
    box = np.array([xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h], np.float32)
    return Framed(*_window(composite, a, background, cx, cy, side, size), how, box)


def _window(gray, a, background, cx, cy, side, size) -> tuple[np.ndarray, np.ndarray]:
    """A square window of `side` source pixels around (cx, cy), resampled to size x size (background outside)."""
    h, w = gray.shape
    theta = torch.tensor(
        [[[side / w, 0, (2 * cx / w) - 1], [0, side / h, (2 * cy / h) - 1]]], dtype=torch.float32
    )
    grid = F.affine_grid(theta, [1, 2, size, size], align_corners=False)
    both = torch.from_numpy(np.stack([gray - background, a]).astype(np.float32))[None]
    if side > size * 1.5:  # shrinking a lot: blur first so the result is area-averaged, like a render
        k = int(side / size)
        both = F.avg_pool2d(both, k, stride=1, padding=k // 2, count_include_pad=False)[..., :h, :w]
    res = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0].numpy()
    return (res[0] + background).clip(0, 1).astype(np.float32), res[1].clip(0, 1).astype(np.float32)
