"""Images to grids and meshes, without bpy: what `voxlift reconstruct` (cmd_reconstruct) and the Reconstruct
panel (blender/ui_reconstruct) share.

    result = predict([image], checkpoint, device, backend)   # checkpoint None: the starter model
    threshold = own if own is not None else result.threshold  # the model's own, chosen on validation
    verts, quads = mesh_in_scene_frame(result.probs[0], "cubes", threshold, False,
                                       scene_rotation(result.viewer_centred, az))

With no checkpoint the starter model that ships with voxlift is used (backend/starter.py). Prediction runs in
this process when torch imports here (the model stays cached, so a second Reconstruct click skips loading
it), else through a child process of the configured Python (backend_process.Backend), which runs
`PYTHON -m voxlift reconstruct ... --out probs.npz` (the file carries the whole Prediction). Every picture is
first shrunk by a whole factor to at most WORKING_SIDE pixels (`prepared`: a 12-megapixel photo in about
0.1 s, and a child is sent the small picture), then framed next to the model (backend/framing.py: alpha,
plain border or the mask model) in `framed`, the add-on's one image-to-input step, which also keeps
where the object is in the picture (a reference image in the scene places the result by it: placement.py).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backend_process, meshing
from .backend.pictures import WORKING_SIDE, downsample
from .backend.run_files import BEST, FALLBACK_THRESHOLD, LAST, read_meta, resolve_checkpoint
from .backend.starter import REACH, checkpoint_or_starter, is_starter
from .dataset_tools.errors import VoxliftError
from .io.grids import read_prediction_npz
from .run_folder import unvalidated_warning

CHILD_ENV = "VOXLIFT_BACKEND_CHILD"  # set in a backend child: it never starts another child
CHILD_TIMEOUT_S = 600
# Pictures are shrunk to this many pixels on their longer side before anything else: 8 times the largest
# input the models take (64 px), so an object covering an eighth of the picture still fills the input.
STARTER_LABEL = "starter"
WHOLE_PICTURE = (0.0, 0.0, 1.0, 1.0)

# (resolved checkpoint, its mtime, device) -> Predictor: a warm Reconstruct click skips loading the model.
_PREDICTORS: dict = {}


@dataclass
class Prediction:
    """What the model made of some pictures, and with what."""

    probs: np.ndarray  # float32 [B, R, R, R] in the model's frame
    viewer_centred: bool  # the grids are as seen from the picture (turn them by its azimuth)
    threshold: float  # the model's own, chosen on validation (FALLBACK_THRESHOLD for older checkpoints)
    found: list[str]  # how each picture's object was found: "alpha", "border", "mask model", "border*"
    # float32 [B, 4]: each object's box x0, y0, x1, y1 in fractions of its picture, rows top first
    boxes: np.ndarray
    checkpoint: str  # the checkpoint file used

    @property
    def model(self) -> str:
        return model_label(self.checkpoint)

    def __iter__(self):
        """Unpacks as (probs, viewer_centred), the pair predict() returned before it returned this."""
        return iter((self.probs, self.viewer_centred))


# ---------------------------------------------------------------------------------------------- models


def checkpoint_file(checkpoint: str | os.PathLike) -> Path:
    """The file a checkpoint names (a run folder's best, else its last), without torch."""
    return resolve_checkpoint(checkpoint)


def model_path(checkpoint) -> Path:
    """The checkpoint file to use: `checkpoint`'s, or the starter model's when none is given."""
    return checkpoint_file(checkpoint_or_starter(checkpoint)).resolve()


def model_label(checkpoint) -> str:
    """How a model is named to the user: "starter", or its run folder's name, or its file's name."""
    if not checkpoint or is_starter(checkpoint):
        return STARTER_LABEL
    p = Path(checkpoint)
    return p.parent.name if p.name in (BEST, LAST) else p.name


def model_threshold(checkpoint) -> float | None:
    """The threshold stored with a checkpoint (its validation's), read without torch; None when unreadable."""
    try:
        meta = read_meta(checkpoint_file(checkpoint))
    except VoxliftError:
        return None
    if meta is None:
        return None
    val = meta.get("val")
    t = val.get("threshold") if isinstance(val, dict) else None
    if isinstance(t, int | float) and not isinstance(t, bool) and 0 < t < 1:
        return float(t)
    return FALLBACK_THRESHOLD


def model_reach(checkpoint) -> str | None:
    """What a model knows, for the user: the starter's reach (backend/starter.REACH); None for others."""
    return REACH if not checkpoint or is_starter(checkpoint) else None


# ---------------------------------------------------------------------------------------------- inputs


def prepared(image: np.ndarray) -> np.ndarray:
    """A picture as float32 in [0, 1], at most WORKING_SIDE pixels on its longer side: what is framed for the
    model (and what a backend child is sent; framing shrinks no further, and drops an alpha that says nothing)."""
    return downsample(image, WORKING_SIDE)


def framed(picture: np.ndarray, predictor) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
    """(gray, alpha) [S, S] framed like the model's training renderings, how the object was found, and its box
    in the picture ((x0, y0, x1, y1) as fractions, rows from the top): backend/framing.py, through the model."""
    f = predictor.frame(picture)
    return f.gray, f.alpha, f.how, f.box


def _named(name: str | None, exc: VoxliftError) -> VoxliftError:
    return VoxliftError(f"{name}: {exc}") if name and not str(exc).startswith(str(name)) else exc


def framed_inputs(images: list[np.ndarray], predictor, names=None) -> tuple:
    """(gray [B, S, S], alpha [B, S, S], how each object was found, boxes [B, 4]); a picture the model
    cannot use is one VoxliftError naming it."""
    names = list(names) if names is not None else [None] * len(images)
    rows = []
    for img, name in zip(images, names, strict=True):
        try:
            rows.append(framed(prepared(img), predictor))
        except VoxliftError as exc:
            raise _named(name, exc) from None
    return (
        np.stack([r[0] for r in rows]),
        np.stack([r[1] for r in rows]),
        [r[2] for r in rows],
        np.stack([r[3] for r in rows]).astype(np.float32),
    )


# ---------------------------------------------------------------------------------------------- prediction


def get_predictor(checkpoint: str | os.PathLike, device: str = "auto", mask_model=None):
    """The Predictor of `checkpoint`, loaded once and kept while the file is unchanged. `mask_model`: the
    mask model that finds objects in pictures without alpha (default: the one voxlift ships)."""
    from .backend.predict import load_predictor

    path = checkpoint_file(checkpoint).resolve()
    key = (str(path), path.stat().st_mtime_ns, device, str(mask_model))
    if key not in _PREDICTORS:
        _PREDICTORS.clear()  # keep one model in memory
        _PREDICTORS[key] = load_predictor(path, device=device, mask_model=mask_model)
    return _PREDICTORS[key]


def predict_here(
    images: list[np.ndarray], checkpoint, device: str = "auto", names=None, mask_model=None
) -> Prediction:
    """The Prediction with torch in this process."""
    p = get_predictor(checkpoint, device, mask_model)
    gray, _alpha, found, boxes = framed_inputs(images, p, names)
    probs = p.predict(gray)  # framed_inputs composited the pictures onto the background: not twice
    return Prediction(probs, p.viewer_centred, p.threshold, found, boxes, str(checkpoint_file(checkpoint)))


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
    images: list[np.ndarray],
    checkpoint,
    backend,
    device: str = "auto",
    timeout: float = CHILD_TIMEOUT_S,
    names=None,
    mask_model=None,
) -> Prediction:
    """The same through `PYTHON -m voxlift reconstruct ... --out probs.npz` (a Python with torch)."""
    with tempfile.TemporaryDirectory(prefix="voxlift-") as tmp:
        paths = []
        for i, img in enumerate(images):
            paths.append(os.path.join(tmp, f"image{i}.npy"))
            np.save(paths[-1], np.ascontiguousarray(prepared(img)))
        out = os.path.join(tmp, "probs.npz")
        extra = ["--mask-model", str(mask_model)] if mask_model else []
        cmd = backend.command(
            "reconstruct", *paths, "--checkpoint", str(checkpoint), "--out", out, "--device", device, *extra
        )
        env = dict(backend.env(), **{CHILD_ENV: "1"})
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VoxliftError(f"{backend.python}: could not run the backend ({exc})") from None
        if proc.returncode != 0:
            stderr = proc.stderr
            for path, name in zip(paths, names or [], strict=False):  # the user's names, not our files'
                stderr = stderr.replace(path, str(name))
            raise _child_error(backend, stderr, proc.returncode)
        z = read_prediction_npz(out)
    return Prediction(
        z["probs"],
        z["viewer_centred"],
        z["threshold"] if z["threshold"] is not None else FALLBACK_THRESHOLD,
        z["found"] or ["?"] * len(z["probs"]),
        z["boxes"] if z["boxes"] is not None else np.tile(np.float32(WHOLE_PICTURE), (len(z["probs"]), 1)),
        str(checkpoint),
    )


def predict(
    images: list[np.ndarray], checkpoint=None, device: str = "auto", backend=None, names=None, mask_model=None
) -> Prediction:
    """In this process when torch imports here (and no external Python is configured), else in a child.
    No checkpoint: the starter model. `names` (one per image) name the pictures in errors."""
    checkpoint = model_path(checkpoint)
    child = {"names": names, "mask_model": mask_model}
    if backend is not None and backend.external:
        return predict_in_child(images, checkpoint, backend, device, **child)
    if not backend_process.torch_in_process():
        # A child never starts another child (it would repeat forever when torch is missing everywhere).
        if (
            backend is not None
            and not os.environ.get(CHILD_ENV)
            and (backend.python != sys.executable or backend.paths)
        ):
            return predict_in_child(images, checkpoint, backend, device, **child)
        raise VoxliftError(backend_process.missing_torch_message("torch", "reconstruct"))
    return predict_here(images, checkpoint, device, names, mask_model)


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
