"""Training the paired model: it learns, it overfits, it resumes exactly after a kill, it runs under DDP,
and its checkpoints are safetensors only."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from _paired_util import make_dataset, paired_network

from voxlift.backend import checkpoint as ckpt
from voxlift.backend.data import Augment, AugmentConfig, ViewDataset
from voxlift.backend.losses import voxel_loss
from voxlift.backend.metrics import iou
from voxlift.backend.predict import load_predictor
from voxlift.cli import main as cli_main
from voxlift.dataset_tools import VoxliftError, open_dataset

torch.set_num_threads(1)  # the machine's 2 cores are shared: one thread avoids OpenMP spinning
SMALL = [
    "--batch-size",
    "4",
    "--latent-dim",
    "64",
    "--encoder-width",
    "8",
    "--decoder-width",
    "4",
    "--workers",
    "0",
    "--quiet",
    "--warmup",
    "5",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("paired") / "ds", chairs=4, tables=4, size=32)


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _train_cmd(data, out, *extra):
    return [
        sys.executable,
        "-m",
        "voxlift.cli",
        "train",
        "paired",
        "--data",
        data,
        "--out",
        str(out),
        *SMALL,
        *extra,
    ]


def test_model_overfits_four_samples_and_its_loss_falls(tiny):
    torch.manual_seed(0)
    ds = open_dataset(tiny)
    items = ViewDataset(tiny, ds.indices())
    # 4 models seen from 0, 90, 180 and 270 degrees (exact rotations: binary viewer-centred targets).
    batch = torch.utils.data.default_collate([items[i] for i in (0, 10, 44, 54)])
    x, target = Augment(AugmentConfig())(batch, torch.device("cpu"), train=False)
    model = paired_network(
        {
            "input_size": 32,
            "resolution": 32,
            "latent_dim": 64,
            "encoder_width": 8,
            "decoder_width": 4,
            "norm": "batch",
        }
    )
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(100):
        loss = voxel_loss(model(x), target, "weighted-bce", 8.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        scores = iou(torch.sigmoid(model(x)), target, (0.3, 0.5))
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) / 5
    assert scores[:, 0].min() > 0.9, scores


@pytest.mark.parametrize("kind", ["bce", "l1", "dice"])
def test_other_losses_fall_too(kind):
    torch.manual_seed(1)
    logits = torch.zeros(2, 8, 8, 8, requires_grad=True)
    target = (torch.rand(2, 8, 8, 8) < 0.1).float()
    opt = torch.optim.Adam([logits], lr=0.1)
    first = voxel_loss(logits, target, kind).item()
    for _ in range(30):
        loss = voxel_loss(logits, target, kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 2


def test_cli_training_lowers_the_loss_and_writes_checkpoints_and_logs(tiny, tmp_path):
    out = tmp_path / "run"
    assert (
        cli_main(
            [
                "train",
                "paired",
                "--data",
                tiny,
                "--out",
                str(out),
                *SMALL,
                "--steps",
                "40",
                "--val-every",
                "20",
                "--lr",
                "3e-3",
            ]
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "paired" and config["viewer_centred"] is True
    _, meta = ckpt.load_checkpoint(out / "last.safetensors")
    assert meta["step"] == 40 and meta["config"] == config
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"), size_guidance={"images": 0}).Reload()
    loss = [e.value for e in events.Scalars("train/loss")]
    assert np.mean(loss[-2:]) < loss[0]
    assert "val/iou@0.3" in events.Tags()["scalars"] and "val/input|predicted|true" in events.Tags()["images"]
    p = load_predictor(out, device="cpu")
    probs = p.predict(open_dataset(tiny).images[0])
    assert (
        probs.shape == (8, 32, 32, 32) and probs.dtype == np.float32 and 0 <= probs.min() <= probs.max() <= 1
    )
    # The mixed-precision path (bf16 autocast, channels-last; the CUDA default) runs on the CPU too.
    amp = tmp_path / "amp"
    assert (
        cli_main(
            ["train", "paired", "--data", tiny, "--out", str(amp), *SMALL, "--steps", "3", "--bf16", "on"]
        )
        == 0
    )
    tensors, _ = ckpt.load_checkpoint(amp / "last.safetensors")
    assert tensors["model.encoder.fc.weight"].dtype == torch.float32
    assert torch.isfinite(tensors["model.decoder.fc.weight"]).all()
    # A second run into the same folder without --resume is refused: nothing is overwritten.
    assert cli_main(["train", "paired", "--data", tiny, "--out", str(out), *SMALL, "--steps", "2"]) == 1


def _step_of(path):
    try:
        return ckpt.load_checkpoint(path)[1]["step"]
    except (VoxliftError, OSError):
        return -1


def test_resume_after_kill_continues_exactly(tiny, tmp_path):
    steps = ["--steps", "16", "--val-every", "2", "--val-samples", "8", "--seed", "3"]
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(tiny, straight, *steps), check=True, env=_env(), capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(tiny, killed, *steps), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while _step_of(killed / "last.safetensors") < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = _step_of(killed / "last.safetensors")
    assert 4 <= at_kill < 16, "the run must be killed mid-way"
    subprocess.run(_train_cmd(tiny, killed, *steps, "--resume"), check=True, env=_env(), capture_output=True)
    a, meta_a = ckpt.load_checkpoint(straight / "last.safetensors")
    b, meta_b = ckpt.load_checkpoint(killed / "last.safetensors")
    assert meta_b["step"] == meta_a["step"] == 16
    assert meta_b["optimizer"] == meta_a["optimizer"] and meta_b["steps_total"] == meta_a["steps_total"] == 16
    assert set(a) == set(b) and any(k.startswith("optim.") for k in a)
    for k in a:  # weights, batch-norm statistics and Adam moments alike
        assert torch.equal(a[k], b[k]), k


def test_two_process_gloo_ddp_run_trains(tiny, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "voxlift.backend.train",
        "paired",
        "--data",
        tiny,
        "--out",
        str(out),
        *SMALL,
        "--steps",
        "6",
        "--val-every",
        "3",
        "--val-samples",
        "8",
    ]
    res = subprocess.run(cmd, check=False, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    tensors, meta = ckpt.load_checkpoint(out / "last.safetensors")
    assert meta["processes"] == 2 and meta["step"] == 6
    assert (out / "best.safetensors").is_file()
    fresh = paired_network(meta["config"]).state_dict()
    assert not torch.equal(tensors["model.encoder.fc.weight"], fresh["encoder.fc.weight"])


def test_checkpoint_loading_refuses_pickles_garbage_and_misfits(tiny, tmp_path, capsys):
    model = paired_network(
        {
            "input_size": 32,
            "resolution": 32,
            "latent_dim": 16,
            "encoder_width": 4,
            "decoder_width": 4,
            "norm": "batch",
        }
    )
    pickled = tmp_path / "evil.safetensors"
    torch.save(model.state_dict(), pickled)
    with pytest.raises(VoxliftError, match="evil.safetensors.*pickle"):
        load_predictor(pickled)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(300))
    with pytest.raises(VoxliftError, match="garbage.safetensors"):
        load_predictor(garbage)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(VoxliftError, match="empty.safetensors"):
        load_predictor(empty)
    config = {
        "kind": "paired",
        "image_size": 32,
        "input_size": 32,
        "resolution": 32,
        "latent_dim": 16,
        "encoder_width": 4,
        "decoder_width": 4,
        "norm": "batch",
    }
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    good = tmp_path / "good.safetensors"
    ckpt.save_checkpoint(good, state, {"config": config})
    assert load_predictor(good, device="cpu").image_size == 32
    wrong = tmp_path / "wrong.safetensors"
    ckpt.save_checkpoint(wrong, state, {"config": {**config, "latent_dim": 32}})
    with pytest.raises(VoxliftError, match="wrong.safetensors.*does not fit"):
        load_predictor(wrong)
    alien = tmp_path / "alien.safetensors"
    ckpt.save_checkpoint(alien, state, {"config": {**config, "kind": "teleporter"}})
    with pytest.raises(VoxliftError, match="alien.safetensors.*teleporter"):
        load_predictor(alien)
    with pytest.raises(VoxliftError, match="no such checkpoint"):
        load_predictor(tmp_path / "missing.safetensors")
    # Through the CLI: one line, exit status 1.
    assert cli_main(["evaluate", "--checkpoint", str(pickled), "--data", tiny]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("voxlift: error:") and "pickle" in err[0]


def test_max_minutes_is_the_budget_and_the_schedule_follows_the_time(tiny, tmp_path):
    out = tmp_path / "timed"
    t0 = time.time()
    argv = [
        "train",
        "paired",
        "--data",
        tiny,
        "--out",
        str(out),
        *SMALL,
        "--max-minutes",
        "0.1",
        "--val-every",
        "1000",
    ]
    assert cli_main(argv) == 0
    _, meta = ckpt.load_checkpoint(out / "last.safetensors")
    assert time.time() - t0 < 60 and 6 <= meta["elapsed"] < 6 + 5
    assert meta["budget_s"] == 6 and meta["steps_total"] is None and meta["step"] > 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["event"] == "step"]
    # the learning rate follows the share of the time spent: warm-up, then a falling cosine
    assert steps[-1]["progress"] > 0.5 and steps[-1]["lr"] < max(r["lr"] for r in steps)
    # timed runs validate at every fifth of their time, not only at the end
    assert len([r for r in rows if r["event"] == "val"]) >= 3
