"""Pictures as users have them, made on the fly from the stored renderings and their alpha.

A rendering is a gray object on the renderer's background with an exact alpha. Training turns each into a
picture such as a user has: the object moved and scaled, in front of a new background (the render's own, a
solid level, a gradient, noise, random shapes, or a crop of a real photograph from the background bank), then
the whole picture changed as a camera and a room change it (exposure, contrast, gamma, blur, sensor noise).
Infinite variety at no render cost; every draw comes from a torch.Generator, so a batch is a function of
(seed, step) and a resumed run sees what the killed one would have.

The background bank (assets/backgrounds.png, made by `python build.py assets` from the CC0 world HDRIs that
Blender ships) is an atlas of TILE x TILE gray crops of real photographs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

BANK_PATH = Path(__file__).resolve().parent / "assets" / "backgrounds.png"
BANK_TILE = 96
BACKGROUND_KINDS = ("render", "solid", "gradient", "noise", "shapes", "photo")


@functools.lru_cache(maxsize=4)
def load_bank(path: str | None = None) -> torch.Tensor:
    """The bank's crops, uint8 [K, TILE, TILE] (empty tiles at the atlas's end dropped)."""
    from ..dataset_tools.png import read_png

    atlas = read_png(path or BANK_PATH)
    if atlas.ndim == 3:
        atlas = atlas[..., 0]
    rows, cols = atlas.shape[0] // BANK_TILE, atlas.shape[1] // BANK_TILE
    tiles = atlas[: rows * BANK_TILE, : cols * BANK_TILE].reshape(rows, BANK_TILE, cols, BANK_TILE)
    tiles = tiles.transpose(0, 2, 1, 3).reshape(-1, BANK_TILE, BANK_TILE)
    return torch.from_numpy(np.ascontiguousarray(tiles[tiles.reshape(len(tiles), -1).max(1) > 0]))


@dataclass
class PictureConfig:
    """How far training pictures stray from the renderings. `kinds`: each background kind's share."""

    kinds: tuple[float, ...] = (0.25, 0.12, 0.12, 0.08, 0.08, 0.35)  # in BACKGROUND_KINDS' order
    photometric: float = 0.4  # share of pictures given another exposure, contrast and gamma
    blur: float = 0.2  # share blurred (sigma up to 1.2 px at the network's size)
    noise: float = 0.2  # share given sensor noise (sigma up to 0.04)


def _rand(b: int, gen: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, generator=gen)


