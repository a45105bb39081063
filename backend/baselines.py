"""`voxlift baseline mean-shape|retrieval`: what a network must beat, on the same split, scored the same way.

mean-shape   the per-category mean training grid, thresholded at the threshold that maximises its mean IoU
             on that category's training grids; one fixed shape per category.
retrieval    the training grid of the nearest training image (L2 distance between 32x32 area-averaged gray
             images), Tatarchenko et al. 2019 ("What do single-view 3D reconstruction networks learn?").
Both predict in the object frame, binary grids (so IoU is the same at every threshold).
"""

from __future__ import annotations

import numpy as np
import torch

from ..dataset_tools.dataset import open_dataset
from ..dataset_tools.errors import VoxliftError
from .evaluate import _progress, add_data_arguments, report, score_model, select_models
from .metrics import THRESHOLDS, Scores, iou, metric_names

BASELINES = ("mean-shape", "retrieval")


def add_arguments(p) -> None:
    p.add_argument("method", choices=BASELINES)
    add_data_arguments(p)
    p.add_argument(
        "--feature-size", type=int, default=32, help="retrieval: images area-averaged to this size"
    )
    p.add_argument(
        "--train-data",
        help="fit the baseline on this dataset's train split (default: --data's), e.g. to score furniture of "
        "another library (leave one library out)",
    )
    p.add_argument(
        "--train-categories", nargs="+", help="fit on these categories only (default: --categories)"
    )


def mean_shapes(ds, train: np.ndarray) -> dict[str, np.ndarray]:
    """category -> boolean grid: the mean training grid at its best training threshold."""
    shapes = {}
    for cat in sorted({ds.models[m].category for m in train}):
        ms = [m for m in train if ds.models[m].category == cat]
        grids = np.stack([np.asarray(ds.voxels[m], dtype=np.float32) for m in ms])
        mean = grids.mean(0)
        candidates = np.arange(0.05, 0.96, 0.05)
        scores = [iou(np.broadcast_to(mean >= t, grids.shape), grids, (0.5,)).mean() for t in candidates]
        shapes[cat] = mean >= candidates[int(np.argmax(scores))]
    return shapes


def image_features(images: np.ndarray, size: int) -> torch.Tensor:
    """[..., S, S] uint8 -> [M, size*size] float area-averaged features."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32).reshape(-1, 1, *images.shape[-2:]) / 255.0)
    return torch.nn.functional.adaptive_avg_pool2d(x, size).flatten(1)


class Retrieval:
    def __init__(self, ds, train: np.ndarray, size: int):
        self.ds, self.size = ds, size
        feats, owners = [], []
        for lo in range(0, len(train), 256):
            ms = train[lo : lo + 256]
            feats.append(image_features(np.asarray(ds.images[ms]), size))
            owners.append(np.repeat(ms, ds.views_per_model))
        self.features = torch.cat(feats)
        self.owners = np.concatenate(owners)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        q = image_features(images, self.size)
        nearest = torch.cdist(q, self.features).argmin(1).numpy()
        return np.stack([np.asarray(self.ds.voxels[self.owners[i]], dtype=np.float32) for i in nearest])


def run(args) -> int:
    ds = open_dataset(args.data)
    fit = open_dataset(args.train_data) if args.train_data else ds
    train = fit.indices("train", args.train_categories or args.categories)
    if len(train) == 0:
        raise VoxliftError(f"{fit.path}: no training models to build the {args.method} baseline from")
    if fit.resolution != ds.resolution:
        raise VoxliftError(f"{fit.path}: grids of {fit.resolution}^3, {args.data} has {ds.resolution}^3")
    models = select_models(ds, args.split, args.categories)
    if args.method == "mean-shape":
        shapes = mean_shapes(fit, train)

        def predict(m):
            cat = ds.models[m].category
            if cat not in shapes:
                raise VoxliftError(
                    f"{fit.path}: category {cat!r} has no training models (mean shape undefined)"
                )
            return np.repeat(shapes[cat][None].astype(np.float32), ds.views_per_model, 0)
    else:
        retrieval = Retrieval(fit, train, args.feature_size)

        def predict(m):
            return retrieval(np.asarray(ds.images[m]))

    with_f = not args.no_fscore
    scores = Scores(metric_names(THRESHOLDS, with_f))
    progress = _progress(len(models), args.method, args.json)
    for m in models:
        score_model(scores, ds.models[m].category, predict(m), np.asarray(ds.voxels[m]), with_f)
        progress.update(1)
    progress.close()
    result = {
        "baseline": args.method,
        "data": str(args.data),
        "split": args.split,
        "summary": scores.summary(),
    }
    report(result, args.json, f"{args.method} on {args.data} ({args.split})")
    return 0
