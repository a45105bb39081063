"""The shipped models (backend/assets): whole, the ones the card describes, and better than guessing on
furniture they never saw, rendered here from scratch; and a picture without alpha on a photograph (a held-out
one: Debian's mate-backgrounds, never in training) keeps what the shipped models reach of its clean IoU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from voxlift.backend import starter
from voxlift.backend.mask_finder import SHIPPED as MASK
from voxlift.backend.predict import load_predictor, to_object_frame
from voxlift.backend.run_files import read_meta
from voxlift.cli import main as cli_main
from voxlift.dataset_tools import open_dataset

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
from user_pictures import user_picture

# Procedural models with a seed the starter's data (synthetic:N, seed 0) never used: unseen furniture.
UNSEEN = "synthetic:10:20261201"
# Issue 16 asks 0.85 of the clean IoU for a picture without alpha on a photograph; the shipped models reach
# 0.71x here (0.73x on the starter's test split, backend/assets/starter.md; 0.50x with the first mask model):
# the mask model's cut-outs are the limit. This floor keeps what they reach from getting worse (with room
# for the spread of a few pictures); the target stays open in the issue.
PHOTO_FLOOR = 0.6


@pytest.fixture(scope="module")
def unseen(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unseen") / "data"
    argv = [
        "render",
        UNSEEN,
        "--categories",
        "chair,table",
        "--out",
        str(out),
        "--no-progress",
        "--workers",
        "1",
    ]
    assert cli_main(argv) == 0
    return out


def test_the_shipped_files_are_whole_and_described():
    assert starter.STARTER.is_file() and MASK.is_file() and starter.CARD.is_file()
    meta = read_meta(starter.STARTER)
    assert meta["config"]["kind"] == "paired" and 0 < meta["val"]["threshold"] < 1
    assert "python build.py starter" in meta["card"] and meta["card"] == starter.CARD.read_text()
    assert starter.STARTER.stat().st_size < 15e6
    p = load_predictor(starter.STARTER, "cpu")
    assert p.mask_finder is not None and p.framing == "bbox"


def _iou(probs, truth, threshold) -> float:
    p, t = probs >= threshold, truth > 0.5
    return float((p & t).sum() / max((p | t).sum(), 1))


def test_the_starter_beats_the_mean_shape_on_unseen_furniture(unseen, capsys):
    assert cli_main(["evaluate", "--data", str(unseen), "--split", "all", "--json", "--no-fscore"]) == 0
    model = json.loads(capsys.readouterr().out)
    ds = open_dataset(unseen)
    grids = np.stack([np.asarray(ds.voxels[m]) for m in range(len(ds))]).astype(np.float32)
    # the mean shape of these very grids, at its best threshold: a baseline that has seen the answers
    best_mean = max(np.mean([_iou(grids.mean(0), g, t) for g in grids]) for t in np.arange(0.1, 0.9, 0.05))
    assert model["checkpoint"].endswith("starter.safetensors")
    assert model["summary"]["overall"]["iou"] > best_mean + 0.05, (model["summary"]["overall"], best_mean)


def test_a_picture_without_alpha_on_a_photograph_keeps_the_clean_iou(unseen):
    p = load_predictor(starter.STARTER, "cpu")
    ds = open_dataset(unseen)
    clean, photo = [], []
    for m in range(len(ds)):
        for v, view in enumerate(ds.views_of(m)):
            if v % 2:
                continue
            truth = np.asarray(ds.voxels[m])
            for kind, scores in (("clean", clean), ("photo", photo)):
                picture = user_picture(
                    np.asarray(ds.images[m, v]), np.asarray(ds.alpha[m, v]), kind, seed=m * 8 + v
                )
                gray, _ = p.prepare(picture)
                probs = to_object_frame(p.predict(gray[None])[0], view.azimuth)
                scores.append(_iou(probs, truth, p.threshold))
    assert np.mean(photo) >= PHOTO_FLOOR * np.mean(clean), (np.mean(photo), np.mean(clean))
