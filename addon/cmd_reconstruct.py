"""`voxlift reconstruct IMAGE... [--checkpoint CKPT] --out FILE`: images to meshes or grids, headless.

Without --checkpoint the starter model that ships with voxlift reconstructs (backend/starter.py); without
--threshold the model's own (chosen on validation when it was trained) decides which voxels are filled. Which
model, which threshold and how each picture's object was found go to stderr, one line each.

The output format follows --out's extension: .blend (one object per image, needs bpy), .obj, .glb (glTF 2.0
binary), .binvox (the thresholded grid in the object frame) or .npz (the raw probabilities: how the add-on
gets results back from a backend running in another Python). With several images, non-.blend/.npz outputs
get the image's name appended: `out_chair1.obj`, `out_chair2.obj`.

This module is the command line only; the work is in reconstruct.py (prediction, frames), io/ (readers and
writers) and blender/blend_file.py (.blend).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import host, meshing, reconstruct
from .backend.starter import REACH
from .backend_process import DEVICES
from .dataset_tools.errors import VoxliftError
from .io.gltf import write_glb
from .io.grids import write_grid_binvox, write_probs_npz
from .io.images import check_size, load_image
from .io.obj import write_mesh_obj

FORMATS = (".blend", ".obj", ".glb", ".binvox", ".npz")


def add_arguments(command: str, p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ... or .npy arrays)")
    p.add_argument(
        "--checkpoint",
        help="a run folder (its best checkpoint) or .safetensors file (default: the starter model voxlift "
        f"ships, {REACH})",
    )
    p.add_argument("--out", required=True, help=f"output file: {', '.join(FORMATS)}")
    p.add_argument(
        "--mask-model",
        help="the mask model that finds the object in pictures without alpha (voxlift train mask; default: "
        "the one voxlift ships)",
    )
    p.add_argument(
        "--mode", default=meshing.MODES[0], choices=meshing.MODES, help="mesh kind (default cubes)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="occupancy threshold (default: the model's own, chosen on validation; "
        f"{reconstruct.FALLBACK_THRESHOLD} for checkpoints older than that)",
    )
    p.add_argument("--greedy", action="store_true", help="cubes mode: merge coplanar voxel sides")
    p.add_argument(
        "--azimuth",
        type=float,
        default=0.0,
        help="azimuth (degrees) the pictures were taken from; turns viewer-centred results "
        "back into the object frame (default 0: from the front)",
    )
    p.add_argument("--device", default="auto", choices=DEVICES)


def check_arguments(args) -> Path:
    """The output path, once --out and --threshold make sense (before any image is read)."""
    out = Path(args.out)
    ext = out.suffix.lower()
    if ext not in FORMATS:
        raise VoxliftError(
            f"{out}: unknown output format {ext or '(no extension)'!r}; use one of {', '.join(FORMATS)}"
        )
    if not out.parent.is_dir():
        raise VoxliftError(f"{out.parent}: no such folder for --out")
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise VoxliftError(f"--threshold {args.threshold}: must be between 0 and 1")
    return out


def run(args) -> int:
    out = check_arguments(args)
    ext = out.suffix.lower()
    images = [load_image(p, fallback=_read_with_blender) for p in args.images]
    for path, image in zip(args.images, images, strict=True):
        check_size(*image.shape[:2], path)
    names = image_names(args.images)
    result = reconstruct.predict(
        images, args.checkpoint, args.device, host.blender_backend(), args.images, args.mask_model
    )
    warning = reconstruct.checkpoint_warning(result.checkpoint)
    if warning:
        print(f"voxlift: warning: {warning}", file=sys.stderr)
    args.threshold = say_what_was_used(result, args.threshold, args.images)
    if ext == ".npz":  # one file for all images
        write_probs_npz(
            out,
            result.probs,
            result.viewer_centred,
            names,
            threshold=result.threshold,
            found=result.found,
            boxes=result.boxes,
            checkpoint=result.checkpoint,
        )
        written = [out]
    elif ext == ".blend":  # one file, one object per image
        write_blend(out, names, result.probs, result.viewer_centred, args)
        written = [out]
    else:  # one file per image
        written = output_paths(out, names)
        for path, name, p in zip(written, names, result.probs, strict=True):
            write_result(path, name, p, result.viewer_centred, args)
    for path in written:
        print(path)
    return 0


def say_what_was_used(result: reconstruct.Prediction, threshold: float | None, images: list[str]) -> float:
    """The threshold to mesh at (the user's, else the model's), after saying on stderr which model, which
    threshold and how each picture's object was found."""
    reach = reconstruct.model_reach(result.checkpoint)
    print(f"voxlift: model: {result.model}" + (f" ({reach})" if reach else ""), file=sys.stderr)
    own = threshold is None
    threshold = result.threshold if own else threshold
    whose = "the model's own" if own else "yours"
    print(f"voxlift: threshold {threshold:g} ({whose})", file=sys.stderr)
    for path, how in zip(images, result.found, strict=True):
        print(f"voxlift: {path}: object found by {how}", file=sys.stderr)
    return threshold


def write_result(path: Path, name: str, probs: np.ndarray, viewer_centred: bool, args) -> None:
    """One image's grid as .binvox (object frame), .obj or .glb (scene frame)."""
    ext = path.suffix.lower()
    if ext == ".binvox":
        write_grid_binvox(
            path, reconstruct.object_frame_grid(probs, viewer_centred, args.azimuth) >= args.threshold
        )
        return
    rotation = reconstruct.scene_rotation(viewer_centred, args.azimuth)
    verts, quads = reconstruct.mesh_in_scene_frame(probs, args.mode, args.threshold, args.greedy, rotation)
    tris = meshing.triangulate(quads)
    if ext == ".obj":
        write_mesh_obj(path, verts, tris, comment=f"voxlift reconstruction of {name} ({args.mode})")
    elif ext == ".glb":
        write_glb(path, verts, tris, name)


def write_blend(path: Path, names: list[str], probs: np.ndarray, viewer_centred: bool, args) -> None:
    try:
        from .blender.blend_file import write_blend as write
    except ImportError:
        raise VoxliftError(f"{path}: writing .blend files needs Blender (bpy); write .obj or .glb") from None
    write(
        path,
        names,
        probs,
        mode=args.mode.upper(),
        threshold=args.threshold,
        greedy=args.greedy,
        rotation_z=reconstruct.scene_rotation(viewer_centred, args.azimuth),
    )


def output_paths(out: Path, names: list[str]) -> list[Path]:
    if len(names) == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{n}{out.suffix}") for n in names]


def image_names(paths: list[str]) -> list[str]:
    """Object and file names from image paths: their stems, repeats numbered like Blender's (.001)."""
    names, seen = [], {}
    for p in paths:
        stem = Path(p).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}.{seen[stem] - 1:03d}")
    return names


def _read_with_blender(path: Path) -> np.ndarray:
    """Images Pillow would read, inside Blender (which has no Pillow)."""
    try:
        from .blender.images import file_pixels
    except ImportError:
        raise VoxliftError(f"{path}: not a PNG, and neither Pillow nor Blender is here to read it") from None
    return file_pixels(path)
