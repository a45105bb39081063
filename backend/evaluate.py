"""`voxlift evaluate`: a checkpoint's reconstructions of every view of a split, scored against the true grids.

    voxlift evaluate [--checkpoint RUN_OR_FILE] --data DATASET [--split test] [--json] [--threshold T]
                     [--save-predictions FILE.npz]

Scores are computed in the dataset's object frame: a viewer-centred prediction is turned back by its view's
azimuth first (trilinear for angles off multiples of 90 degrees), so every model and baseline is compared
with the same grids. IoU at 0.3, 0.4, 0.5 and F-score@1% (see metrics.py), per category and overall.
Works for any dataset in voxlift's format, 3D-R2N2's converted one (per-model cameras) included.
Saved predictions: probs float16 [N, V, R, R, R] in the object frame, `indices` (dataset indices), `ids`,
`categories`.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np

from ..dataset_tools.dataset import open_dataset
from ..dataset_tools.errors import VoxliftError
from .device import add_device_argument
from .metrics import THRESHOLDS, Scores, format_table, fscore, iou, metric_names, surface_points


def add_arguments(p) -> None:
    p.add_argument(
        "--checkpoint",
        help="a run folder (its best checkpoint) or a .safetensors file (default: the starter model voxlift ships)",
    )
    add_data_arguments(p)
    p.add_argument("--save-predictions", metavar="FILE.npz", help="save object-frame probabilities (float16)")
    p.add_argument(
        "--threshold",
        type=float,
        help="decision threshold of the `iou` column (default: the model's own, chosen on validation)",
    )
    add_device_argument(p)


def add_data_arguments(p) -> None:
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    p.add_argument("--categories", nargs="+", help="only these categories")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.add_argument(
        "--no-fscore", action="store_true", help="IoU only (F-score needs marching cubes per sample)"
    )


def select_models(ds, split: str, categories) -> np.ndarray:
    models = ds.indices(None if split == "all" else split, categories)
    if len(models) == 0:
        raise VoxliftError(
            f"{ds.path}: no models in split {split!r}"
            + (f" of categories {categories}" if categories else "")
        )
    return models


def score_model(
    scores: Scores,
    category: str,
    probs: np.ndarray,
    truth: np.ndarray,
    with_fscore: bool,
    own: float | None = None,
) -> None:
    """Add the rows of one model's V predictions [V, R, R, R] (object frame) against its grid [R, R, R]: IoU at
    the model's `own` threshold (when given), at THRESHOLDS, and the F-score."""
    t = np.broadcast_to(np.asarray(truth, dtype=np.float32), probs.shape)
    rows = iou(probs, t, ((own,) if own is not None else ()) + THRESHOLDS)
    if with_fscore:
        truth_points = surface_points((np.asarray(truth) > 0.5).astype(np.float32))
        cache: dict[bytes, float] = {}  # baselines repeat one grid for every view
        f = []
        for p in probs:
            key = np.packbits(p >= THRESHOLDS[0]).tobytes()
            if key not in cache:
                cache[key] = fscore(p, true_points=truth_points, threshold=THRESHOLDS[0])
            f.append([cache[key]])
        f = np.array(f)
        rows = np.concatenate([rows, f], 1)
    scores.add([category] * len(probs), rows)


def report(result: dict, as_json: bool, title: str) -> None:
    if as_json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print(format_table(result["summary"], title))
        if "distribution" in result:
            d = result["distribution"]
            print(
                "distribution of the predictions against the true grids (distance 1 - IoU): "
                + ", ".join(f"{k} {v:.3f}" for k, v in d.items() if isinstance(v, float))
            )


def run(args) -> int:
    from .distribution_metrics import prediction_scores
    from .predict import load_predictor, to_object_frame
    from .starter import checkpoint_or_starter

    predictor = load_predictor(checkpoint_or_starter(args.checkpoint), args.device)
    ds = open_dataset(args.data)
    if ds.resolution != predictor.resolution:
        raise VoxliftError(
            f"{args.data}: grids of {ds.resolution}^3, the model predicts {predictor.resolution}^3"
        )
    models = select_models(ds, args.split, args.categories)
    with_f = not args.no_fscore
    own = args.threshold if args.threshold is not None else predictor.threshold
    if not 0 < own < 1:
        raise VoxliftError(f"--threshold {own}: must lie between 0 and 1")
    scores = Scores(["iou", *metric_names(THRESHOLDS, with_f)])
    saved = [] if args.save_predictions else None
    # One prediction per model (view i mod V) for the distribution metrics, so both sets have one grid a model.
    picked, truths = [], []
    progress = _progress(len(models), "evaluate", args.json)
    for m in models:
        probs = predictor.predict_views(ds.images[m], ds.alpha[m])
        if predictor.viewer_centred:
            probs = to_object_frame(probs, [v.azimuth for v in ds.views_of(int(m))])
        score_model(scores, ds.models[m].category, probs, np.asarray(ds.voxels[m]), with_f, own)
        picked.append(probs[len(picked) % len(probs)][None])
        truths.append(np.asarray(ds.voxels[m]))
        if saved is not None:
            saved.append(probs.astype(np.float16))
        progress.update(1)
    progress.close()
    if saved is not None:
        save_predictions(args.save_predictions, np.stack(saved), ds, models)
    result = {
        "checkpoint": str(predictor.path),
        "kind": predictor.kind,
        "viewer_centred": predictor.viewer_centred,
        "threshold": own,
        "data": str(args.data),
        "split": args.split,
        "summary": scores.summary(),
    }
    if len(picked) >= 2:  # MMD, coverage and 1-NNA with 1 - IoU as the distance, against the true grids
        result["distribution"] = prediction_scores(picked, truths)
    report(result, args.json, f"{predictor.path} on {args.data} ({args.split}); iou at threshold {own:g}")
    return 0


def save_predictions(path, probs: np.ndarray, ds, models: np.ndarray) -> None:
    """npz written to a temporary file first, so an existing file is never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(
        buf,
        probs=probs.astype(np.float16),
        indices=np.asarray(models, np.int64),
        ids=np.array([ds.models[m].id for m in models]),
        categories=np.array([ds.models[m].category for m in models]),
    )
    from .checkpoint import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="model", disable=quiet or not sys.stderr.isatty())
