"""The unpaired CycleGAN: no pair ever seen, exact resume, divergence handling, autoencoder start, prediction."""

import json

import numpy as np
import pytest
import torch
from _cyclegan_util import make_dataset
from _train_util import interrupt_at, log_rows, train, train_args

from voxlift.backend import checkpoint
from voxlift.backend.generators import GENERATOR_PARTS
from voxlift.backend.models.cyclegan import (
    CycleGAN,
    CycleGANModel,
    ImagePool,
    init_generators_from,
    lr_factor,
)
from voxlift.backend.unpaired_data import UnpairedSampler, split_domains
from voxlift.cli import main as cli_main
from voxlift.dataset_tools.dataset import open_dataset
from voxlift.dataset_tools.errors import VoxliftError

torch.set_num_threads(1)
TINY = ["--latent-dim", "16", "--encoder-width", "4", "--decoder-width", "4", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cg") / "ds", n_per_category=12, image_size=16, resolution=8)


def _gan(data, out, *extra):
    return [
        "--data",
        str(data),
        "--out",
        str(out),
        "--critic-width",
        "4",
        "--n-critic",
        "2",
        "--val-every",
        "2",
        "--val-samples",
        "8",
        *TINY,
        *extra,
    ]


def test_disjoint_domains_split_every_category_and_shuffled_uses_all(data):
    ds = open_dataset(data)
    d = split_domains(ds, "train", "disjoint", seed=3)
    train = set(ds.indices("train").tolist())
    assert not set(d.image_models) & set(d.voxel_models)
    assert set(d.image_models) | set(d.voxel_models) == train
    for side in (d.image_models, d.voxel_models):
        assert {ds.models[i].category for i in side} == {"chair", "table"}
    assert split_domains(ds, "train", "disjoint", seed=3).image_models.tolist() == d.image_models.tolist()
    s = split_domains(ds, "train", "shuffled", seed=3)
    assert set(s.image_models) == set(s.voxel_models) == train


def test_sampler_batches_are_a_function_of_the_step(data):
    ds = open_dataset(data)
    d = split_domains(ds, "train", "disjoint")
    a, b = UnpairedSampler(ds, d, 5, seed=1), UnpairedSampler(ds, d, 5, seed=1)
    for k in (7, 0, 3):
        xa, ia, ya, va = a.draw(k)
        xb, ib, yb, vb = b.draw(k)
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and (ia == ib).all() and (va == vb).all()
    x, _, y, _ = a.draw(0)
    assert x.shape == (5, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert y.shape == (5, 8, 8, 8) and y.min() >= 0 and y.max() <= 1 and y.max() > 0
    # binary in every view's frame, 45-degree views included (the 3D critic must not tell reals by softness)
    for k in range(6):
        y = a.draw(k)[2]
        assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_training_never_sees_a_pair(data, tmp_path, monkeypatch):
    seen_images, seen_voxels = set(), set()
    real_draw = UnpairedSampler.draw

    def draw(self, index):
        x, im, y, vx = real_draw(self, index)
        seen_images.update(im.tolist())
        seen_voxels.update(vx.tolist())
        return x, im, y, vx

    monkeypatch.setattr(UnpairedSampler, "draw", draw)
    out = tmp_path / "run"
    train("cyclegan", _gan(data, out, "--steps", "3", "--gan", "lsgan"))
    ds = open_dataset(data)
    assert seen_images and seen_voxels
    assert not seen_images & seen_voxels  # no model is ever seen in both domains
    domains = json.loads((out / "domains.json").read_text())
    assert domains["pairing"] == "disjoint"
    assert {ds.models[i].id for i in seen_images} <= set(domains["image_models"])
    assert {ds.models[i].id for i in seen_voxels} <= set(domains["voxel_models"])
    assert not set(domains["image_models"]) & set(domains["voxel_models"])
    val = [r["val"] for r in log_rows(out, "val")]
    assert val and {"iou@0.5", "mmd", "coverage", "nna"} <= set(val[-1])


def test_resume_continues_exactly(data, tmp_path, monkeypatch):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train("cyclegan", _gan(data, whole, "--steps", "4", "--val-every", "100"))
    with monkeypatch.context() as m:
        interrupt_at(m, "cyclegan", 2)
        with pytest.raises(KeyboardInterrupt):
            train("cyclegan", _gan(data, parts, "--steps", "4", "--val-every", "100"))
    assert checkpoint.load_checkpoint(parts / checkpoint.LAST)[1]["step"] == 2  # saved on Ctrl-C
    # the same command again resumes the interrupted run
    train("cyclegan", _gan(data, parts, "--steps", "4", "--val-every", "100"))
    # a finished run is not trained over by the same command
    with pytest.raises(VoxliftError, match="finished run.*--resume"):
        train("cyclegan", _gan(data, parts, "--steps", "4"))
    a, meta_a = checkpoint.load_checkpoint(whole / checkpoint.LAST)
    b, meta_b = checkpoint.load_checkpoint(parts / checkpoint.LAST)
    assert meta_a["step"] == meta_b["step"] == 4
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k


def test_a_diverging_run_stops_with_a_message_and_keeps_its_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "run"
    train("cyclegan", _gan(data, out, "--steps", "2", "--gan", "lsgan"))
    good = (out / checkpoint.LAST).read_bytes()
    rc = cli_main(
        [
            "train",
            "cyclegan",
            "--data",
            str(data),
            "--out",
            str(out),
            "--resume",
            "--steps",
            "30",
            "--val-every",
            "1",
            "--val-samples",
            "4",
            "--lr",
            "1e25",
            *TINY,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("voxlift: error:") and err.count("\n") == 1
    assert "diverged at step" in err and "last good checkpoint" in err
    failed_at = int(err.split("diverged at step ")[1].split(":")[0])
    tensors, meta = checkpoint.load_checkpoint(out / checkpoint.LAST)
    assert 2 <= meta["step"] <= failed_at
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    if meta["step"] == 2:
        assert (out / checkpoint.LAST).read_bytes() == good  # untouched


def test_bad_input_is_one_line(tmp_path, capsys):
    rc = cli_main(
        ["train", "cyclegan", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), *TINY]
    )
    assert rc == 1 and "nope" in capsys.readouterr().err


def test_autoencoder_weights_start_the_cyclegan(data, tmp_path):
    ae = tmp_path / "ae"
    train("autoencoder", ["--data", str(data), "--out", str(ae), "--steps", "2", *TINY])
    tensors, _ = checkpoint.load_checkpoint(ae / checkpoint.LAST, kinds=("autoencoder",))
    config = CycleGANModel.config_from_args(
        train_args("cyclegan", _gan(data, tmp_path / "x")), open_dataset(data)
    )
    model = CycleGAN(config)
    assert init_generators_from(model, config, ae / checkpoint.LAST) > 0
    for part in GENERATOR_PARTS:
        for k, v in getattr(model, part).state_dict().items():
            assert torch.equal(v, tensors[f"model.{part}.{k}"]), (part, k)
    run = tmp_path / "gan"
    train("cyclegan", _gan(data, run, "--steps", "1", "--init-from", str(ae)))
    assert json.loads((run / "config.json").read_text())["init_from"] == str(ae.resolve())
    with pytest.raises(VoxliftError, match="latent_dim"):
        train(
            "cyclegan",
            _gan(data, tmp_path / "bad", "--steps", "1", "--init-from", str(ae), "--latent-dim", "8"),
        )
    with pytest.raises(VoxliftError, match="kind"):
        train("cyclegan", _gan(data, tmp_path / "bad2", "--steps", "1", "--init-from", str(run)))


def test_predictor_loads_the_image_to_voxel_generator(data, tmp_path):
    from voxlift.backend.predict import load_predictor

    run = tmp_path / "run"
    train("cyclegan", _gan(data, run, "--steps", "1"))
    p = load_predictor(run, "cpu")
    ds = open_dataset(data)
    probs = p.predict(np.asarray(ds.images[0]))
    assert probs.shape == (ds.views_per_model, 8, 8, 8) and 0 <= probs.min() <= probs.max() <= 1
    assert p.kind == "cyclegan" and p.viewer_centred


def test_image_pool_and_schedule():
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(ImagePool(0).query(torch.ones(3, 2), gen), torch.ones(3, 2))
    pool = ImagePool(4)
    first = torch.arange(4.0)[:, None]
    assert torch.equal(pool.query(first, gen), first)  # filling: each fake passes through
    out = pool.query(torch.full((50, 1), 9.0), gen)
    assert (out == 9).any() and (out < 9).any()  # later: a mix of new and stored fakes
    assert (
        lr_factor(0.2, 0.5) == 1.0 and lr_factor(0.75, 0.5) == pytest.approx(0.5) and lr_factor(1.0, 0.5) == 0
    )


def test_bf16_autocast_trains_and_keeps_float32_weights(data, tmp_path):
    out = tmp_path / "bf16"
    train("cyclegan", _gan(data, out, "--steps", "4", "--bf16", "on", "--val-every", "100"))
    tensors, meta = checkpoint.load_checkpoint(out / checkpoint.LAST)
    assert meta["step"] == 4
    assert all(
        t.dtype == torch.float32
        for k, t in tensors.items()
        if k.startswith("model.") and t.is_floating_point()
    )
    losses = [r["losses"] for r in log_rows(out, "step")]
    assert losses and all("cycle_image" in r and all(np.isfinite(v) for v in r.values()) for r in losses)
    # and it resumes without autocast: the pools hold float32 fakes
    pools = [t for k, t in tensors.items() if k.startswith("pool.")]
    assert pools and all(t.dtype == torch.float32 for t in pools)
    train("cyclegan", _gan(data, out, "--resume", "--steps", "6", "--bf16", "off", "--val-every", "100"))
    assert checkpoint.load_checkpoint(out / checkpoint.LAST)[1]["step"] == 6


@pytest.mark.parametrize("kind", ["cyclegan", "autoencoder"])
def test_two_processes_train_in_step(data, tmp_path, kind):
    """torchrun with two gloo processes: gradients averaged by hand, the same weights in both at the end
    (train checks that itself), and only process 0 writes."""
    import os
    import subprocess
    import sys

    out = tmp_path / kind
    extra = ["--critic-width", "4", "--n-critic", "2"] if kind == "cyclegan" else []
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "voxlift.backend.train",
        kind,
        "--data",
        str(data),
        "--out",
        str(out),
        *TINY,
        *extra,
        "--steps",
        "4",
        "--val-every",
        "2",
        "--val-samples",
        "8",
        "--device",
        "cpu",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    res = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("trained 4 steps") == 1  # process 0 alone reports
    _tensors, meta = checkpoint.load_checkpoint(out / checkpoint.LAST)
    assert meta["step"] == 4
    assert [r["step"] for r in log_rows(out, "val")] == [2, 4]  # one writer: no doubled lines


def test_prefetched_draws_are_the_samplers_own(data):
    from voxlift.backend.unpaired_data import Prefetcher

    ds = open_dataset(data)
    sampler = UnpairedSampler(ds, split_domains(ds, "train", "disjoint", 0), 4, seed=3)
    ahead = Prefetcher(sampler, stride=2, ahead=3, threads=3)
    try:
        for i in [0, 2, 4, 6, 8, 1, 3, 40, 42]:  # in order, then a jump back and one forward
            x, im, y, vx = ahead.draw(i)
            x2, im2, y2, vx2 = sampler.draw(i)
            assert torch.equal(x, x2) and torch.equal(y, y2)
            assert np.array_equal(im, im2) and np.array_equal(vx, vx2)
    finally:
        ahead.close()
