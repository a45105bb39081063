"""`voxlift reconstruct IMAGE... --checkpoint CKPT --out FILE`: images to meshes or grids, headless.

The output format follows --out's extension: .blend (one object per image, needs bpy), .obj, .glb (glTF 2.0
binary, written here in numpy), .binvox (the thresholded grid in the object frame) or .npz (the raw
probabilities: how the add-on gets results back from a backend running in another Python). With several
images, non-.blend/.npz outputs get the image's name appended: `out_chair1.obj`, `out_chair2.obj`.

The same functions serve the Reconstruct panel (ui_reconstruct.py): `load_image`, `predict` (in this process,
a cached model, or through a child process of the configured Python), `mesh_in_scene_frame`.
Images: PNG (read with numpy, no Pillow needed), .npy arrays, and anything Pillow or Blender can read.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import meshing
from .dataset_tools.errors import VoxliftError
from .dataset_tools.fileio import atomic_write_bytes

CHILD_ENV = "VOXLIFT_BACKEND_CHILD"
FORMATS = (".blend", ".obj", ".glb", ".binvox", ".npz")

# (resolved checkpoint, its mtime, device) -> Predictor: a warm Reconstruct click skips loading the model.
_PREDICTORS: dict = {}


def add_arguments(command: str, p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ... or .npy arrays)")
    p.add_argument(
        "--checkpoint", required=True, help="a run folder (its best checkpoint) or .safetensors file"
    )
    p.add_argument("--out", required=True, help=f"output file: {', '.join(FORMATS)}")
    p.add_argument("--mode", default="cubes", choices=meshing.MODES, help="mesh kind (default cubes)")
    p.add_argument("--threshold", type=float, default=0.5, help="occupancy threshold (default 0.5)")
    p.add_argument("--greedy", action="store_true", help="cubes mode: merge coplanar voxel sides")
    p.add_argument(
        "--azimuth",
        type=float,
        default=0.0,
        help="azimuth (degrees) the pictures were taken from; turns viewer-centred results "
        "back into the object frame (default 0: from the front)",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


# ---------------------------------------------------------------------------------------------- images


MAX_IMAGE_PIXELS = 50_000_000  # a 7000x7000 photo; reconstruct downsamples everything to the model's input


def load_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as a numpy array, rows top first: [H, W] or [H, W, C], uint8/uint16 or float."""
    p = Path(path)
    if not p.is_file():
        raise VoxliftError(f"{p}: no such image file" if not p.exists() else f"{p}: not a file")
    if p.stat().st_size == 0:
        raise VoxliftError(f"{p}: empty file, not an image")
    if p.suffix.lower() == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 (numpy raises many types for a damaged file)
            raise VoxliftError(f"{p}: not a readable .npy array ({exc})") from None
        return check_image(a, p)
    with open(p, "rb") as f:
        head = f.read(8)
    from .dataset_tools.png import SIGNATURE, read_png

    if head == SIGNATURE:
        a = read_png(p)
        return check_image(a.astype(np.float32) / 65535 if a.dtype == np.uint16 else a, p)
    try:
        from PIL import Image
    except ImportError:
        return check_image(_load_with_blender(p), p)
    try:
        with Image.open(p) as im:
            # Refuse by the header's claim before decoding: a few kB of GIF can claim 10^8 pixels, and Pillow
            # only warns below 179 MP.
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise VoxliftError(
                    f"{p}: {im.width}x{im.height} pixels is more than this voxlift reads "
                    f"({MAX_IMAGE_PIXELS} pixels); scale the image down first"
                )
            im.load()
            a = np.asarray(im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB"))
    except VoxliftError:
        raise
    except Exception as exc:  # noqa: BLE001 (Pillow raises many types for a damaged file)
        raise VoxliftError(f"{p}: not an image this voxlift can read ({exc})") from None
    return check_image(a, p)


def _load_with_blender(p: Path) -> np.ndarray:
    try:
        import bpy  # noqa: F401 - only asks whether Blender is here
    except ImportError:
        raise VoxliftError(f"{p}: not a PNG, and neither Pillow nor Blender is here to read it") from None
    from . import ui_reconstruct

    return ui_reconstruct.file_pixels(p)


def check_image(a: np.ndarray, name) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)) or min(a.shape[:2]) < 8:
        raise VoxliftError(
            f"{name}: not an image array (shape {a.shape}; expected HxW, HxWx3 or HxWx4, at least 8x8 pixels)"
        )
    if a.dtype.kind not in "uif" or (a.dtype.kind == "f" and not np.isfinite(a).all()):
        raise VoxliftError(f"{name}: image values must be finite numbers (dtype {a.dtype})")
    if a.ndim == 3 and a.shape[2] == 2:  # gray + alpha
        a = np.concatenate([np.repeat(a[..., :1], 3, axis=2), a[..., 1:]], axis=2)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return a


