"""The background bank: grayscale crops of real photographs that training composites behind the renderings.

    python -m voxlift.blender.backgrounds --out backend/assets/backgrounds.png [--from DIR ...]

The photographs are Blender's own world HDRIs (datafiles/studiolights/world: eight CC0 panoramas from Poly
Haven, a hotel room, a courtyard, a city, a forest, ...), read with bpy because they are DWAA-compressed EXR
that numpy cannot decode, plus the photographs under --from (JPEG, PNG, WebP; files or folders; one picture kept
at several sizes, as Plasma's wallpapers are, counts once). `python build.py assets` adds Debian's
plasma-workspace-wallpapers, ukui-wallpapers and gnome-backgrounds where installed; never mate-backgrounds, the
held-out photographs of the robustness benchmark and test (refused here). Each is tone-mapped to display values (an
exposure that puts its median at mid-grey, then the sRGB curve), turned to luma with the Rec.601 weights users'
pictures get (backend/framing.py), and cut into square crops of random size around the panorama's horizon,
where the distortion of the equirectangular projection is small. The crops are written as one 8-bit gray PNG
atlas of TILE x TILE tiles (backend/background_bank.py reads it, numpy only). `python build.py assets` makes
the shipped bank; the same seed makes the same bank.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import bpy
import numpy as np

TILE = 96  # side of a crop in the atlas (the network sees 64 px)
CROPS_PER_PANORAMA = 16
CROPS_PER_PHOTO = 6
COLUMNS = 16
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SEED = 20261201
FLAT_STD = 0.05  # a crop whose gray values spread less than this is a flat fill, not a photograph's texture


def world_hdri_dir() -> Path:
    return Path(bpy.utils.system_resource("DATAFILES", path="studiolights/world"))


def read_rgb(path: Path) -> np.ndarray:
    """float32 [H, W, 3], rows top first, as Blender reads the file (linear for EXR)."""
    img = bpy.data.images.load(str(path), check_existing=False)
    try:
        w, h = img.size
        px = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(px)
        return px.reshape(h, w, 4)[::-1, :, :3].copy()
    finally:
        bpy.data.images.remove(img)


def to_display_gray(rgb: np.ndarray, linear: bool) -> np.ndarray:
    """[H, W, 3] -> gray [H, W] in [0, 1] as a photo of that scene would show it."""
    rgb = np.nan_to_num(rgb, nan=0.0, posinf=0.0, neginf=0.0).clip(0, None)  # EXRs may hold NaN/inf pixels
    if linear:
        lum = rgb @ LUMA
        rgb = rgb * (0.18 / max(float(np.median(lum)), 1e-4))  # expose the median at mid-grey
        rgb = np.clip(rgb, 0, 1)
        rgb = np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
    return np.clip(rgb @ LUMA, 0, 1)


def resize(gray: np.ndarray, side: int) -> np.ndarray:
    """Area-average (box) resize of a square crop to side x side."""
    n = gray.shape[0]
    edges = np.linspace(0, n, side + 1).astype(int)
    rows = np.add.reduceat(gray, edges[:-1], axis=0) / np.diff(edges)[:, None]
    return np.add.reduceat(rows, edges[:-1], axis=1) / np.diff(edges)[None, :]


def crops(gray: np.ndarray, count: int, rng: np.random.Generator, horizon_band: bool) -> list[np.ndarray]:
    h, w = gray.shape
    out = []
    for _ in range(count):
        side = int(rng.uniform(0.12, 0.3 if horizon_band else 0.6) * min(h, w if not horizon_band else 2 * h))
        side = max(TILE, min(side, h, w))  # never upsampled: a crop keeps the photo's own sharpness
        lo, hi = (int(0.3 * h), int(0.7 * h) - side) if horizon_band else (0, h - side)
        y = int(rng.integers(lo, max(lo, hi) + 1))
        x = int(rng.integers(0, w - side + 1))
        out.append(resize(gray[y : y + side, x : x + side], TILE))
    return out


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
HELD_OUT = Path("/usr/share/backgrounds/mate")  # the robustness benchmark's photographs: never trained on
SIZE_NAME = re.compile(r"^\d+x\d+$")  # Plasma: contents/images/1920x1080.jpg, one picture at many sizes


def photo_files(sources: list[Path]) -> list[Path]:
    """The photographs under `sources` (files or folders), sorted; of files named WxH in one folder, the largest."""
    found = []
    for src in sources:
        if src.resolve().is_relative_to(HELD_OUT) or HELD_OUT.is_relative_to(src.resolve()):
            raise SystemExit(f"{src}: holds {HELD_OUT}, the held-out photographs; name other folders")
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
        found += [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    largest: dict[Path, Path] = {}
    plain = []
    for p in found:
        if not SIZE_NAME.match(p.stem):
            plain.append(p)
        elif p.parent not in largest or _area(p) > _area(largest[p.parent]):
            largest[p.parent] = p
    return sorted(set(plain) | set(largest.values()))


def _area(path: Path) -> int:
    w, h = path.stem.split("x")
    return int(w) * int(h)


def distinct_textured(tiles: list[np.ndarray]) -> list[np.ndarray]:
    """The tiles less flat ones (the loader's solid and gradient kinds make those) and repeats (one wallpaper in
    a light and a dark version may crop alike)."""
    out, seen = [], set()
    for t in tiles:
        key = np.round(t[::8, ::8] * 255).astype(np.uint8).tobytes()
        if float(t.std()) >= FLAT_STD and key not in seen:
            seen.add(key)
            out.append(t)
    return out


def make_bank(photo_dirs: list[Path]) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    tiles = []
    for path in sorted(world_hdri_dir().glob("*.exr")):
        tiles += crops(to_display_gray(read_rgb(path), linear=True), CROPS_PER_PANORAMA, rng, True)
    for path in photo_files(photo_dirs):
        tiles += crops(to_display_gray(read_rgb(path), linear=False), CROPS_PER_PHOTO, rng, False)
    tiles = distinct_textured(tiles)
    rows = -(-len(tiles) // COLUMNS)
    atlas = np.zeros((rows * TILE, COLUMNS * TILE), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, COLUMNS)
        atlas[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = np.round(t * 255).astype(np.uint8)
    return atlas, len(tiles)


def main(argv: list[str] | None = None) -> int:
    from ..dataset_tools.png import write_png

    p = argparse.ArgumentParser(
        prog="python -m voxlift.blender.backgrounds", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", required=True, help="the atlas PNG to write")
    p.add_argument(
        "--from", dest="photos", nargs="*", default=[], help="photographs (files or folders) to add"
    )
    args = p.parse_args(argv)
    atlas, n = make_bank([Path(d) for d in args.photos])
    write_png(args.out, atlas)
    print(f"{args.out}: {n} crops of {TILE} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
