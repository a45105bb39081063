"""The whole voxlift story on procedural furniture, with no download: `python build.py demo` / `voxlift demo`.

  1. procedural chairs and tables -> 32^3 grids -> .binvox files and a contact sheet of the grids
  2. -> an aligned dataset rendered with Blender (fixed viewpoints, image + alpha + grid + cameras)
  3. -> held-out images reconstructed by the starter model that ships with voxlift (no training yet): a .blend
        scene, a sheet (input | reconstruction | truth) and its test IoU, a minute or so after the start
  4. -> a short paired training on the CPU (or the GPU when there is one)
  5. -> the test IoU, beside the starter's and the mean-shape baseline's
  6. -> held-out images reconstructed by the trained model into a .blend scene, and a sheet

Every step runs the same `voxlift` command a user would type, so the demo also proves the CLI end to end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .dataset_tools.errors import VoxliftError

SHEET_TILE = 128  # pixels: the sheets' pictures, large enough to read, and wide enough for their labels
GRID_LABEL_CHARS = 15  # a model id on the grids sheet: what fits under a tile


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--models", type=int, default=160, help="procedural models to generate (default 160)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget (default 3)")
    p.add_argument("--image-size", type=int, default=64, help="rendering size in pixels (default 64)")
    p.add_argument("--workers", type=int, default=None, help="render workers (default: CPU count)")


def _voxlift(*args: str) -> None:
    from .cli import main

    print(f"\n$ voxlift {' '.join(args)}", flush=True)
    rc = main(list(args))
    if rc:
        raise VoxliftError(f"'voxlift {' '.join(args)}' failed with exit status {rc}")


def _capture_json(*args: str) -> dict:
    import contextlib
    import io

    from .cli import main

    print(f"\n$ voxlift {' '.join(args)}", flush=True)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(list(args))
    if rc:
        raise VoxliftError(f"'voxlift {' '.join(args)}' failed with exit status {rc}")
    return json.loads(buf.getvalue())


def fit_label(text: str, width: int) -> str:
    """`text`, cut to what preview.text_image draws within `width` pixels with one character's room to
    spare, so that labels of neighbouring tiles never run into each other."""
    from .dataset_tools.preview import text_image

    glyph = text_image("x").shape[1]
    return text[: max(1, width // glyph - 1)]


def enlarged(tile: np.ndarray, size: int = SHEET_TILE) -> np.ndarray:
    """A small picture scaled up by a whole factor (nearest pixel) to at least `size` pixels a side."""
    tile = np.asarray(tile)
    k = -(-size // min(tile.shape[:2]))
    return np.repeat(np.repeat(tile, k, axis=0), k, axis=1) if k > 1 else tile


def labelled_sheet(tiles: list[np.ndarray], labels: list[str], columns: int) -> np.ndarray:
    """A contact sheet of readable tiles (at least SHEET_TILE pixels) whose labels fit under them."""
    from .dataset_tools.preview import contact_sheet

    tiles = [enlarged(t) for t in tiles]
    width = min(t.shape[1] for t in tiles)
    return contact_sheet(tiles, columns=columns, labels=[fit_label(label, width) for label in labels])


def step_grids(out: Path, spec: str) -> Path:
    from .dataset_tools.binvox import read_binvox
    from .dataset_tools.png import write_png
    from .dataset_tools.preview import grid_preview

    _voxlift("voxelize", spec, "--out", str(out / "binvox"))
    files = sorted((out / "binvox").rglob("*.binvox"))[:48]
    sheet = labelled_sheet(
        [grid_preview(read_binvox(f).voxels, SHEET_TILE) for f in files],
        [f.stem[-GRID_LABEL_CHARS:] for f in files],
        columns=8,
    )
    write_png(out / "grids.png", sheet)
    print(f"contact sheet of {len(files)} grids: {out / 'grids.png'}")
    return out / "grids.png"


def step_reconstruct(out: Path, dataset_path: Path, run: Path | None, name: str, count: int = 8) -> Path:
    """Reconstruct held-out renderings through `voxlift reconstruct` with the trained model `run` (None: the
    starter model), each at the model's own threshold, into OUT/NAME.blend and the sheet OUT/NAME.png."""
    from .dataset_tools.binvox import read_binvox
    from .dataset_tools.dataset import open_dataset
    from .dataset_tools.png import write_png
    from .dataset_tools.preview import grid_preview

    model = ["--checkpoint", str(run)] if run is not None else []
    ds = open_dataset(dataset_path)
    test = ds.indices("test")[:count]
    inputs, tiles, labels = [], [], []
    (out / "inputs").mkdir(exist_ok=True)
    for n, i in enumerate(test):
        view = n % ds.views_per_model
        rgba = np.dstack([ds.images[i, view]] * 3 + [ds.alpha[i, view]])
        path = out / "inputs" / f"{ds.models[i].id.replace('/', '_').replace(':', '_')}_v{view}.png"
        write_png(path, rgba)
        inputs.append((i, view, path))
    _voxlift("reconstruct", *[str(p) for _, _, p in inputs], *model, "--out", str(out / f"{name}.blend"))
    for i, view, path in inputs:
        az = ds.views_of(i)[view]
        binvox = out / "inputs" / f"{path.stem}_{name}.binvox"
        _voxlift("reconstruct", str(path), *model, "--out", str(binvox), "--azimuth", str(az.azimuth))
        pred = read_binvox(binvox).voxels
        tiles += [
            ds.images[i, view],
            grid_preview(pred, SHEET_TILE, az.azimuth, az.elevation),
            grid_preview(ds.voxels[i], SHEET_TILE, az.azimuth, az.elevation),
        ]
        labels += ["input", "reconstruction", "truth"]
    write_png(out / f"{name}.png", labelled_sheet(tiles, labels, columns=6))
    return out / f"{name}.png"


