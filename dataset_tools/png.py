"""PNG reading and writing with numpy and zlib only (no Pillow in library code: it must run inside Blender).

read_png reads every standard PNG: gray, gray+alpha, RGB, RGBA and palette images at all their bit depths
(1/2/4/8/16), with tRNS transparency and Adam7 interlacing. CRCs are checked, the size is capped at
MAX_SIDE x MAX_SIDE and MAX_PIXELS, and zlib is asked for no more bytes than the image needs (no decompression
bombs; MAX_RAW_BYTES and MAX_SLOW_FILTER_BYTES bound memory and time).
Any damage raises VoxliftError naming the file.

Output: uint8 (bit depth <= 8) or uint16 (16-bit) of shape HxW (gray), HxWx2 (gray+alpha), HxWx3 (RGB) or
HxWx4 (RGBA). Gray below 8 bits is scaled to 0..255; palette images come out as RGB, or RGBA with tRNS;
gray or RGB with a tRNS colour gain an alpha channel (0 where the pixel equals that colour).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import VoxliftError
from .fileio import atomic_write_bytes

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 16384
# Caps on what a header may claim, checked before anything is decompressed (found by fuzzing: a 2 MB PNG
# claiming 16384 x 16384 16-bit RGBA decompresses to 2 GiB and was killed for memory). 32 megapixels and
# 128 MiB of filtered rows are far above what voxlift needs (renderings of 137 px, photos to be framed
# down to 128 px) and keep a hostile file to a few hundred MB of RAM.
MAX_PIXELS = 32 << 20
MAX_RAW_BYTES = 128 << 20
# The Average and Paeth filters are undone byte by byte in Python (about 0.5 us a byte): more than this many
# such bytes would take minutes (a small file of Paeth rows would hang the caller), so it is refused.
MAX_SLOW_FILTER_BYTES = 48 << 20
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Adam7 passes: (x0, y0, dx, dy)
_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _chunks(data: bytes, name: str):
    pos = len(SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise VoxliftError(f"{name}: truncated PNG (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        if length > len(data) - pos - 12:
            raise VoxliftError(f"{name}: truncated PNG (chunk {ctype!r} runs past the end of the file)")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise VoxliftError(f"{name}: corrupt PNG (CRC mismatch in chunk {ctype.decode('latin-1')!r})")
        yield ctype, body
        if ctype == b"IEND":
            return
        pos += 12 + length


def _unfilter(raw: memoryview, height: int, rowbytes: int, bpp: int, name: str) -> np.ndarray:
    """Undo the per-row filters. None/Sub/Up are vectorised; Average and Paeth run byte by byte."""
    out = np.zeros((height, rowbytes), np.uint8)
    prior = np.zeros(rowbytes, np.uint8)
    stride = rowbytes + 1
    for y in range(height):
        ftype = raw[y * stride]
        line = np.frombuffer(raw[y * stride + 1 : (y + 1) * stride], np.uint8)
        if ftype == 0:
            row = line.copy()
        elif ftype == 1:  # Sub: running sum over each byte position of the pixel, mod 256
            pad = (-rowbytes) % bpp
            cols = np.concatenate([line, np.zeros(pad, np.uint8)]).reshape(-1, bpp).astype(np.uint32)
            row = (np.cumsum(cols, axis=0) & 0xFF).astype(np.uint8).ravel()[:rowbytes]
        elif ftype == 2:  # Up
            row = line + prior
        elif ftype in (3, 4):
            cur = bytearray(line.tobytes())
            up = prior.tobytes()
            if ftype == 3:  # Average
                for i in range(rowbytes):
                    left = cur[i - bpp] if i >= bpp else 0
                    cur[i] = (cur[i] + ((left + up[i]) >> 1)) & 0xFF
            else:  # Paeth
                for i in range(rowbytes):
                    if i >= bpp:
                        a, c = cur[i - bpp], up[i - bpp]
                    else:
                        a = c = 0
                    b = up[i]
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                    cur[i] = (cur[i] + pred) & 0xFF
            row = np.frombuffer(bytes(cur), np.uint8)
        else:
            raise VoxliftError(f"{name}: corrupt PNG (unknown filter type {ftype} on row {y})")
        out[y] = row
        prior = out[y]
    return out


def _samples(rows: np.ndarray, width: int, channels: int, depth: int) -> np.ndarray:
    """Filtered-out byte rows -> [h, w, channels] samples (uint8 or uint16)."""
    h = rows.shape[0]
    if depth == 16:
        return (
            rows.view(">u2")
            .reshape(h, -1)[:, : width * channels]
            .astype(np.uint16)
            .reshape(h, width, channels)
        )
    if depth == 8:
        return rows[:, : width * channels].reshape(h, width, channels)
    bits = np.unpackbits(rows, axis=1)  # MSB first, as PNG packs them
    bits = bits[:, : width * depth].reshape(h, width, depth)
    weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
    return (bits * weights).sum(axis=2, dtype=np.uint8).reshape(h, width, 1)


def _rowbytes(width: int, channels: int, depth: int) -> int:
    return (width * channels * depth + 7) // 8


def read_png(source: str | os.PathLike | bytes) -> np.ndarray:
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = "<PNG bytes>", bytes(source)
    else:
        name = str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise VoxliftError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise VoxliftError(f"{name}: is a folder, not a PNG image") from None
        except OSError as exc:
            raise VoxliftError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if not data.startswith(SIGNATURE):
        raise VoxliftError(f"{name}: not a PNG image (bad signature)" if data else f"{name}: empty file")
    header = None
    palette = trns = None
    idat = []
    for ctype, body in _chunks(data, name):
        if header is None and ctype != b"IHDR":
            raise VoxliftError(f"{name}: corrupt PNG (IHDR is not the first chunk)")
        if ctype == b"IHDR":
            if len(body) != 13:
                raise VoxliftError(f"{name}: corrupt PNG (IHDR has {len(body)} bytes, not 13)")
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"PLTE":
            if len(body) % 3 or not 3 <= len(body) <= 768:
                raise VoxliftError(f"{name}: corrupt PNG (PLTE of {len(body)} bytes)")
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif ctype == b"tRNS":
            trns = body
        elif ctype == b"IDAT":
            idat.append(body)
    width, height, depth, ctype_, comp, filt, interlace = header
    if width == 0 or height == 0:
        raise VoxliftError(f"{name}: PNG of size {width}x{height} has no pixels")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise VoxliftError(
            f"{name}: PNG of {width}x{height} pixels, larger than the {MAX_SIDE}x{MAX_SIDE} allowed"
        )
    if width * height > MAX_PIXELS:
        raise VoxliftError(
            f"{name}: PNG of {width}x{height} pixels, more than the {MAX_PIXELS} pixels allowed"
        )
    if ctype_ not in _CHANNELS or depth not in _DEPTHS[ctype_]:
        raise VoxliftError(f"{name}: unsupported PNG (colour type {ctype_} with bit depth {depth})")
    if comp != 0 or filt != 0 or interlace not in (0, 1):
        raise VoxliftError(
            f"{name}: unsupported PNG (compression {comp}, filter {filt}, interlace {interlace})"
        )
    if ctype_ == 3 and palette is None:
        raise VoxliftError(f"{name}: corrupt PNG (palette image without a PLTE chunk)")
    if not idat:
        raise VoxliftError(f"{name}: corrupt PNG (no image data)")
    channels = _CHANNELS[ctype_]
    bpp = max(1, channels * depth // 8)
    passes = [(0, 0, 1, 1)] if interlace == 0 else _ADAM7
    sizes = []
    for x0, y0, dx, dy in passes:
        pw, ph = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        sizes.append((pw, ph))
    need = sum(ph * (1 + _rowbytes(pw, channels, depth)) for pw, ph in sizes if pw and ph)
    if need > MAX_RAW_BYTES:
        raise VoxliftError(
            f"{name}: PNG of {width}x{height} pixels at {depth} bits x {channels} channels holds "
            f"{need} bytes of image data, more than the {MAX_RAW_BYTES} allowed"
        )
    try:
        z = zlib.decompressobj()
        raw = z.decompress(b"".join(idat), need)
    except zlib.error as exc:
        raise VoxliftError(f"{name}: corrupt PNG (bad compressed data: {exc})") from None
    if len(raw) < need:
        raise VoxliftError(f"{name}: truncated PNG (image data holds {len(raw)} of {need} bytes)")
    slow, pos = 0, 0
    for pw, ph in sizes:
        if pw and ph:
            rb = _rowbytes(pw, channels, depth)
            slow += rb * sum(raw[pos + y * (rb + 1)] in (3, 4) for y in range(ph))
            pos += ph * (rb + 1)
    if slow > MAX_SLOW_FILTER_BYTES:
        raise VoxliftError(
            f"{name}: PNG too large for voxlift's PNG reader ({slow} bytes use the Average or "
            f"Paeth filter, limit {MAX_SLOW_FILTER_BYTES}); save it smaller or as JPEG"
        )
    dtype = np.uint16 if depth == 16 else np.uint8
    image = np.zeros((height, width, channels), dtype)
    pos = 0
    view = memoryview(raw)
    for (x0, y0, dx, dy), (pw, ph) in zip(passes, sizes):
        if pw == 0 or ph == 0:
            continue
        rb = _rowbytes(pw, channels, depth)
        rows = _unfilter(view[pos : pos + ph * (rb + 1)], ph, rb, bpp, name)
        pos += ph * (rb + 1)
        image[y0::dy, x0::dx] = _samples(rows, pw, channels, depth)
    return _finish(image, ctype_, depth, palette, trns, name)


def _finish(image, ctype, depth, palette, trns, name) -> np.ndarray:
    if ctype == 3:
        idx = image[..., 0]
        if idx.max() >= len(palette):
            raise VoxliftError(
                f"{name}: corrupt PNG (pixel refers to palette entry {int(idx.max())} of {len(palette)})"
            )
        rgb = palette[idx]
        if trns is None:
            return rgb
        alpha = np.full(256, 255, np.uint8)
        alpha[: min(len(trns), 256)] = np.frombuffer(trns[:256], np.uint8)
        return np.concatenate([rgb, alpha[idx][..., None]], axis=2)
    if ctype == 0 and depth < 8:
        image = (image.astype(np.uint16) * 255 // ((1 << depth) - 1)).astype(np.uint8)
    if trns is not None and ctype in (0, 2):
        n = 1 if ctype == 0 else 3
        if len(trns) != 2 * n:
            raise VoxliftError(f"{name}: corrupt PNG (tRNS of {len(trns)} bytes)")
        key = np.array(struct.unpack(f">{n}H", trns))
        raw = image if ctype == 2 or depth >= 8 else None
        if raw is None:  # compare against the unscaled gray level
            key = key * 255 // ((1 << depth) - 1)
            raw = image
        opaque = np.iinfo(image.dtype).max
        alpha = np.where((raw == key.astype(image.dtype)).all(axis=2), 0, opaque).astype(image.dtype)
        image = np.concatenate([image, alpha[..., None]], axis=2)
    return image[..., 0] if image.shape[2] == 1 else image


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)
    )


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 HxW (gray), HxWx1, HxWx2 (gray+alpha), HxWx3 (RGB) or HxWx4 (RGBA) array."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise ValueError(f"write_png takes uint8 images, not {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or 0 in a.shape[:2]:
        raise ValueError(f"write_png takes HxW, HxWx1, HxWx2, HxWx3 or HxWx4 images, not shape {a.shape}")
    h, w, c = a.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(a).reshape(h, w * c)
    # Up filter on every row: cheap to compute and usually smaller than none for renderings.
    up = rows.copy()
    up[1:] = rows[1:] - rows[:-1]
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()
    return (
        SIGNATURE
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write atomically: a temporary file next to the target, then os.replace (never a half-written PNG)."""
    data = encode_png(array)
    path = Path(path)
    atomic_write_bytes(path, data)
