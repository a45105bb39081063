"""`voxlift baseline mean-shape|retrieval`."""

import json

import numpy as np
import pytest
import torch
from _paired_util import make_dataset

from voxlift.backend.baselines import Retrieval, mean_shapes
from voxlift.backend.metrics import iou
from voxlift.cli import main as cli_main
from voxlift.dataset_tools import open_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("base") / "ds", chairs=6, tables=6, size=32, seed=4)


def test_retrieval_finds_the_training_shape_of_a_training_image(data, capsys):
    ds = open_dataset(data)
    train = ds.indices("train")
    r = Retrieval(ds, train, 32)
    m = int(train[1])
    assert np.array_equal(r(ds.images[m]), np.repeat(ds.voxels[m][None], 8, 0).astype(np.float32))
    assert (
        cli_main(["baseline", "retrieval", "--data", data, "--split", "train", "--json", "--no-fscore"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert (
        out["summary"]["overall"]["iou@0.3"] == 1.0 and out["summary"]["overall"]["samples"] == len(train) * 8
    )


def test_mean_shape_uses_its_best_training_threshold(data, capsys):
    ds = open_dataset(data)
    train = ds.indices("train")
    shapes = mean_shapes(ds, train)
    assert set(shapes) == {"chair", "table"}
    chairs = np.stack([ds.voxels[m] for m in train if ds.models[m].category == "chair"]).astype(np.float32)
    mean = chairs.mean(0)
    best = iou(np.broadcast_to(shapes["chair"], chairs.shape).astype(np.float32), chairs)[:, 0].mean()
    for t in (0.1, 0.3, 0.5, 0.7, 0.9):  # no other threshold does better on the training grids
        assert (
            iou(np.broadcast_to(mean >= t, chairs.shape).astype(np.float32), chairs)[:, 0].mean()
            <= best + 1e-6
        )
    assert cli_main(["baseline", "mean-shape", "--data", data, "--split", "all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["summary"]["categories"]["table"]["iou@0.5"] < 1
    assert 0 <= out["summary"]["overall"]["fscore@1%"] <= 1
