"""`voxlift evaluate` and the metrics behind it."""

import json

import numpy as np
import pytest
import torch
from _paired_util import furniture_grid, make_dataset, paired_network

from voxlift.backend import checkpoint as ckpt
from voxlift.backend.metrics import Scores, fscore, iou
from voxlift.backend.predict import load_predictor, to_object_frame
from voxlift.cli import main as cli_main
from voxlift.dataset_tools import open_dataset

torch.set_num_threads(1)
CONFIG = {
    "kind": "paired",
    "image_size": 32,
    "input_size": 32,
    "resolution": 32,
    "latent_dim": 16,
    "encoder_width": 4,
    "decoder_width": 4,
    "norm": "batch",
    "viewer_centred": True,
    "background": 1.0,
    "fill": 0.6,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = paired_network(CONFIG).eval()
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    ckpt.save_checkpoint(path, {f"model.{k}": v for k, v in model.state_dict().items()}, {"config": CONFIG})
    return str(path)


def test_iou_and_fscore_on_known_grids():
    g = torch.zeros(1, 32, 32, 32)
    g[0, 8:24, 8:24, 8:24] = 1
    half = g.clone()
    half[0, 16:] = 0
    assert iou(g, g)[0].tolist() == [1.0, 1.0, 1.0]
    assert iou(half, g)[0, 0] == pytest.approx(0.5)
    soft = g * 0.45
    assert iou(soft, g)[0].tolist() == [1.0, 1.0, 0.0]  # thresholds 0.3, 0.4 pass, 0.5 does not
    assert iou(torch.zeros_like(g), torch.zeros_like(g))[0, 0] == 1.0
    chair = furniture_grid("chair", np.random.default_rng(0))
    assert fscore(chair, chair) == pytest.approx(1.0, abs=0.02)
    shifted = np.roll(chair, 2, axis=0)  # 2 voxels = 6% of the cube: far beyond the 1% distance
    assert fscore(shifted, chair) < 0.5
    assert fscore(np.zeros_like(chair), chair) == 0.0


def test_scores_average_per_sample_then_per_category():
    s = Scores(["iou"])
    s.add(["chair", "chair", "table"], np.array([[1.0], [0.0], [0.4]]))
    out = s.summary()
    assert out["categories"]["chair"]["iou"] == 0.5 and out["categories"]["table"]["samples"] == 1
    assert out["overall"]["iou"] == pytest.approx(1.4 / 3) and out["overall"]["samples"] == 3


def test_evaluate_json_and_saved_predictions_in_the_object_frame(checkpoint, tmp_path, capsys):
    data = make_dataset(tmp_path / "ds", chairs=2, tables=2, size=32)
    saved = tmp_path / "pred.npz"
    assert (
        cli_main(
            [
                "evaluate",
                "--checkpoint",
                checkpoint,
                "--data",
                data,
                "--split",
                "all",
                "--json",
                "--save-predictions",
                str(saved),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    summary = result["summary"]
    assert set(summary["categories"]) == {"chair", "table"} and summary["overall"]["samples"] == 4 * 8
    assert {"iou@0.3", "iou@0.4", "iou@0.5", "fscore@1%"} <= set(summary["overall"])
    npz = np.load(saved)
    ds = open_dataset(data)
    assert npz["probs"].shape == (4, 8, 32, 32, 32) and npz["probs"].dtype == np.float16
    assert npz["indices"].tolist() == [0, 1, 2, 3] and npz["ids"].tolist() == [m.id for m in ds.models]
    p = load_predictor(checkpoint, device="cpu")
    expect = to_object_frame(p.predict(ds.images[2]), [v.azimuth for v in ds.views])
    assert np.allclose(npz["probs"][2].astype(np.float32), expect, atol=2e-3)
    # The scores are those of the saved object-frame predictions against the dataset's grids.
    truth = np.repeat(np.asarray(ds.voxels)[:, None], 8, 1).reshape(-1, 32, 32, 32)
    ious = iou(npz["probs"].reshape(-1, 32, 32, 32).astype(np.float32), truth)
    assert summary["overall"]["iou@0.3"] == pytest.approx(ious[:, 0].mean(), abs=2e-3)
    # Distribution metrics of one prediction per model (view i mod V) against the true grids.
    from voxlift.backend.distribution_metrics import prediction_scores

    dist = result["distribution"]
    assert {"mmd", "coverage", "nna"} <= set(dist) and 0 <= dist["coverage"] <= 1 and 0 <= dist["nna"] <= 1
    again = prediction_scores([npz["probs"][i].astype(np.float32) for i in range(4)], np.asarray(ds.voxels))
    assert dist["mmd"] == pytest.approx(again["mmd"], abs=2e-3)


def test_evaluate_reads_per_model_cameras_like_r2n2(checkpoint, tmp_path, capsys):
    data = make_dataset(tmp_path / "r2n2like", chairs=2, tables=1, size=32, views=3, per_model_views=True)
    saved = tmp_path / "pred.npz"
    assert (
        cli_main(
            [
                "evaluate",
                "--checkpoint",
                checkpoint,
                "--data",
                data,
                "--split",
                "all",
                "--json",
                "--no-fscore",
                "--save-predictions",
                str(saved),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["summary"]["overall"]["samples"] == 9
    ds = open_dataset(data)
    p = load_predictor(checkpoint, device="cpu")
    az = [v.azimuth for v in ds.views_of(1)]
    assert len(set(az)) == 3 and az != [v.azimuth for v in ds.views_of(0)]
    expect = to_object_frame(p.predict(ds.images[1]), az)
    assert np.allclose(np.load(saved)["probs"][1].astype(np.float32), expect, atol=2e-3)


def test_evaluate_bad_inputs_are_one_line_errors(checkpoint, tmp_path, capsys):
    assert cli_main(["evaluate", "--checkpoint", checkpoint, "--data", str(tmp_path / "nope")]) == 1
    assert "nope" in capsys.readouterr().err
    data = make_dataset(tmp_path / "ds", chairs=1, tables=0, size=32)
    assert cli_main(["evaluate", "--checkpoint", checkpoint, "--data", data, "--categories", "sofa"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no models" in err[0]
