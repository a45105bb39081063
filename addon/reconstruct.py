"""Images to grids and meshes, without bpy: what `voxlift reconstruct` (cmd_reconstruct) and the Reconstruct
panel (blender/ui_reconstruct) share.

    probs, viewer_centred = predict([image], checkpoint, device, backend)  # [B, R, R, R], model frame
    verts, quads = mesh_in_scene_frame(probs[0], "cubes", 0.5, False, scene_rotation(viewer_centred, az))

Prediction runs in this process when torch imports here (the model stays cached, so a second Reconstruct
click skips loading it), else through a child process of the configured Python (backend_process.Backend),
which runs `PYTHON -m voxlift reconstruct ... --out probs.npz`. Every picture is first shrunk by a whole
factor to at most PREPARED_MAX_SIDE pixels (`prepared`: a 12-megapixel photo in about 0.1 s, and a child
is sent the small picture), then framed next to the model: Predictor.prepare (backend/framing.py: alpha,
plain border or the model's mask head), called from network_inputs below, the add-on's one image-to-input
step.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import backend_process, meshing
from .dataset_tools.errors import VoxliftError
from .io.grids import read_probs_npz
from .io.images import downsample
from .run_folder import unvalidated_warning

CHILD_ENV = "VOXLIFT_BACKEND_CHILD"  # set in a backend child: it never starts another child
CHILD_TIMEOUT_S = 600
OPAQUE = 0.99  # an alpha channel at least this opaque everywhere carries no silhouette
# Pictures are shrunk to this many pixels on their longer side before anything else: 8 times the largest
# input the models take (64 px), so an object covering an eighth of the picture still fills the input.
PREPARED_MAX_SIDE = 512

# (resolved checkpoint, its mtime, device) -> Predictor: a warm Reconstruct click skips loading the model.
_PREDICTORS: dict = {}


# ---------------------------------------------------------------------------------------------- inputs


def drop_opaque_alpha(image: np.ndarray) -> np.ndarray:
    """An alpha channel that is opaque everywhere (JPEGs in Blender) says nothing about the object: drop it,
    so the background is found from the border colour instead."""
    if image.ndim == 3 and image.shape[2] == 4:
        a = image[..., 3]
        full = 255 if a.dtype == np.uint8 else 1.0
        if a.min() >= OPAQUE * full:
            return image[..., :3]
    return image


def prepared(image: np.ndarray) -> np.ndarray:
    """A picture as float32 in [0, 1], at most PREPARED_MAX_SIDE pixels on its longer side, an alpha channel
    that says nothing dropped: what is framed for the model (and what a backend child is sent)."""
    return drop_opaque_alpha(downsample(image, PREPARED_MAX_SIDE))


def network_inputs(images: list[np.ndarray], predictor) -> tuple[np.ndarray, np.ndarray]:
    """Pictures as the model's input: (gray, alpha) float32 [B, S, S], framed like its training renderings."""
    pairs = [predictor.prepare(prepared(img)) for img in images]
    return np.stack([g for g, _ in pairs]), np.stack([a for _, a in pairs])


# ---------------------------------------------------------------------------------------------- prediction


def get_predictor(checkpoint: str | os.PathLike, device: str = "auto"):
    """The Predictor of `checkpoint`, loaded once and kept while the file is unchanged."""
    from .backend import checkpoint as ckpt
    from .backend.predict import load_predictor

    path = ckpt.resolve_checkpoint(checkpoint).resolve()
    key = (str(path), path.stat().st_mtime_ns, device)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()  # keep one model in memory
        _PREDICTORS[key] = load_predictor(path, device=device)
    return _PREDICTORS[key]


def predict_here(images: list[np.ndarray], checkpoint, device: str = "auto") -> tuple[np.ndarray, bool]:
    """(probabilities [B, R, R, R] in the model's frame, viewer_centred) with torch in this process."""
    p = get_predictor(checkpoint, device)
    gray, alpha = network_inputs(images, p)
    return p.predict(gray, alpha), p.viewer_centred


