"""Helpers for the sources engineer's tests: a reference PNG encoder for every colour type, tiny chairs
written as OBJ in a source's own frame, and small .sh3f zips."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _chunk(t: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body) & 0xFFFFFFFF)


def _pack_rows(samples: np.ndarray, depth: int) -> np.ndarray:
    """[h, w, c] samples -> [h, rowbytes] bytes, big-endian, MSB-first bit packing."""
    h, w, c = samples.shape
    if depth == 16:
        return samples.astype(">u2").view(np.uint8).reshape(h, w * c * 2)
    if depth == 8:
        return samples.astype(np.uint8).reshape(h, w * c)
    bits = ((samples.reshape(h, w * c)[..., None] >> np.arange(depth - 1, -1, -1)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(h, -1), axis=1)


def _filter(rows: np.ndarray, bpp: int, ftype: int) -> bytes:
    """Apply PNG filter `ftype` (0-4, the same on every row) as the spec defines it (reference, slow)."""
    out = bytearray()
    prior = np.zeros(rows.shape[1], np.int64)
    for row in rows.astype(np.int64):
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])[: len(row)]
        upleft = np.concatenate([np.zeros(bpp, np.int64), prior[:-bpp]])[: len(row)]
        if ftype == 0:
            pred = np.zeros_like(row)
        elif ftype == 1:
            pred = left
        elif ftype == 2:
            pred = prior
        elif ftype == 3:
            pred = (left + prior) // 2
        else:
            p = left + prior - upleft
            pa, pb, pc = abs(p - left), abs(p - prior), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upleft))
        out.append(ftype)
        out += ((row - pred) & 0xFF).astype(np.uint8).tobytes()
        prior = row
    return bytes(out)


def encode_png(
    samples: np.ndarray,
    color_type: int,
    depth: int,
    *,
    interlace: bool = False,
    palette: np.ndarray | None = None,
    trns: bytes | None = None,
    ftype: int = 4,
    idat_pieces: int = 1,
) -> bytes:
    """A PNG of raw samples [h, w, channels] (palette indices for type 3), any filter, optional Adam7."""
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples[..., None]
    h, w, c = samples.shape
    assert c == CHANNELS[color_type]
    bpp = max(1, c * depth // 8)
    raw = b""
    for x0, y0, dx, dy in ADAM7 if interlace else [(0, 0, 1, 1)]:
        sub = samples[y0::dy, x0::dx]
        if sub.size:
            raw += _filter(_pack_rows(sub, depth), bpp, ftype)
    data = zlib.compress(raw)
    pieces = [
        data[i * len(data) // idat_pieces : (i + 1) * len(data) // idat_pieces] for i in range(idat_pieces)
    ]
    out = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlace))
    )
    if palette is not None:
        out += _chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    for p in pieces:
        out += _chunk(b"IDAT", p)
    return out + _chunk(b"IEND", b"")


# ---------------------------------------------------------------- a tiny chair
def box(lo, hi):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array(
        [[hi[0] if i & 1 else lo[0], hi[1] if i & 2 else lo[1], hi[2] if i & 4 else lo[2]] for i in range(8)]
    )
    f = np.array(
        [
            [0, 2, 1],
            [1, 2, 3],
            [4, 5, 6],
            [5, 7, 6],
            [0, 1, 4],
            [1, 5, 4],
            [2, 6, 3],
            [3, 6, 7],
            [0, 4, 2],
            [2, 4, 6],
            [1, 3, 5],
            [3, 7, 5],
        ]
    )
    return v, f


def canonical_chair():
    """A chair in voxlift's frame (Z up, front -Y): seat 0.45 high, backrest on +Y up to 0.95, 4 legs.
    Returns (vertices, faces)."""
    parts = [
        box([-0.22, -0.22, 0.40], [0.22, 0.22, 0.45]),  # seat
        box([-0.22, 0.18, 0.45], [0.22, 0.22, 0.95]),
    ]  # backrest at the back (+Y)
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                box([sx * 0.2 - 0.02, sy * 0.2 - 0.02, 0.0], [sx * 0.2 + 0.02, sy * 0.2 + 0.02, 0.40])
            )
    vs, fs, n = [], [], 0
    for v, f in parts:
        vs.append(v)
        fs.append(f + n)
        n += len(v)
    return np.vstack(vs), np.vstack(fs)


def obj_text(vertices, faces) -> str:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    return "\n".join(lines) + "\n"


def write_obj(path: Path, vertices, faces) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj_text(vertices, faces))
    return path


def assert_chair_canonical(vertices, label=""):
    """Centred, longest side 1, Z up, backrest on +Y (the front towards -Y)."""
    v = np.asarray(vertices)
    lo, hi = v.min(0), v.max(0)
    assert np.allclose((lo + hi) / 2, 0, atol=1e-9), label
    assert np.isclose((hi - lo).max(), 1.0), label
    top = v[:, 2] > hi[2] - 0.05  # highest points: the top of the backrest
    assert v[top, 1].mean() > 0.15, f"{label}: backrest not on +Y"
    assert abs(v[top, 0].mean()) < 0.05, f"{label}: not centred left-right"
    assert (hi - lo)[2] == (hi - lo).max(), f"{label}: Z is not the tallest axis"


def make_sh3f(path: Path, catalog: str, files: dict[str, bytes], extra_names: list[str] = ()) -> Path:
    """A .sh3f zip with a catalog (written as ISO-8859-1) and files; extra_names are added as tiny entries
    verbatim (to plant hostile names)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("PluginFurnitureCatalog.properties", catalog.encode("latin-1"))
        for name, data in files.items():
            z.writestr(name, data)
        for name in extra_names:
            z.writestr(zipfile.ZipInfo(name), b"x")
    return path


