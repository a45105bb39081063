"""Renderings turned into pictures as users have them, for the robustness benchmark and its CI test.

Each perturbation takes a clean rendering (gray uint8 [S, S] and alpha uint8 [S, S]) and returns the picture
a user would give `voxlift reconstruct`: RGB uint8 [H, W, 3] with no alpha (except "clean", RGBA). The photo
backgrounds are Debian's mate-backgrounds nature photographs, never seen in training (the training bank is
made from Blender's world HDRIs). Everything is seeded by `seed`: the same call gives the same picture.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

PHOTOS = Path("/usr/share/backgrounds/mate/nature")  # apt-get install mate-backgrounds (.ci/run does)
PERTURBATIONS = (
    "clean",  # the rendering as RGBA: the reference
    "white",  # no alpha, on white
    "tinted",  # a coloured object (warm tint) on white
    "grey",  # on a grey backdrop, no alpha
    "photo",  # on a photograph, no alpha
    "cluttered",  # on a photograph with other things (boxes, frames) around the object
    "noise",  # on a noise texture
    "darker",  # darker lighting (exposure and gamma), on white
    "harder",  # harder light: more contrast on the object, on white
    "small",  # small and off-centre in a larger frame, on white
    "blur_jpeg",  # blurred and saved as a JPEG of quality 40, on white
)


def _photos() -> list[Path]:
    found = sorted(PHOTOS.glob("*.jpg"))
    if not found:
        raise FileNotFoundError(f"{PHOTOS}: no photographs; apt-get install mate-backgrounds")
    return found


def photo_crop(side: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of a random held-out photograph, RGB float [side, side, 3] in [0, 1]."""
    from PIL import Image

    with Image.open(rng.choice(_photos())) as im:
        im = im.convert("RGB")
        w, h = im.size
        c = int(rng.uniform(0.3, 0.7) * min(w, h))
        x, y = int(rng.integers(0, w - c + 1)), int(rng.integers(0, h - c + 1))
        crop = im.crop((x, y, x + c, y + c)).resize((side, side), Image.BILINEAR)
    return np.asarray(crop, np.float32) / 255.0


def _noise(side: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((side, side), np.float32)
    for cells, weight in ((4, 0.5), (16, 0.3), (side // 2, 0.2)):
        coarse = rng.random((cells, cells)).astype(np.float32)
        out += weight * np.kron(coarse, np.ones((side // cells + 1,) * 2, np.float32))[:side, :side]
    return np.repeat(out[..., None], 3, 2)


def _clutter(bg: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, count: int = 8) -> np.ndarray:
    """Boxes and frames of random colour on the background, around (mostly behind) the object."""
    s = bg.shape[0]
    out = bg.copy()
    for _ in range(count):
        w, h = rng.integers(s // 10, s // 3, 2)
        x, y = rng.integers(0, s - w), rng.integers(0, s - h)
        colour = rng.random(3).astype(np.float32)
        if rng.random() < 0.5:
            out[y : y + h, x : x + w] = colour
        else:  # a frame: the outline only
            t = max(1, s // 64)
            for sl in (
                (slice(y, y + t), slice(x, x + w)),
                (slice(y + h - t, y + h), slice(x, x + w)),
                (slice(y, y + h), slice(x, x + t)),
                (slice(y, y + h), slice(x + w - t, x + w)),
            ):
                out[sl] = colour
    return out


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(sigma)))


def user_picture(gray: np.ndarray, alpha: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """The rendering (gray, alpha uint8 [S, S]) as the picture `kind` (see PERTURBATIONS)."""
    rng = np.random.default_rng([seed, PERTURBATIONS.index(kind)])
    s = gray.shape[0]
    g = gray.astype(np.float32)[..., None] / 255.0
    a = alpha.astype(np.float32)[..., None] / 255.0
    obj = np.repeat(g, 3, 2)
    if kind == "clean":
        return np.dstack([np.repeat(gray[..., None], 3, 2), alpha])
    if kind == "tinted":
        obj = obj * np.array([1.0, 0.78, 0.55], np.float32)  # a warm wood-like tint
    elif kind == "darker":
        obj = 0.55 * obj**1.4
    elif kind == "harder":
        obj = np.clip((obj - obj[a[..., 0] > 0.5].mean()) * 1.8 + 0.45, 0, 1)
    background = {
        "grey": lambda: np.full((s, s, 3), 0.5, np.float32),
        "photo": lambda: photo_crop(s, rng),
        "cluttered": lambda: _clutter(photo_crop(s, rng), a, rng),
        "noise": lambda: _noise(s, rng),
    }.get(kind, lambda: np.ones((s, s, 3), np.float32))()
    picture = obj * a + background * (1 - a)
    rgb = np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8)
    if kind == "small":
        big = np.full((3 * s, 4 * s, 3), 255, np.uint8)
        small = rgb[::2, ::2]  # half the size, in a frame twelve times larger
        y, x = int(rng.integers(0, 3 * s - len(small))), int(rng.integers(0, 4 * s - len(small)))
        big[y : y + len(small), x : x + len(small)] = small
        return big
    if kind == "blur_jpeg":
        return _jpeg(_blur(rgb, 1.0), 40)
    return rgb