def drop_opaque_alpha(image: np.ndarray) -> np.ndarray:
    """An alpha channel that is opaque everywhere (JPEGs in Blender) says nothing about the object: drop it,
    so the background is found from the border colour instead."""
    if image.ndim == 3 and image.shape[2] == 4:
        a = image[..., 3]
        full = 255 if a.dtype == np.uint8 else 1.0
        if a.min() >= 0.99 * full:
            return image[..., :3]
    return image


# ---------------------------------------------------------------------------------------------- prediction


def get_predictor(checkpoint: str | os.PathLike, device: str = "auto"):
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
    from .backend.predict import prepare_image

    p = get_predictor(checkpoint, device)
    fill = float(p.config.get("fill", 0.7))
    grays, alphas = [], []
    for img in images:
        g, a = prepare_image(drop_opaque_alpha(img), p.image_size, p.background, fill)
        grays.append(g)
        alphas.append(a)
    probs = p.predict(np.stack(grays), np.stack(alphas))
    return probs, p.viewer_centred


def predict_in_child(
    images: list[np.ndarray], checkpoint, backend, device: str = "auto", timeout: float = 600
) -> tuple[np.ndarray, bool]:
    """The same through `PYTHON -m voxlift reconstruct ... --out probs.npz` (a Python with torch)."""
    with tempfile.TemporaryDirectory(prefix="voxlift-") as tmp:
        paths = []
        for i, img in enumerate(images):
            paths.append(os.path.join(tmp, f"image{i}.npy"))
            np.save(paths[-1], np.ascontiguousarray(img))
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
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            err = next((ln.split("error:", 1)[1].strip() for ln in reversed(lines) if "error:" in ln), None)
            if err is None and any(
                "No module named 'voxlift'" in ln or "No module named voxlift" in ln for ln in lines
            ):
                err = "cannot import voxlift there (pip install voxlift into that environment)"
            err = err or (lines[-1] if lines else f"exit status {proc.returncode}")
            raise VoxliftError(f"backend {backend.python}: {err}")
        with np.load(out, allow_pickle=False) as z:
            return z["probs"].astype(np.float32), bool(z["viewer_centred"])


def torch_importable() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ValueError, ImportError):  # a broken or blocked torch
        return False


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
    if not torch_importable():
        # A child never starts another child (it would repeat forever when torch is missing everywhere).
        if (
            backend is not None
            and not os.environ.get(CHILD_ENV)
            and (backend.python != sys.executable or backend.paths)
        ):
            return predict_in_child(images, checkpoint, backend, device)
        raise VoxliftError(
            "PyTorch is not installed in this Python: install it (voxlift preferences, "
            "Install PyTorch) or choose a Python environment that has it"
        )
    return predict_here(images, checkpoint, device)


# ---------------------------------------------------------------------------------------------- outputs


def rotate_z(vertices: np.ndarray, degrees: float) -> np.ndarray:
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
    verts, quads = meshing.mesh_from_probs(probs, mode, threshold, greedy)
    if len(quads) == 0:
        raise VoxliftError(
            f"the reconstruction is empty at threshold {threshold:g} (no voxel above it); "
            "try a lower threshold"
        )
    return (rotate_z(verts, rotation) if rotation else verts), quads


def glb_bytes(vertices: np.ndarray, triangles: np.ndarray, name: str = "voxlift") -> bytes:
    """A minimal glTF 2.0 binary: one mesh, positions and indices, one plain material. glTF is Y up: the
    scene's Z-up coordinates (x, y, z) are stored as (x, z, -y)."""
    v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    pos = np.ascontiguousarray(np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1), dtype=np.float32)
    idx = np.ascontiguousarray(np.asarray(triangles).reshape(-1), dtype=np.uint32)
    pos_b, idx_b = pos.tobytes(), idx.tobytes()
    binary = pos_b + idx_b
    doc = {
        "asset": {"version": "2.0", "generator": "voxlift"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "materials": [
            {
                "name": "voxlift",
                "pbrMetallicRoughness": {
                    "baseColorFactor": [0.8, 0.72, 0.6, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.6,
                },
            }
        ],
        "meshes": [
            {
                "name": name,
                "primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "mode": 4, "material": 0}],
            }
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(pos),
                "type": "VEC3",
                "min": pos.min(axis=0).tolist() if len(pos) else [0, 0, 0],
                "max": pos.max(axis=0).tolist() if len(pos) else [0, 0, 0],
            },
            {"bufferView": 1, "componentType": 5125, "count": len(idx), "type": "SCALAR"},
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(pos_b), "target": 34962},
            {"buffer": 0, "byteOffset": len(pos_b), "byteLength": len(idx_b), "target": 34963},
        ],
        "buffers": [{"byteLength": len(binary)}],
    }
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(js), b"JSON")
        + js
        + struct.pack("<I4s", len(binary), b"BIN\0")
        + binary
    )


