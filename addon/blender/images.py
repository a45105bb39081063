"""Blender images as numpy arrays (rows top first, float32 [H, W, C]): datablocks, files Blender reads, and
the render result. The CLI inside Blender reads non-PNG files with file_pixels (Blender has no Pillow).

The values are the file's, as `voxlift reconstruct` reads them, whatever Blender does to show the image:
Blender keeps 16-bit and float images in scene-linear light, alpha premultiplied, so a 16-bit gray PNG's
0.18 reads 0.027 from `Image.pixels`. Such an image is read again from its file (or its packed bytes) as
non-colour data, which Blender leaves as stored; one without a file (generated, painted and unsaved) is
turned back (alpha un-premultiplied, linear to sRGB): what an 8- or 16-bit file of it would hold, and what
the Image Editor shows.
8-bit images are kept as bytes: Blender's pixels are already the file's.

Big pictures are shrunk (a whole factor, box filter) before the rows are flipped, the cheap order: a
4000x3000 picture takes about as long as reading its pixels out of Blender.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy
import numpy as np

from ..dataset_tools.errors import VoxliftError
from ..io.images import RGBA, check_image, check_size, downsample

RENDER_RESULT = "Render Result"
DATA_COLORSPACES = ("Non-Color", "Raw")  # values Blender keeps as stored (no colour transform)
SRGB_BREAK, SRGB_SLOPE, SRGB_GAMMA, SRGB_OFFSET = 0.0031308, 12.92, 2.4, 0.055  # IEC 61966-2-1
MIN_ALPHA = 1e-6  # below this a premultiplied pixel has no colour left to recover


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Scene-linear values as sRGB-encoded ones (the piecewise sRGB transfer function)."""
    x = np.clip(x, 0.0, None)
    curve = (1 + SRGB_OFFSET) * np.power(x, 1 / SRGB_GAMMA, dtype=np.float32) - SRGB_OFFSET
    return np.where(x <= SRGB_BREAK, SRGB_SLOPE * x, curve).astype(np.float32)


def _raw_pixels(img: bpy.types.Image, name: str, max_side: int | None) -> np.ndarray:
    """Blender's pixels as float32 [H, W, C] top first. With `max_side` (preparing a picture to reconstruct)
    a picture too small to show an object is refused first, and a big one shrunk to at most that."""
    try:
        w, h = img.size
        c = img.channels
    except Exception:  # noqa: BLE001 (an image without pixels raises several types)
        w = h = c = 0
    if w == 0 or h == 0 or (not img.has_data and len(img.pixels) == 0):
        raise VoxliftError(f"{name}: the image does not load (missing file or not an image)")
    if max_side:
        check_size(h, w, name)
    buf = np.empty(w * h * c, dtype=np.float32)
    img.pixels.foreach_get(buf)
    bottom_first = buf.reshape(h, w, c)
    if max_side:
        bottom_first = downsample(bottom_first, max_side)
    return check_image(bottom_first[::-1], name)  # Blender stores the bottom row first


def _is_data(img: bpy.types.Image) -> bool:
    settings = img.colorspace_settings
    return bool(getattr(settings, "is_data", False)) or settings.name in DATA_COLORSPACES


def _from_scene_linear(pixels: np.ndarray, img: bpy.types.Image) -> np.ndarray:
    """A float image without a file, as an sRGB file of it would hold it: straight alpha, sRGB-encoded."""
    out = pixels.copy()
    if out.ndim == 3 and out.shape[2] == RGBA:
        alpha = out[..., 3:]
        out[..., :3] = np.where(alpha > MIN_ALPHA, out[..., :3] / np.maximum(alpha, MIN_ALPHA), 0.0)
    colour = out[..., :3] if out.ndim == 3 else out
    colour[...] = linear_to_srgb(colour)
    return out


def _source_file(img: bpy.types.Image, tmp: str) -> str | None:
    """A file holding the image's stored bytes: its file on disk, or its packed bytes; None without one."""
    if img.packed_file is not None:
        path = os.path.join(tmp, "packed" + (Path(img.filepath).suffix or ".img"))
        Path(path).write_bytes(bytes(img.packed_file.data))
        return path
    if img.source == "FILE" and img.filepath:
        path = bpy.path.abspath(img.filepath)
        return path if os.path.isfile(path) else None
    return None


def image_pixels(img: bpy.types.Image, max_side: int | None = None) -> np.ndarray:
    """An image datablock's pixels as float32 [H, W, C], rows top first, the values its file holds (see
    above), shrunk to at most `max_side` pixels when given."""
    name = bpy.path.abspath(img.filepath) if img.filepath else img.name
    if not img.is_float or _is_data(img):
        return _raw_pixels(img, name, max_side)
    if not img.is_dirty:
        with tempfile.TemporaryDirectory(prefix="voxlift-") as tmp:
            source = _source_file(img, tmp)
            if source is not None:
                return file_pixels(source, max_side, name=name)
    return _from_scene_linear(_raw_pixels(img, name, max_side), img)


def file_pixels(path: str | os.PathLike, max_side: int | None = None, name=None) -> np.ndarray:
    """Any image file Blender reads, as float32 [H, W, C] top first with the values the file stores (read
    as non-colour data); the temporary datablock is removed."""
    name = name or path
    try:
        img = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as exc:
        raise VoxliftError(f"{name}: not an image Blender can read ({str(exc).strip()})") from None
    try:
        img.colorspace_settings.is_data = True  # no colour transform: the stored values
        return _raw_pixels(img, str(name), max_side)
    finally:
        bpy.data.images.remove(img)


def render_result_pixels(scene, max_side: int | None = None) -> np.ndarray:
    """The Render Result's pixels (not readable directly: saved to a temporary file and read back)."""
    img = bpy.data.images.get(RENDER_RESULT)
    if img is None:
        raise VoxliftError("no render result: render an image first (F12)")
    with tempfile.TemporaryDirectory(prefix="voxlift-") as tmp:
        path = os.path.join(tmp, "render.png")
        try:
            img.save_render(filepath=path, scene=scene)
        except RuntimeError as exc:
            raise VoxliftError(
                f"no render result to use ({str(exc).strip()}): render an image first"
            ) from None
        return file_pixels(path, max_side, name=RENDER_RESULT)
