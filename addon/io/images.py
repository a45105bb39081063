"""Image files as numpy arrays: PNG (read by voxlift, no Pillow needed), .npy arrays, anything Pillow reads.

Where Pillow is missing (Blender's own Python), `load_image` hands other formats to a `fallback` reader: the
CLI inside Blender passes blender.images.file_pixels, so this module never needs bpy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..backend.pictures import MIN_IMAGE_SIDE, UINT16_MAX, downsample, unit_float  # noqa: F401 (this module's API)
from ..dataset_tools.errors import VoxliftError

MAX_IMAGE_PIXELS = 50_000_000  # a 7000x7000 photo; reconstruct downsamples everything to the model's input
MIN_ARRAY_SIDE = 8  # what the loader takes as an image at all (smaller: "not an image array")
GRAY_ALPHA, RGB, RGBA = 2, 3, 4  # channel counts
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # Pillow's modes of 16-bit gray files

ImageReader = Callable[[Path], np.ndarray]


def check_image_file(path: str | os.PathLike) -> Path:
    """The path, if it names a non-empty file; else VoxliftError naming it."""
    p = Path(path)
    if not p.is_file():
        raise VoxliftError(f"{p}: no such image file" if not p.exists() else f"{p}: not a file")
    if p.stat().st_size == 0:
        raise VoxliftError(f"{p}: empty file, not an image")
    return p


def load_image(path: str | os.PathLike, fallback: ImageReader | None = None) -> np.ndarray:
    """An image file as a numpy array, rows top first: [H, W] or [H, W, C], uint8/uint16 or float."""
    p = check_image_file(path)
    if p.suffix.lower() == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 (numpy raises many types for a damaged file)
            raise VoxliftError(f"{p}: not a readable .npy array ({exc})") from None
        return check_image(a, p)
    with open(p, "rb") as f:
        head = f.read(8)
    from ..dataset_tools.png import SIGNATURE, read_png

    if head == SIGNATURE:
        a = read_png(p)
        return check_image(a.astype(np.float32) / 65535 if a.dtype == np.uint16 else a, p)
    try:
        import PIL.Image  # noqa: F401 - only asks whether Pillow is here
    except ImportError:
        if fallback is None:
            raise VoxliftError(f"{p}: not a PNG, and neither Pillow nor Blender is here to read it") from None
        return check_image(fallback(p), p)
    return check_image(_load_with_pillow(p), p)


def _load_with_pillow(p: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(p) as im:
            # Refuse by the header's claim before decoding: a few kB of GIF can claim 10^8 pixels, and Pillow
            # only warns below 179 MP.
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise VoxliftError(
                    f"{p}: {im.width}x{im.height} pixels is more than this voxlift reads "
                    f"({MAX_IMAGE_PIXELS} pixels); scale the image down first"
                )
            im.load()
            if im.mode in SIXTEEN_BIT_MODES:  # convert("RGB") would clip 16-bit gray at 255
                return np.asarray(im, dtype=np.float32) / UINT16_MAX
            return np.asarray(
                im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
            )
    except VoxliftError:
        raise
    except Exception as exc:  # noqa: BLE001 (Pillow raises many types for a damaged file)
        raise VoxliftError(f"{p}: not an image this voxlift can read ({exc})") from None


def check_size(height: int, width: int, name) -> None:
    """VoxliftError for a picture too small to show an object (what reconstructing checks; the loader
    itself reads any image, so it can be looked at or scaled up)."""
    if min(height, width) < MIN_IMAGE_SIDE:
        raise VoxliftError(
            f"{name}: {width}x{height} pixels is too small to show an object; voxlift needs at least "
            f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"
        )


def check_image(a: np.ndarray, name) -> np.ndarray:
    """An image array as [H, W] gray or [H, W, 3|4]; VoxliftError naming `name` for anything else."""
    a = np.asarray(a)
    channels_ok = a.ndim == 2 or (a.ndim == 3 and 1 <= a.shape[2] <= RGBA)
    if not channels_ok or min(a.shape[:2]) < MIN_ARRAY_SIDE:
        raise VoxliftError(
            f"{name}: not an image array (shape {a.shape}; expected HxW, HxWx3 or HxWx4, at least "
            f"{MIN_ARRAY_SIDE}x{MIN_ARRAY_SIDE} pixels)"
        )
    if a.dtype.kind not in "uif" or (a.dtype.kind == "f" and not np.isfinite(a).all()):
        raise VoxliftError(f"{name}: image values must be finite numbers (dtype {a.dtype})")
    if a.ndim == 3 and a.shape[2] == GRAY_ALPHA:
        a = np.concatenate([np.repeat(a[..., :1], RGB, axis=2), a[..., 1:]], axis=2)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return a