# ---------------------------------------------------------------- a tiny 3D-R2N2 release
R2N2_SIZE = 137


def r2n2_chair_grid(r: int = 32) -> np.ndarray:
    """A chair grid as ShapeNetVox32 stores one: binvox axes = ShapeNet v1 axes, up +Y, front +X.
    The backrest is at low x (the back), and one armrest only on the +Z side (to catch mirroring)."""
    g = np.zeros((r, r, r), bool)
    g[6:26, 12:14, 6:26] = True  # seat (y is up)
    g[6:8, 14:30, 6:26] = True  # backrest at the back (-X)
    for x in (6, 24):
        for z in (6, 24):
            g[x : x + 2, 0:12, z : z + 2] = True  # legs
    g[8:24, 18:20, 24:26] = True  # one armrest, on +Z
    return g


def meshrcnn_project(points_sn, azimuth, elevation, distance, size=R2N2_SIZE):
    """Pixel (u, v) of ShapeNet v1 points in an R2N2 view, written from meshrcnn's compute_extrinsic_matrix
    (angles negated, camera at (d, 0, 0) of the rotated frame, Blender's Y-up import folded in) and a Blender
    camera with focal 35/16 of the half-image: independent of voxlift.dataset_tools.r2n2."""
    a, e = -np.radians(azimuth), -np.radians(elevation)
    sa, ca, se, ce = np.sin(a), np.cos(a), np.sin(e), np.cos(e)
    r_world2obj = np.array([[ca * ce, sa * ce, -se], [-sa, ca, 0], [ca * se, sa * se, ce]])
    r_obj2cam = np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]])
    rot = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # OBJ Y up -> Blender Z up
    cam = (r_obj2cam @ (r_world2obj @ (rot @ np.asarray(points_sn).T))).T - r_obj2cam @ [distance, 0, 0]
    f = 35.0 / 16.0
    x, y = f * cam[:, 0] / -cam[:, 2], f * cam[:, 1] / -cam[:, 2]
    return np.stack([(x + 1) * size / 2, (1 - y) * size / 2], axis=1)


def make_r2n2(root: Path, models, grid=None, translate=(-0.33, -0.37, -0.36), scale=0.7, seed=0, views=24):
    """ShapeNetRendering + ShapeNetVox32 for `models` [(synset, id)]: metadata like the release's, RGBA
    images in which every occupied voxel centre of the grid is drawn (3x3 px), a binvox. Returns metadata."""
    from voxlift.dataset_tools.binvox import write_binvox
    from voxlift.dataset_tools.png import write_png

    grid = r2n2_chair_grid() if grid is None else grid
    rng = np.random.default_rng(seed)
    meta = np.stack(
        [
            rng.uniform(0, 360, views),
            rng.uniform(20, 35, views),
            np.zeros(views),
            rng.uniform(0.65, 0.9, views),
            np.full(views, 25.0),
        ],
        axis=1,
    )
    r = grid.shape[0]
    centres = np.asarray(translate) + (np.argwhere(grid) + 0.5) / r * scale
    for synset, mid in models:
        rdir = root / "ShapeNetRendering" / synset / mid / "rendering"
        rdir.mkdir(parents=True, exist_ok=True)
        (rdir / "rendering_metadata.txt").write_text(
            "".join(f"{a:.6f} {e:.6f} {q:.1f} {d:.6f} {f:.1f}\n" for a, e, q, d, f in meta)
        )
        for v, (az, el, _q, ratio, _f) in enumerate(meta):
            uv = meshrcnn_project(centres, az, el, ratio * 1.75)
            img = np.zeros((R2N2_SIZE, R2N2_SIZE, 4), np.uint8)
            px = np.floor(uv).astype(int)
            for du in (-1, 0, 1):
                for dv in (-1, 0, 1):
                    uu, vv = px[:, 0] + du, px[:, 1] + dv
                    ok = (uu >= 0) & (uu < R2N2_SIZE) & (vv >= 0) & (vv < R2N2_SIZE)
                    img[vv[ok], uu[ok]] = (200, 100, 50, 255)
            write_png(rdir / f"{v:02d}.png", img)
        vdir = root / "ShapeNetVox32" / synset / mid
        vdir.mkdir(parents=True, exist_ok=True)
        write_binvox(vdir / "model.binvox", grid, translate, scale)
    return meta