def _child_error(backend, stderr: str, returncode: int) -> VoxliftError:
    """One line for a failed child: its `voxlift: error:` line, a missing voxlift, or its last line."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    err = next((ln.split("error:", 1)[1].strip() for ln in reversed(lines) if "error:" in ln), None)
    if err is None and any(
        "No module named 'voxlift'" in ln or "No module named voxlift" in ln for ln in lines
    ):
        err = "cannot import voxlift there (pip install voxlift into that environment)"
    err = err or (lines[-1] if lines else f"exit status {returncode}")
    return VoxliftError(f"backend {backend.python}: {err}")


def predict_in_child(
    images: list[np.ndarray], checkpoint, backend, device: str = "auto", timeout: float = CHILD_TIMEOUT_S
) -> tuple[np.ndarray, bool]:
    """The same through `PYTHON -m voxlift reconstruct ... --out probs.npz` (a Python with torch)."""
    with tempfile.TemporaryDirectory(prefix="voxlift-") as tmp:
        paths = []
        for i, img in enumerate(images):
            paths.append(os.path.join(tmp, f"image{i}.npy"))
            np.save(paths[-1], np.ascontiguousarray(prepared(img)))
        out = os.path.join(tmp, "probs.npz")
        cmd = backend.command(
            "reconstruct", *paths, "--checkpoint", str(checkpoint), "--out", out, "--device", device
        )
        env = dict(backend.env(), **{CHILD_ENV: "1"})
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VoxliftError(f"{backend.python}: could not run the backend ({exc})") from None
        if proc.returncode != 0:
            raise _child_error(backend, proc.stderr, proc.returncode)
        return read_probs_npz(out)


def predict(
    images: list[np.ndarray], checkpoint, device: str = "auto", backend=None
) -> tuple[np.ndarray, bool]:
    """In this process when torch imports here (and no external Python is configured), else in a child."""
    if not checkpoint:
        raise VoxliftError(
            "no checkpoint chosen: pick a run folder or .safetensors file, or train a model first"
        )
    if not Path(checkpoint).exists():
        raise VoxliftError(f"{checkpoint}: no such checkpoint")
    if backend is not None and backend.external:
        return predict_in_child(images, checkpoint, backend, device)
    if not backend_process.torch_in_process():
        # A child never starts another child (it would repeat forever when torch is missing everywhere).
        if (
            backend is not None
            and not os.environ.get(CHILD_ENV)
            and (backend.python != sys.executable or backend.paths)
        ):
            return predict_in_child(images, checkpoint, backend, device)
        raise VoxliftError(backend_process.missing_torch_message("torch", "reconstruct"))
    return predict_here(images, checkpoint, device)


def checkpoint_warning(checkpoint) -> str | None:
    """A line to show beside a reconstruction whose model never validated (see run_folder)."""
    return unvalidated_warning(checkpoint) if checkpoint else None


# ---------------------------------------------------------------------------------------------- frames


def rotate_z(vertices: np.ndarray, degrees: float) -> np.ndarray:
    """Vertices [V, 3] turned by `degrees` about +Z (float32 copy)."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    v = np.asarray(vertices, dtype=np.float32).copy()
    x, y = v[:, 0].copy(), v[:, 1].copy()
    v[:, 0], v[:, 1] = c * x - s * y, s * x + c * y
    return v


def scene_rotation(viewer_centred: bool, azimuth: float) -> float:
    """Degrees about Z that take the model's grid into the object (scene) frame.

    A viewer-centred grid G_view(p) = G_object(Rz(az) p) (backend/data.py): its points map to Rz(az) p."""
    return float(azimuth) if viewer_centred else 0.0


def mesh_in_scene_frame(probs: np.ndarray, mode: str, threshold: float, greedy: bool, rotation: float):
    """(vertices, quads) of one grid, turned `rotation` degrees about Z; VoxliftError when it is empty."""
    verts, quads = meshing.mesh_from_probs(probs, mode, threshold, greedy)
    if len(quads) == 0:
        raise VoxliftError(
            f"the reconstruction is empty at threshold {threshold:g} (no voxel above it); "
            "try a lower threshold"
        )
    return (rotate_z(verts, rotation) if rotation else verts), quads


def object_frame_grid(probs: np.ndarray, viewer_centred: bool, azimuth: float) -> np.ndarray:
    """The grid axis-aligned in the object frame (binvox files cannot carry a rotation)."""
    if not viewer_centred or azimuth % 360 == 0:
        return probs
    from .backend.predict import to_object_frame

    return to_object_frame(probs, azimuth)
