"""Grids out: a thresholded grid as .binvox, a prediction as .npz.

The .npz is how a backend running in another Python hands its results back to the add-on
(`PYTHON -m voxlift reconstruct ... --out probs.npz`): `probs` float32 [B, R, R, R], `viewer_centred`,
`names`, and what the add-on shows and places by: `threshold` (the model's own), `found` (how each picture's
object was found), `boxes` float32 [B, 4] (each object's box in its picture, fractions, rows top first) and
`checkpoint` (the file used). Files from before those were added read with them as None.
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

BOX_SIDES = 4  # x0, y0, x1, y1


def write_grid_binvox(path: str | os.PathLike, occupancy: np.ndarray) -> None:
    """A bool grid in the canonical frame (it fills the cube [-0.5, 0.5]^3), written atomically."""
    write_binvox(path, occupancy, GRID_ORIGIN, GRID_SIDE)


def probs_npz_bytes(
    probs: np.ndarray,
    viewer_centred: bool,
    names: list[str],
    *,
    threshold: float | None = None,
    found: list[str] | None = None,
    boxes: np.ndarray | None = None,
    checkpoint: str | None = None,
) -> bytes:
    arrays = {
        "probs": np.asarray(probs, dtype=np.float32),
        "viewer_centred": viewer_centred,
        "names": np.array(names),
    }
    if threshold is not None:
        arrays["threshold"] = np.float64(threshold)
    if found is not None:
        arrays["found"] = np.array(found, dtype=str)
    if boxes is not None:
        arrays["boxes"] = np.asarray(boxes, dtype=np.float32).reshape(-1, BOX_SIDES)
    if checkpoint is not None:
        arrays["checkpoint"] = np.array(str(checkpoint))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_probs_npz(
    path: str | os.PathLike, probs: np.ndarray, viewer_centred: bool, names: list[str], **extra
):
    """A prediction, written atomically; `extra`: threshold, found, boxes, checkpoint (see above)."""
    atomic_write_bytes(path, probs_npz_bytes(probs, viewer_centred, names, **extra))


def read_prediction_npz(path: str | os.PathLike) -> dict:
    """{"probs": float32 [B, R, R, R], "viewer_centred": bool, "names": [str], "threshold": float | None,
    "found": [str] | None, "boxes": float32 [B, 4] | None, "checkpoint": str | None} from write_probs_npz."""
    try:
        with np.load(path, allow_pickle=False) as z:
            probs = z["probs"].astype(np.float32)
            out = {
                "probs": probs,
                "viewer_centred": bool(z["viewer_centred"]),
                "names": [str(n) for n in z["names"]] if "names" in z else [],
                "threshold": float(z["threshold"]) if "threshold" in z else None,
                "found": [str(f) for f in z["found"]] if "found" in z else None,
                "boxes": z["boxes"].astype(np.float32) if "boxes" in z else None,
                "checkpoint": str(z["checkpoint"]) if "checkpoint" in z else None,
            }
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise VoxliftError(f"{path}: not a voxlift probabilities file ({exc})") from None
    if probs.ndim != 4 or (out["boxes"] is not None and out["boxes"].shape != (len(probs), BOX_SIDES)):
        raise VoxliftError(f"{path}: not a voxlift probabilities file (arrays of unexpected shapes)")
    if out["found"] is not None and len(out["found"]) != len(probs):
        raise VoxliftError(f"{path}: not a voxlift probabilities file ({len(out['found'])} 'found' entries)")
    return out


def read_probs_npz(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """(probabilities float32 [B, R, R, R], viewer_centred) from a file write_probs_npz wrote."""
    z = read_prediction_npz(path)
    return z["probs"], z["viewer_centred"]