def object_frame_grid(probs: np.ndarray, viewer_centred: bool, azimuth: float) -> np.ndarray:
    """The grid axis-aligned in the object frame (binvox files cannot carry a rotation)."""
    if not viewer_centred or azimuth % 360 == 0:
        return probs
    from .backend.predict import to_object_frame

    return to_object_frame(probs, azimuth)


def write_result(path: Path, name: str, probs: np.ndarray, viewer_centred: bool, args) -> None:
    ext = path.suffix.lower()
    rotation = scene_rotation(viewer_centred, args.azimuth)
    if ext == ".binvox":
        from .dataset_tools.binvox import write_binvox

        grid = object_frame_grid(probs, viewer_centred, args.azimuth) >= args.threshold
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.binvox")
        try:
            write_binvox(tmp, grid, (-0.5, -0.5, -0.5), 1.0)  # the grid fills the unit cube
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return
    verts, quads = mesh_in_scene_frame(probs, args.mode, args.threshold, args.greedy, rotation)
    tris = meshing.triangulate(quads)
    if ext == ".obj":
        from .dataset_tools.mesh import Mesh
        from .dataset_tools.obj import write_obj

        write_obj(path, Mesh(verts, tris), comment=f"voxlift reconstruction of {name} ({args.mode})")
    elif ext == ".glb":
        atomic_write_bytes(path, glb_bytes(verts, tris, name))


def write_blend(path: Path, names: list[str], probs: np.ndarray, viewer_centred: bool, args) -> None:
    """One object per image, side by side along X, in a .blend written from a scene of its own (the open
    file, e.g. inside `blender -c`, is left alone)."""
    try:
        import bpy
    except ImportError:
        raise VoxliftError(f"{path}: writing .blend files needs Blender (bpy); write .obj or .glb") from None
    from . import blender_mesh

    registered = hasattr(bpy.types.Object, "voxlift")
    if not registered:
        blender_mesh.register()
    scene = bpy.data.scenes.new("voxlift")
    objects = []
    try:
        for i, (name, p) in enumerate(zip(names, probs, strict=True)):
            obj = blender_mesh.new_object(
                name,
                p,
                mode=args.mode.upper(),
                threshold=args.threshold,
                greedy=args.greedy,
                rotation_z=scene_rotation(viewer_centred, args.azimuth),
            )
            obj.location = (1.25 * i, 0.0, 0.0)
            scene.collection.objects.link(obj)
            objects.append(obj)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.blend")
        try:
            bpy.data.libraries.write(str(tmp), {scene}, fake_user=False)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    finally:
        for obj in objects:
            mesh = obj.data
            bpy.data.objects.remove(obj)
            bpy.data.meshes.remove(mesh)
        bpy.data.scenes.remove(scene)
        if not registered:
            blender_mesh.unregister()


def output_paths(out: Path, names: list[str]) -> list[Path]:
    if len(names) == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{n}{out.suffix}") for n in names]


def image_names(paths: list[str]) -> list[str]:
    names, seen = [], {}
    for p in paths:
        stem = Path(p).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}.{seen[stem] - 1:03d}")
    return names


def run(args) -> int:
    out = Path(args.out)
    ext = out.suffix.lower()
    if ext not in FORMATS:
        raise VoxliftError(
            f"{out}: unknown output format {ext or '(no extension)'!r}; use one of {', '.join(FORMATS)}"
        )
    if not out.parent.is_dir():
        raise VoxliftError(f"{out.parent}: no such folder for --out")
    if not 0 < args.threshold < 1:
        raise VoxliftError(f"--threshold {args.threshold}: must be between 0 and 1")
    images = [load_image(p) for p in args.images]
    names = image_names(args.images)
    backend = _blender_backend()
    probs, viewer_centred = predict(images, args.checkpoint, args.device, backend)
    if ext == ".npz":
        buf = out.with_name(f".{out.stem}.tmp{os.getpid()}.npz")
        try:
            np.savez(
                buf, probs=probs.astype(np.float32), viewer_centred=viewer_centred, names=np.array(names)
            )
            os.replace(buf, out)
        finally:
            if buf.exists():
                buf.unlink()
        written = [out]
    elif ext == ".blend":
        write_blend(out, names, probs, viewer_centred, args)
        written = [out]
    else:
        written = output_paths(out, names)
        for path, name, p in zip(written, names, probs, strict=True):
            write_result(path, name, p, viewer_centred, args)
    for path in written:
        print(path)
    return 0


def _blender_backend():
    """Inside Blender (`blender -c voxlift reconstruct`): the backend the add-on's preferences choose."""
    try:
        import bpy  # noqa: F401
    except ImportError:
        return None
    try:
        from . import prefs

        if prefs.get_prefs() is None:
            return None  # bpy used as a plain module, the add-on not enabled: this Python it is
        return prefs.current_backend()
    except Exception:  # noqa: BLE001 - no usable preferences: this Python it is
        return None
