"""How much of a model's loss on busy pictures is the mask's: the same pictures with the mask model, and with the
true alpha in its place.

    python tests/benchmarks/mask_diagnosis.py --data DATASET [--checkpoint MODEL] [--mask-model MASK] [--models 50]

For `--models` test models of DATASET (one random view each) and each picture kind of user_pictures.py named in
--kinds, prints the mean IoU (object frame, the model's own threshold) through the model's own framing (what
`voxlift reconstruct` does), the same with the picture's true alpha given (an exact mask), and the mask model's
IoU against the true alpha. Defaults: the shipped starter and mask models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from user_pictures import user_picture


def main() -> int:
    from voxlift.backend.framing import gray_and_alpha
    from voxlift.backend.metrics import iou
    from voxlift.backend.predict import load_predictor, to_object_frame
    from voxlift.backend.starter import STARTER
    from voxlift.dataset_tools import VoxliftError, open_dataset

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", default=str(STARTER))
    p.add_argument("--mask-model", default=None)
    p.add_argument("--models", type=int, default=50)
    p.add_argument("--kinds", nargs="+", default=["clean", "white", "photo", "cluttered", "noise"])
    args = p.parse_args()
    ds = open_dataset(args.data)
    rng = np.random.default_rng(0)
    test = ds.indices("test")
    models = rng.choice(test, min(args.models, len(test)), replace=False)
    views = [int(rng.integers(0, len(ds.views_of(int(m))))) for m in models]
    predictor = load_predictor(args.checkpoint, "cpu", mask_model=args.mask_model)

    def score(picture, alpha, m, v) -> float:
        try:
            gray, _ = predictor.prepare(picture, alpha)
        except VoxliftError:
            return 0.0  # refused: the user gets nothing
        probs = predictor.predict(gray[None])
        if predictor.viewer_centred:
            probs = to_object_frame(probs, ds.views_of(int(m))[v].azimuth)
        return float(iou(probs, np.asarray(ds.voxels[m])[None], (predictor.threshold,))[0, 0])

    print("picture | own framing | true alpha | mask IoU")
    for kind in args.kinds:
        own, exact, mask_iou = [], [], []
        for m, v in zip(models, views, strict=True):
            gray, alpha = np.asarray(ds.images[m, v]), np.asarray(ds.alpha[m, v])
            picture = user_picture(gray, alpha, kind, seed=int(m) * 97 + v)
            own.append(score(picture, None, m, v))
            if kind in ("clean", "small"):  # RGBA already, or a larger frame than the alpha
                continue
            exact.append(score(picture[..., :3], alpha, m, v))
            probs = predictor.mask_finder(gray_and_alpha(picture)[0]) > 0.5
            truth = alpha > 127
            mask_iou.append((probs & truth).sum() / max(1, (probs | truth).sum()))
        cells = [np.mean(own), np.mean(exact) if exact else np.nan, np.mean(mask_iou) if mask_iou else np.nan]
        print(f"{kind} | " + " | ".join(f"{c:.3f}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
