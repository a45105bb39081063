"""Thumbnails in numpy alone: a shaded 3/4 view of a voxel grid, and contact sheets of images with labels.

grid_preview ray-marches the grid with an orthographic camera from the front-right, above (voxlift's
azimuth 30, elevation 30: the front, -Y, is towards the viewer), and shades each hit by the face it entered
through (top brightest), so that thin rods and the backrest side read at a glance. White background.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = 255
# Gray of the faces whose normal is along x, y, z (top lit, sides darker), before a small depth cue.
_FACE_GRAY = np.array([150.0, 110.0, 215.0])


def grid_preview(
    voxels: np.ndarray, size: int = 128, azimuth: float = 30.0, elevation: float = 30.0
) -> np.ndarray:
    """uint8 [size, size]: the occupied voxels of an [x, y, z] grid (Z up) seen from (azimuth, elevation)."""
    grid = np.asarray(voxels, bool)
    if grid.ndim != 3:
        raise ValueError(f"grid_preview takes a 3D grid, not shape {grid.shape}")
    res = np.array(grid.shape)
    az, el = np.radians(azimuth), np.radians(elevation)
    back = np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])  # towards the viewer
    right = np.array([np.cos(az), np.sin(az), 0.0])
    up = np.cross(back, right)
    span = 1.8  # the unit cube's diagonal is 1.73: it always fits
    s = (np.arange(size) + 0.5) / size - 0.5
    u, v = np.meshgrid(s * span, -s * span)  # rows top first
    image = np.full(size * size, BACKGROUND, np.float64)
    occupied = np.argwhere(grid)
    if len(occupied) == 0:
        return image.astype(np.uint8).reshape(size, size)
    # Only rays through the occupied voxels' projected bounding box, only along the cube's depth range.
    corners = np.array([occupied.min(0), occupied.max(0) + 1]) / res - 0.5
    corners = np.array(
        [[corners[i, 0], corners[j, 1], corners[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )
    cu, cv = corners @ right, corners @ up
    pad = 1.0 / res.max()
    keep = (
        (u >= cu.min() - pad) & (u <= cu.max() + pad) & (v >= cv.min() - pad) & (v <= cv.max() + pad)
    ).ravel()
    rays_kept = np.nonzero(keep)[0]
    origins = u.ravel()[rays_kept, None] * right + v.ravel()[rays_kept, None] * up + 1.5 * back
    ts = np.arange(1.5 - 0.9, 1.5 + 0.9, 0.45 / res.max())
    sub = np.full(len(rays_kept), BACKGROUND, np.float64)
    hit = np.zeros(len(rays_kept), bool)
    prev_idx = None
    # March all rays together, a slab of steps at a time (bounded memory: rays x 64 samples).
    for start in range(0, len(ts), 64):
        t = ts[start : start + 64]
        pts = origins[:, None, :] - t[None, :, None] * back  # [rays, steps, 3]
        idx = np.floor((pts + 0.5) * res).astype(np.int64)
        inside = ((idx >= 0) & (idx < res)).all(axis=2)
        clipped = np.clip(idx, 0, res - 1)
        occ = inside & grid[clipped[..., 0], clipped[..., 1], clipped[..., 2]]
        occ &= ~hit[:, None]
        first = occ.any(axis=1)
        if first.any():
            k = occ.argmax(axis=1)
            rays = np.nonzero(first)[0]
            cur = idx[rays, k[rays]]
            before = np.where(
                (k[rays] > 0)[:, None],
                idx[rays, np.maximum(k[rays] - 1, 0)],
                prev_idx[rays] if prev_idx is not None else cur,
            )
            axis = np.abs(cur - before).argmax(axis=1)
            depth = t[k[rays]] / 3.0
            sub[rays] = _FACE_GRAY[axis] * (1.1 - 0.5 * depth)
            hit[rays] = True
        prev_idx = idx[:, -1]
        if hit.all():
            break
    image[rays_kept] = sub
    return np.clip(image, 0, 255).astype(np.uint8).reshape(size, size)


# A 3x5 pixel font (rows top first) for labels: digits, letters (case-folded) and a few signs.
_GLYPHS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
    "A": "010101111101101",
    "B": "110101110101110",
    "C": "011100100100011",
    "D": "110101101101110",
    "E": "111100110100111",
    "F": "111100110100100",
    "G": "011100101101011",
    "H": "101101111101101",
    "I": "111010010010111",
    "J": "001001001101010",
    "K": "101101110101101",
    "L": "100100100100111",
    "M": "101111111101101",
    "N": "110101101101101",
    "O": "010101101101010",
    "P": "110101110100100",
    "Q": "010101101110011",
    "R": "110101110101101",
    "S": "011100010001110",
    "T": "111010010010010",
    "U": "101101101101111",
    "V": "101101101101010",
    "W": "101101111111101",
    "X": "101101010101101",
    "Y": "101101010010010",
    "Z": "111001010100111",
    "-": "000000111000000",
    ".": "000000000000010",
    ":": "000010000010000",
    "/": "001001010100100",
    "_": "000000000000111",
    " ": "000000000000000",
    "%": "101001010100101",
    "=": "000111000111000",
}


def text_image(text: str, scale: int = 2) -> np.ndarray:
    """bool [5*scale, 4*scale*len(text)] of the text (unknown characters drawn as '?'-less blanks)."""
    cols = []
    for ch in text.upper():
        g = np.array([c == "1" for c in _GLYPHS.get(ch, _GLYPHS[" "])]).reshape(5, 3)
        cols.append(np.pad(g, ((0, 0), (0, 1))))
    if not cols:
        return np.zeros((5 * scale, 0), bool)
    img = np.concatenate(cols, axis=1)
    return np.kron(img, np.ones((scale, scale), bool))


def _to_gray(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == bool:
        a = np.where(a, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2).astype(np.uint8) if a.shape[2] >= 3 else a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"contact_sheet takes 2D images (or HxWxC), not shape {np.shape(img)}")
    return a


def contact_sheet(
    images: list[np.ndarray], columns: int = 8, labels: list[str] | None = None, gap: int = 2
) -> np.ndarray:
    """uint8 gray sheet of the images in rows of `columns`, each with its label under it (optional)."""
    if not len(images):
        raise ValueError("contact_sheet needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    tiles = [_to_gray(i) for i in images]
    cell_h = max(t.shape[0] for t in tiles)
    cell_w = max(t.shape[1] for t in tiles)
    label_h = 14 if labels is not None else 0
    columns = max(1, min(int(columns), len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * (cell_h + label_h + gap) + gap, columns * (cell_w + gap) + gap), 255, np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, columns)
        y, x = gap + r * (cell_h + label_h + gap), gap + c * (cell_w + gap)
        sheet[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
        if labels is not None:
            text = text_image(str(labels[n]))[:, :cell_w]
            ty = y + cell_h + 2
            sheet[ty : ty + text.shape[0], x : x + text.shape[1]][text] = 0
    return sheet