def step_starter(out: Path, dataset: Path) -> tuple[Path, dict]:
    """The shipped starter model on the held-out renderings, before any training: (its sheet, its scores)."""
    sheet = step_reconstruct(out, dataset, None, "starter_reconstruction")
    scores = _capture_json("evaluate", "--data", str(dataset), "--split", "test", "--json", "--no-fscore")
    print(f"starter model, no training: test IoU@0.3 {_iou(scores):.3f}; sheet {sheet}", flush=True)
    return sheet, scores


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec = f"synthetic:{args.models}:{args.seed}"
    print(f"voxlift demo: {args.models} procedural chairs and tables into {out}")

    sheet = step_grids(out, spec)

    dataset = out / "dataset"
    render = ["render", spec, "--out", str(dataset), "--image-size", str(args.image_size)]
    if args.workers:
        render += ["--workers", str(args.workers)]
    _voxlift(*render)
    _voxlift("qa", str(dataset))
    starter_sheet, starter = step_starter(out, dataset)
    starter_s = time.time() - t0

    run_dir = fresh_run_dir(out)
    # The held-out inputs are renderings made like the training ones: augmentation (for photos and other
    # framings) would spend the short budget on robustness they do not need (BENCHMARKS.md, paired).
    _voxlift(
        "train",
        "paired",
        "--data",
        str(dataset),
        "--out",
        str(run_dir),
        "--max-minutes",
        str(args.minutes),
        "--no-augment",
    )
    result = _capture_json(
        "evaluate",
        "--checkpoint",
        str(run_dir),
        "--data",
        str(dataset),
        "--split",
        "test",
        "--json",
        "--no-fscore",
    )
    baseline = _capture_json("baseline", "mean-shape", "--data", str(dataset), "--split", "test", "--json")

    recon = step_reconstruct(out, dataset, run_dir, "reconstruction")
    print("\n== voxlift demo done in %.0f s" % (time.time() - t0))
    print(f"grids:            {sheet}")
    print(f"dataset:          {dataset}")
    print(f"starter sheet:    {starter_sheet}  (after {starter_s:.0f} s, no training)")
    print(f"checkpoint:       {run_dir}")
    print(f"scene:            {out / 'reconstruction.blend'}")
    print(f"sheet:            {recon}  (input | reconstruction | truth)")
    print(
        f"test IoU@0.3:     {_iou(result):.3f}   (starter model {_iou(starter):.3f}, "
        f"mean-shape baseline {_iou(baseline):.3f})"
    )
    return 0


def fresh_run_dir(out: Path) -> Path:
    """out/run, or out/run-2, -3, ... when an earlier demo left its run there (a run folder is never overwritten:
    `voxlift train` refuses one that holds a run, and the earlier model may be in use)."""
    run_dir, n = out / "run", 1
    while run_dir.exists():
        n += 1
        run_dir = out / f"run-{n}"
    return run_dir


def _iou(report: dict) -> float:
    """The overall IoU at threshold 0.3 of an evaluate/baseline JSON report."""
    try:
        return float(report["summary"]["overall"]["iou@0.3"])
    except (KeyError, TypeError, ValueError):
        raise VoxliftError(f"no IoU@0.3 in the report: {json.dumps(report)[:200]}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m voxlift.demo", description=__doc__.splitlines()[0])
    add_arguments("demo", p)
    try:
        return run(p.parse_args(argv))
    except VoxliftError as exc:
        print(f"voxlift: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
