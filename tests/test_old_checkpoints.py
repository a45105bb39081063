"""Checkpoints written by voxlift before the one training loop (commit b04b4b0) still load, predict the same
grids, and resume.

tests/fixtures/checkpoints_b04b4b0/ holds tiny runs trained by that commit on a dataset made with
_paired_util.make_dataset(chairs=4, tables=4, size=32, views=4), and expected.npz the probabilities its
load_predictor gave for the first two models' first views.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from _paired_util import make_dataset

from voxlift.backend import checkpoint as ckpt
from voxlift.backend.predict import load_predictor
from voxlift.cli import main as cli_main

OLD = Path(__file__).parent / "fixtures" / "checkpoints_b04b4b0"
TINY = ["--latent-dim", "8", "--encoder-width", "2", "--decoder-width", "2", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def expected():
    return np.load(OLD / "expected.npz")


@pytest.mark.parametrize(
    ("name", "key"),
    [("paired_best", "paired"), ("cyclegan_best", "cg"), ("cyclegan_latent_best", "cgl")],
)
def test_old_checkpoints_predict_what_they_predicted(name, key, expected):
    p = load_predictor(OLD / f"{name}.safetensors", device="cpu")
    probs = p.predict(expected["images"], expected["alpha"])
    np.testing.assert_allclose(probs, expected[key], atol=1e-5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("old") / "data", chairs=4, tables=4, size=32, views=4)


@pytest.mark.parametrize(("name", "kind"), [("paired_last", "paired"), ("autoencoder_last", "autoencoder")])
def test_old_runs_resume_to_a_larger_budget(name, kind, data, tmp_path):
    run = tmp_path / kind
    run.mkdir()
    shutil.copy(OLD / f"{name}.safetensors", run / ckpt.LAST)
    # Finished (3 of 3 steps): the same command is refused, --resume with a larger budget goes on.
    base = ["train", kind, "--data", data, "--out", str(run), *TINY, "--val-every", "2"]
    extra = ["--workers", "0"] if kind == "paired" else []
    assert cli_main([*base, *extra, "--steps", "3"]) == 1
    assert cli_main([*base, *extra, "--steps", "5", "--resume"]) == 0
    _, meta = ckpt.load_checkpoint(run / ckpt.LAST)
    assert meta["step"] == 5 and meta["config"]["kind"] == kind and meta["config"]["version"] == 1
