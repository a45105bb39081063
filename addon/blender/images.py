"""Blender images as numpy arrays (rows top first, float32 [H, W, C]): datablocks, files Blender reads, and
the render result. The CLI inside Blender reads non-PNG files with file_pixels (Blender has no Pillow)."""

from __future__ import annotations

import os
import tempfile

import bpy
import numpy as np

from ..dataset_tools.errors import VoxliftError

RENDER_RESULT = "Render Result"


def image_pixels(img: bpy.types.Image) -> np.ndarray:
    """An image datablock's pixels as float32 [H, W, C], rows top first."""
    name = bpy.path.abspath(img.filepath) if img.filepath else img.name
    try:
        w, h = img.size
        c = img.channels
    except Exception:  # noqa: BLE001 (an image without pixels raises several types)
        w = h = c = 0
    if w == 0 or h == 0 or (not img.has_data and len(img.pixels) == 0):
        raise VoxliftError(f"{name}: the image does not load (missing file or not an image)")
    buf = np.empty(w * h * c, dtype=np.float32)
    img.pixels.foreach_get(buf)
    return buf.reshape(h, w, c)[::-1].copy()  # Blender stores the bottom row first


def file_pixels(path: str | os.PathLike) -> np.ndarray:
    """Any image file Blender reads, as float32 [H, W, C] top first; the temporary datablock is removed."""
    try:
        img = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as exc:
        raise VoxliftError(f"{path}: not an image Blender can read ({str(exc).strip()})") from None
    try:
        return image_pixels(img)
    finally:
        bpy.data.images.remove(img)


def render_result_pixels(scene) -> np.ndarray:
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
        return file_pixels(path)