def warp(img: torch.Tensor, alpha: torch.Tensor, background: float, scale, shift) -> tuple[torch.Tensor, ...]:
    """Move and scale the object: [B, S, S] image and alpha; scale [B] (1: as rendered), shift [B, 2] as a share
    of the side. Outside the rendering the image is the render's background and alpha 0."""
    b, s = img.shape[0], img.shape[-1]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = -(shift * 2) / scale[:, None]  # normalised coordinates span 2
    grid = F.affine_grid(theta.to(img.device), [b, 2, s, s], align_corners=False)
    both = F.grid_sample(
        torch.stack([img - background, alpha], 1),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return both[:, 0] + background, both[:, 1]


def bbox_framing(alpha: torch.Tensor, fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) for `warp` that frame each alpha's bounding box as framing.frame_picture frames a user's
    picture: its longest side `fill` of the picture's side, its centre in the middle. alpha [B, S, S]."""
    b, s = alpha.shape[0], alpha.shape[-1]
    on = alpha > 0.5
    rows, cols = on.any(2).float(), on.any(1).float()  # [B, S]: which rows / columns hold the object
    idx = torch.arange(s, dtype=torch.float32, device=alpha.device)
    has = rows.sum(1) > 0
    zero, full = torch.zeros(b, device=alpha.device), torch.full((b,), float(s), device=alpha.device)
    y0 = torch.where(has, (idx + (1 - rows) * s).min(1).values, zero)
    y1 = torch.where(has, (idx * rows).max(1).values + 1, full)
    x0 = torch.where(has, (idx + (1 - cols) * s).min(1).values, zero)
    x1 = torch.where(has, (idx * cols).max(1).values + 1, full)
    scale = fill * s / torch.maximum(x1 - x0, y1 - y0)
    centre = torch.stack([(x0 + x1) / s - 1, (y0 + y1) / s - 1], 1)  # normalised, as affine_grid's x, y
    return scale.cpu(), (-scale[:, None] * centre / 2).cpu()


def _photo(b: int, s: int, gen: torch.Generator, bank: torch.Tensor) -> torch.Tensor:
    """Random crops of the bank's photographs, flipped at random, resized to s, with their own exposure."""
    tiles = bank[torch.randint(0, len(bank), (b,), generator=gen)].float().unsqueeze(1) / 255.0
    size = _rand(b, gen, 0.45, 1.0)
    centre = (torch.rand(b, 2, generator=gen) * 2 - 1) * (1 - size[:, None])
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = size * flip, size, centre
    grid = F.affine_grid(theta, [b, 1, s, s], align_corners=False)
    out = F.grid_sample(tiles, grid, mode="bilinear", padding_mode="reflection", align_corners=False)[:, 0]
    gain, offset = _rand(b, gen, 0.6, 1.3).view(b, 1, 1), _rand(b, gen, -0.2, 0.2).view(b, 1, 1)
    return (out - 0.5) * gain + 0.5 + offset


def _noise(b: int, s: int, gen: torch.Generator) -> torch.Tensor:
    """Value noise over three octaves: blotchy texture like a carpet, a wall or foliage out of focus."""
    out = torch.zeros(b, 1, s, s)
    blocky = bool(torch.rand(1, generator=gen) < 0.5)  # smooth blotches, or tiles and pixels
    for cells, weight in ((4, 0.5), (12, 0.3), (s // 2, 0.2)):
        coarse = torch.rand(b, 1, cells, cells, generator=gen)
        if blocky:
            out += weight * F.interpolate(coarse, size=(s, s), mode="nearest")
        else:
            out += weight * F.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False)
    contrast = _rand(b, gen, 0.5, 2.0).view(b, 1, 1)
    return ((out[:, 0] - 0.5) * contrast + _rand(b, gen, 0.25, 0.75).view(b, 1, 1)).clamp(0, 1)


def _shapes(b: int, s: int, gen: torch.Generator, count: int = 6) -> torch.Tensor:
    """A level with random rectangles on it, filled or only outlined (1-3 px): walls, doors, shelves, picture
    and window frames, other furniture at the edge of view."""
    out = _rand(b, gen).view(b, 1, 1).expand(b, s, s).clone()
    ys, xs = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    for _ in range(count):
        lo = (torch.rand(b, 2, generator=gen) * s).view(b, 2, 1, 1)
        size = (torch.rand(b, 2, generator=gen) * 0.6 * s + 2).view(b, 2, 1, 1)
        hi = lo + size
        inside = (ys >= lo[:, 0]) & (ys < hi[:, 0]) & (xs >= lo[:, 1]) & (xs < hi[:, 1])
        line = torch.randint(1, 4, (b, 1, 1), generator=gen)
        outline = torch.rand(b, 1, 1, generator=gen) < 0.5
        core = (
            (ys >= lo[:, 0] + line)
            & (ys < hi[:, 0] - line)
            & (xs >= lo[:, 1] + line)
            & (xs < hi[:, 1] - line)
        )
        inside = inside & ~(outline & core)
        out = torch.where(inside, _rand(b, gen).view(b, 1, 1), out)
    return out


def backgrounds(kinds: torch.Tensor, s: int, gen: torch.Generator, render_level: float, bank) -> torch.Tensor:
    """[B, s, s] backgrounds in [0, 1], each of the kind kinds[i] (an index into BACKGROUND_KINDS)."""
    b = len(kinds)
    level = _rand(b, gen).view(b, 1, 1)
    ramp = torch.linspace(-0.5, 0.5, s)
    slope = (torch.rand(b, 2, 1, 1, generator=gen) * 2 - 1) * 0.8
    made = {
        "render": torch.full((b, s, s), float(render_level)),
        "solid": level.expand(b, s, s),
        "gradient": level + slope[:, 0] * ramp.view(1, s, 1) + slope[:, 1] * ramp.view(1, 1, s),
        "noise": _noise(b, s, gen),
        "shapes": _shapes(b, s, gen),
        "photo": _photo(b, s, gen, bank) if bank is not None and len(bank) else _noise(b, s, gen),
    }
    out = torch.empty(b, s, s)
    for k, name in enumerate(BACKGROUND_KINDS):
        pick = kinds == k
        if pick.any():
            out[pick] = made[name][pick]
    return out.clamp(0, 1)


def photometric(img: torch.Tensor, cfg: PictureConfig, gen: torch.Generator) -> torch.Tensor:
    """Another camera and another room: exposure, contrast and gamma, blur, sensor noise. img [B, s, s]."""
    b, s = img.shape[0], img.shape[-1]
    on = (torch.rand(b, generator=gen) < cfg.photometric).view(b, 1, 1)
    gamma = torch.exp(_rand(b, gen, -0.6, 0.6)).view(b, 1, 1)
    contrast, offset = _rand(b, gen, 0.6, 1.2).view(b, 1, 1), _rand(b, gen, -0.15, 0.1).view(b, 1, 1)
    changed = ((img.clamp(1e-4, 1) ** gamma - 0.5) * contrast + 0.5 + offset).clamp(0, 1)
    img = torch.where(on.to(img.device), changed, img)
    sigma = _rand(b, gen, 0.3, 1.2) * (torch.rand(b, generator=gen) < cfg.blur)
    if (sigma > 0).any():
        img = _blur(img, sigma.to(img.device))
    noise = _rand(b, gen, 0.0, 0.04) * (torch.rand(b, generator=gen) < cfg.noise)
    img = img + noise.view(b, 1, 1).to(img.device) * torch.randn(b, s, s, generator=gen).to(img.device)
    return img.clamp(0, 1)


def _blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (sigma 0: unchanged), 5-tap separable."""
    x = torch.arange(-2, 3, dtype=img.dtype, device=img.device)
    k = torch.exp(-(x.view(1, -1) ** 2) / (2 * sigma.clamp(min=1e-3).view(-1, 1) ** 2))
    k = k / k.sum(1, keepdim=True)  # [B, 5]
    b = img.shape[0]
    out = F.conv2d(F.pad(img.unsqueeze(0), (2, 2, 0, 0), mode="replicate"), k.view(b, 1, 1, 5), groups=b)
    out = F.conv2d(F.pad(out, (0, 0, 2, 2), mode="replicate"), k.view(b, 1, 5, 1), groups=b)[0]
    return torch.where((sigma > 0).view(b, 1, 1), out, img)


def picture(
    img, alpha, render_level: float, scale, shift, cfg: PictureConfig, gen, bank
) -> tuple[torch.Tensor, ...]:
    """Renderings [B, s, s] (gray, alpha in [0, 1]) -> (pictures, their alpha): the object moved by
    (scale, shift) (None: left where it is), a new background behind it, the photometric changes over all."""
    if scale is not None:
        img, alpha = warp(img, alpha, render_level, scale, shift)
    kinds = torch.multinomial(
        torch.tensor(cfg.kinds, dtype=torch.float32), len(img), replacement=True, generator=gen
    )
    bg = backgrounds(kinds, img.shape[-1], gen, render_level, bank).to(img.device)
    # the rendering is object * alpha + render_level * (1 - alpha): swap the level for the new background
    out = img + (bg - render_level) * (1 - alpha)
    return photometric(out, cfg, gen), alpha


@dataclass
class MaskErrors:
    """How far the object's mask found at use (by the mask model, or the border colour) strays from the truth."""

    share: float = 0.4  # pictures whose mask is not exact
    radius: int = 2  # largest dilation or erosion, in pixels of the network's input
    blur: float = 1.0  # largest softening of the mask's edge (sigma, pixels)


def found_mask(alpha: torch.Tensor, cfg: MaskErrors, gen: torch.Generator) -> torch.Tensor:
    """A mask such as inference finds for `alpha` [B, s, s]: grown (background leaks in) or shrunk (the
    object's rim is lost) by up to `radius` pixels, with a softened edge; exact for 1 - share of them."""
    b = alpha.shape[0]
    out = alpha.clone()
    wrong = torch.rand(b, generator=gen) < cfg.share
    radius = torch.randint(1, cfg.radius + 1, (b,), generator=gen)
    grow = torch.rand(b, generator=gen) < 0.5
    for r in range(1, cfg.radius + 1):
        for g in (True, False):
            pick = wrong & (radius == r) & (grow == g)
            if pick.any():
                x = alpha[pick].unsqueeze(1)
                k = 2 * r + 1
                moved = F.max_pool2d(x, k, 1, r) if g else -F.max_pool2d(-x, k, 1, r)
                out[pick] = moved[:, 0]
    sigma = torch.rand(b, generator=gen) * cfg.blur * wrong
    if (sigma > 0).any():
        out = _blur(out, sigma.to(out.device))
    # a thin chair shrunk by two pixels may be gone: inference would still find it, so keep the truth then
    lost = (out > 0.5).flatten(1).sum(1) < 0.3 * (alpha > 0.5).flatten(1).sum(1)
    out[lost] = alpha[lost]
    return out.clamp(0, 1)
