"""The .binvox voxel format (Patrick Min's binvox; ShapeNetVox32 and 3D-R2N2 use it), numpy only.

File layout, as binvox writes it and binvox_rw (Daniel Maturana's reader) reads it:

    #binvox 1
    dim D D D
    translate tx ty tz
    scale s
    data
    <run-length pairs of bytes (value 0/1, count 1..255)>

The runs cover the D^3 voxels in the order x slowest, then z, then y fastest: linear index
x * D*D + z * D + y. binvox_rw's `read_as_3d_array` reshapes the runs to [x, z, y] and, with
`fix_coords=True` (its default), transposes to [x, y, z], which is what `read_binvox` returns.
World position of voxel (i, j, k): translate + (index + 0.5) / D * scale, so translate = (-0.5,)*3 and
scale = 1 put an R^3 grid exactly on voxlift's unit cube (voxel centres -0.5 + (i + 0.5) / R).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import VoxliftError
from .fileio import atomic_write_bytes

MAX_DIM = 512  # 512^3 voxels is 128 MiB as bools; ShapeNet ships 32^3 and 128^3 (at most 256^3 in the wild)


@dataclass
class BinvoxGrid:
    voxels: np.ndarray  # bool [D, D, D] indexed [x, y, z]
    translate: np.ndarray  # float64 (3,)
    scale: float


def read_binvox(source: str | os.PathLike | bytes) -> BinvoxGrid:
    """Read a .binvox file (a path, or the file's bytes); VoxliftError naming it if it is not usable."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_binvox(bytes(source), "binvox data")
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VoxliftError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VoxliftError(f"{path}: is a folder, not a .binvox file") from None
    except OSError as exc:
        raise VoxliftError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_binvox(data, str(path))


def parse_binvox(data: bytes, name: str) -> BinvoxGrid:
    if not data:
        raise VoxliftError(f"{name}: empty file")
    if not data.startswith(b"#binvox"):
        raise VoxliftError(f"{name}: not a .binvox file (it does not start with '#binvox')")
    dims = translate = scale = None
    pos = 0
    for _ in range(16):  # the header is a handful of lines; anything longer is not binvox
        end = data.find(b"\n", pos)
        if end < 0:
            raise VoxliftError(f"{name}: truncated header (no 'data' line)")
        line = data[pos:end].strip()
        pos = end + 1
        words = line.split()
        try:
            if not words or line.startswith(b"#"):
                continue
            if words[0] == b"dim":
                dims = [int(w) for w in words[1:]]
            elif words[0] == b"translate":
                translate = np.array([float(w) for w in words[1:]], dtype=np.float64)
            elif words[0] == b"scale":
                scale = float(words[1])
            elif words[0] == b"data":
                break
            else:
                raise VoxliftError(f"{name}: unexpected header line {line[:40]!r}")
        except (ValueError, IndexError):
            raise VoxliftError(f"{name}: bad header line {line[:40]!r}") from None
    else:
        raise VoxliftError(f"{name}: header has no 'data' line")
    if dims is None or len(dims) != 3:
        raise VoxliftError(f"{name}: header has no valid 'dim D D D' line")
    if not all(0 < d <= MAX_DIM for d in dims):
        raise VoxliftError(f"{name}: dimensions {dims} out of range 1..{MAX_DIM}")
    if translate is None or len(translate) != 3 or not np.isfinite(translate).all():
        raise VoxliftError(f"{name}: header has no valid 'translate x y z' line")
    if scale is None or not np.isfinite(scale) or scale <= 0:
        raise VoxliftError(f"{name}: header has no valid positive 'scale'")

    runs = np.frombuffer(data, dtype=np.uint8, offset=pos)
    if len(runs) % 2:
        raise VoxliftError(f"{name}: truncated voxel data (odd number of run-length bytes)")
    values, counts = runs[0::2], runs[1::2]
    total = int(counts.sum(dtype=np.int64))
    expected = dims[0] * dims[1] * dims[2]
    if total != expected:
        what = "truncated" if total < expected else "corrupt"
        raise VoxliftError(
            f"{name}: {what} voxel data (runs cover {total} voxels, dim {dims} needs {expected})"
        )
    if values.max(initial=0) > 1:
        raise VoxliftError(f"{name}: corrupt voxel data (run value {int(values.max())}, expected 0 or 1)")
    xzy = np.repeat(values.astype(bool), counts).reshape(dims)
    return BinvoxGrid(np.ascontiguousarray(xzy.transpose(0, 2, 1)), translate, scale)


def encode_binvox(voxels: np.ndarray, translate=(-0.5, -0.5, -0.5), scale: float = 1.0) -> bytes:
    """The bytes of a .binvox file for a bool [D, D, D] grid indexed [x, y, z]."""
    vox = np.asarray(voxels)
    if vox.ndim != 3 or len(set(vox.shape)) != 1 or not 0 < vox.shape[0] <= MAX_DIM:
        raise ValueError(f"binvox needs a cubic grid of side 1..{MAX_DIM}, got shape {vox.shape}")
    d = vox.shape[0]
    flat = vox.astype(bool).transpose(0, 2, 1).reshape(-1)  # x slowest, z, y fastest
    # Runs of equal values, each split into pieces of at most 255.
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(flat)]]))
    pieces = (lengths + 254) // 255
    run_of_piece = np.repeat(np.arange(len(lengths)), pieces)
    piece_rank = np.arange(int(pieces.sum())) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    piece_len = np.minimum(lengths[run_of_piece] - 255 * piece_rank, 255)
    body = np.empty((len(piece_len), 2), dtype=np.uint8)
    body[:, 0] = flat[starts[run_of_piece]]
    body[:, 1] = piece_len
    t = [float(x) for x in translate]
    header = (
        f"#binvox 1\ndim {d} {d} {d}\ntranslate {t[0]:.9g} {t[1]:.9g} {t[2]:.9g}\n"
        f"scale {float(scale):.9g}\ndata\n"
    ).encode()
    return header + body.tobytes()


def write_binvox(
    path: str | os.PathLike, voxels: np.ndarray, translate=(-0.5, -0.5, -0.5), scale: float = 1.0
) -> None:
    """Write a .binvox file atomically (temp file, then rename): an existing file is never half-written."""
    path = Path(path)
    data = encode_binvox(voxels, translate, scale)
    atomic_write_bytes(path, data)
