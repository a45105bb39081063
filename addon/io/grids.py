"""Grids out: a thresholded grid as .binvox, probabilities as .npz.

The .npz is how a backend running in another Python hands its results back to the add-on
(`PYTHON -m voxlift reconstruct ... --out probs.npz`): `probs` float32 [B, R, R, R], `viewer_centred`,
`names`.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from ..dataset_tools.binvox import write_binvox
from ..dataset_tools.errors import VoxliftError
from ..dataset_tools.fileio import atomic_write_bytes
from .constants import GRID_ORIGIN, GRID_SIDE


def write_grid_binvox(path: str | os.PathLike, occupancy: np.ndarray) -> None:
    """A bool grid in the canonical frame (it fills the cube [-0.5, 0.5]^3), written atomically."""
    write_binvox(path, occupancy, GRID_ORIGIN, GRID_SIDE)


def probs_npz_bytes(probs: np.ndarray, viewer_centred: bool, names: list[str]) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf, probs=np.asarray(probs, dtype=np.float32), viewer_centred=viewer_centred, names=np.array(names)
    )
    return buf.getvalue()


def write_probs_npz(
    path: str | os.PathLike, probs: np.ndarray, viewer_centred: bool, names: list[str]
) -> None:
    atomic_write_bytes(path, probs_npz_bytes(probs, viewer_centred, names))


def read_probs_npz(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """(probabilities float32 [B, R, R, R], viewer_centred) from a file write_probs_npz wrote."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["probs"].astype(np.float32), bool(z["viewer_centred"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise VoxliftError(f"{path}: not a voxlift probabilities file ({exc})") from None
