"""Pictures as numbers, numpy only: what the add-on (which imports without torch) and framing.py share.

One home for the thresholds a picture meets on its way in (how small is too small, how large is shrunk, what
alpha says nothing) and the two conversions everything uses (to float in [0, 1], a whole-factor box shrink).
"""

from __future__ import annotations

import numpy as np

UINT16_MAX = 65535
# Pixels on the short side below which a picture (or an object in it) cannot show anything to reconstruct:
# checked where pictures are read (io/images.py, one line before any loading) and where they are framed.
MIN_IMAGE_SIDE = 16
WORKING_SIDE = 512  # larger pictures are shrunk to this first (box filter): framing to 64 px needs no more
OPAQUE = 0.99  # an alpha channel at least this opaque everywhere carries no silhouette (a JPEG in Blender)


def _scale(dtype: np.dtype) -> np.float32:
    """What one unit of a pixel type is worth in [0, 1]."""
    return np.float32(1 / 255 if dtype == np.uint8 else 1 / UINT16_MAX if dtype == np.uint16 else 1)


def unit_float(a) -> np.ndarray:
    """Pixels as float32 in [0, 1]: 8- and 16-bit integers scaled by their range, floats as they are."""
    a = np.asarray(a)
    if a.dtype in (np.uint8, np.uint16):
        return a.astype(np.float32) * _scale(a.dtype)
    return a.astype(np.float32, copy=False)


def downsample(a, max_side: int = WORKING_SIDE) -> np.ndarray:
    """`a` [H, W] or [H, W, C] shrunk by a whole factor k (box filter: each output pixel the mean of k x k)
    so that its longer side is at most `max_side`; float32 in [0, 1] (see unit_float). A 4000x3000 photo
    takes about 0.1 s: the rows are summed first (contiguous, straight from the pixel type), then the columns
    of the k times smaller rest."""
    a = np.asarray(a)
    h, w = a.shape[:2]
    # ceil, but never so far that a picture big enough to show an object becomes too small (a panorama)
    k = min(-(-max(h, w) // max_side), max(1, min(h, w) // MIN_IMAGE_SIDE))
    if k <= 1:
        return unit_float(a)
    hh, ww = h // k, w // k
    rest = a.shape[2:]
    rows = a[: hh * k].reshape(hh, k, w, *rest).sum(axis=1, dtype=np.float32)
    blocks = rows[:, : ww * k].reshape(hh, ww, k, *rest).sum(axis=2, dtype=np.float32)
    return blocks * (_scale(a.dtype) / np.float32(k * k))
