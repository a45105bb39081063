"""Crash at any instant: `voxlift render` and `voxlift train paired` are SIGKILLed at random moments, several
times in a row, and started again each time. The dataset ends byte for byte equal to an uninterrupted run's
(every model once, in order), is valid after every kill, and the training resumes from its last checkpoint,
with every checkpoint on disk loadable after every kill. A full disk (a small tmpfs) gives a one-line error
and leaves the last good files intact."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _fuzz_util import small_disk

from voxlift.dataset_tools.dataset import open_dataset

SMALL = ["--views", "2", "--image-size", "32", "--no-progress", "--workers", "1"]
N = int(os.environ.get("VOXLIFT_RENDER_MODELS", "20"))
FILES = ("models.jsonl", "images.u8", "alpha.u8", "voxels.u8", "skipped.jsonl")
# Sizes of the CI run; RELIABILITY.md has a longer one (the command is there).
KILLS = int(os.environ.get("VOXLIFT_RENDER_KILLS", "5"))


def render_cmd(out, n=N) -> list[str]:
    return [sys.executable, "-m", "voxlift", "render", f"synthetic:{n}", "--out", str(out), *SMALL]


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("crash") / "reference"
    res = run(render_cmd(out))
    assert res.returncode == 0 and f"{N} models rendered, 0 skipped" in res.stdout, res.stdout + res.stderr
    return out


def session_processes(sid: int) -> list[int]:
    """Live processes of session `sid` (the killed command's workers, if it left orphans)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid and Path(f"/proc/{entry}/stat").read_text().split()[2] != "Z":
                    pids.append(int(entry))
            except (OSError, IndexError):
                pass
    return pids


def assert_prefix_of(out: Path, reference: Path) -> int:
    """`out` is a valid dataset whose models are the reference's first k, byte for byte; returns k."""
    ds, ref = open_dataset(out), open_dataset(reference)
    ids = [m.id for m in ds.models]
    assert len(set(ids)) == len(ids), "a model is doubled"
    assert ids == [m.id for m in ref.models[: len(ids)]], "models missing or out of order"
    k = len(ids)
    for name in ("images", "alpha", "voxels"):
        assert np.array_equal(getattr(ds, name)[:k], getattr(ref, name)[:k]), name
    return k


def committed(out: Path) -> int:
    try:
        return (out / "models.jsonl").read_bytes().count(b"\n")
    except OSError:
        return 0


def test_render_killed_at_random_moments_ends_identical(reference, tmp_path):
    """Round 0 kills at a random instant of start-up; later rounds once the run has committed a model, at a
    random instant after it (mid-model, mid-append, between models)."""
    rng = random.Random(20261127)
    out = tmp_path / "killed"
    log = []
    for round_ in range(KILLS):
        start = committed(out)
        proc = subprocess.Popen(
            render_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if round_ == 0:
            time.sleep(rng.uniform(0.1, 1.5))
        else:
            deadline = time.monotonic() + 120
            while committed(out) <= start and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.1))  # a model takes tens of ms at this size
        whole = rng.random() < 0.5
        if proc.poll() is not None:
            log.append((round_, "finished first", committed(out)))
            continue
        if whole:
            os.killpg(proc.pid, signal.SIGKILL)  # the job and its Blender workers at once
        else:
            os.kill(proc.pid, signal.SIGKILL)  # the parent only: its workers must notice and exit
        proc.wait()
        deadline = time.monotonic() + 30
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = session_processes(proc.pid)
        for pid in orphans:  # clean up before failing, so no stray Blender keeps running
            os.kill(pid, signal.SIGKILL)
        assert not orphans, f"workers outlived their killed parent by 30 s: {orphans}"
        k = assert_prefix_of(out, reference) if (out / "manifest.json").exists() else 0
        log.append((round_, "group" if whole else "parent", k))
    assert sum(0 < entry[-1] < N for entry in log) >= 2, f"too few kills landed mid-dataset: {log}"
    res = run(render_cmd(out))
    assert res.returncode == 0, res.stdout + res.stderr
    for name in FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), (name, log)
    print("render kills (round, what was killed, models committed):", log)


def test_render_into_a_full_disk_fails_cleanly_and_keeps_its_models(reference, tmp_path):
    with small_disk(tmp_path / "disk", 300 << 10) as disk:
        out = disk.path / "ds"
        res = disk.run(render_cmd(out))
        err = [ln for ln in res.stderr.splitlines() if ln.startswith("voxlift: error:")]
        assert res.returncode == 1 and err and "Traceback" not in res.stderr, res.stderr[-3000:]
        assert disk.reason in err[-1] and "complete models" in err[-1], err[-1]
        kept = assert_prefix_of(out, reference)
        assert 0 < kept < N
        # Room again (a bigger disk): the same command finishes the same dataset.
        os.system(f"cp -a {out} {tmp_path / 'moved'}")
    res = run(render_cmd(tmp_path / "moved"))
    assert res.returncode == 0, res.stderr[-2000:]
    for name in FILES:
        assert (tmp_path / "moved" / name).read_bytes() == (reference / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------- training
TRAIN = [
    "--batch-size",
    "4",
    "--latent-dim",
    "16",
    "--encoder-width",
    "4",
    "--decoder-width",
    "2",
    "--workers",
    "0",
    "--quiet",
    "--warmup",
    "2",
    "--device",
    "cpu",
    "--val-samples",
    "8",
]
STEPS, EVERY = int(os.environ.get("VOXLIFT_TRAIN_STEPS", "24")), 3
TRAIN_KILLS = int(os.environ.get("VOXLIFT_TRAIN_KILLS", "2"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    from _paired_util import make_dataset

    return make_dataset(tmp_path_factory.mktemp("crash") / "ds", chairs=3, tables=3, size=32, views=2)


def train_cmd(data, out, steps=STEPS) -> list[str]:
    return [
        sys.executable,
        "-m",
        "voxlift",
        "train",
        "paired",
        "--data",
        data,
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--val-every",
        str(EVERY),
        "--resume",
        *TRAIN,
    ]


def train_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1")


def checkpoint_step(path: Path) -> int | None:
    from voxlift.backend import checkpoint as ckpt

    return ckpt.load_checkpoint(path)[1]["step"] if path.exists() else None


def assert_checkpoints_load(run_dir: Path) -> None:
    from voxlift.backend import checkpoint as ckpt
    from voxlift.backend.predict import load_predictor

    for path in sorted(run_dir.glob("*.safetensors")):
        ckpt.load_checkpoint(path)  # raises VoxliftError on a torn file
    if (run_dir / ckpt.BEST).exists():
        load_predictor(run_dir)


def test_training_killed_at_random_moments_resumes_from_its_last_checkpoint(tiny_data, tmp_path):
    rng = random.Random(7)
    run_dir = tmp_path / "run"
    last = run_dir / "last.safetensors"
    steps_seen = []
    for round_ in range(TRAIN_KILLS):
        before = checkpoint_step(last)
        proc = subprocess.Popen(
            train_cmd(tiny_data, run_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=train_env(),
        )
        if round_ == 0:
            time.sleep(rng.uniform(0.5, 2.0))  # probably still starting up
        else:  # wait for this run's first checkpoint: it must continue from the last one, not from 0
            deadline = time.monotonic() + 120
            while checkpoint_step(last) == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)  # tiny steps: two checkpoints can come within tens of milliseconds
            first = checkpoint_step(last)
            if before is None:  # killed before any checkpoint: a fresh start, seen at one of its checkpoints
                assert first is not None and first % EVERY == 0, f"first checkpoint at step {first}"
            else:
                assert first == before + EVERY, f"resumed at step {first}, last checkpoint was {before}"
            time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert_checkpoints_load(run_dir)
        step = checkpoint_step(last)
        steps_seen.append(step)
        assert step is None or step % EVERY == 0
    assert [s for s in steps_seen if s is not None] == sorted(s for s in steps_seen if s is not None)
    res = run(train_cmd(tiny_data, run_dir), env=train_env())
    assert res.returncode == 0, res.stderr[-2000:]
    assert checkpoint_step(last) == STEPS
    assert_checkpoints_load(run_dir)
    # log.jsonl reads as one run: the steps a killed run logged after its last checkpoint were dropped on resume
    rows = [json.loads(ln) for ln in (run_dir / "log.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in rows if r["event"] == "step"]
    assert logged and logged == sorted(set(logged)), logged
    print("checkpoint steps after each kill:", steps_seen)


@pytest.fixture(scope="module")
def full_disk_training(tiny_data, tmp_path_factory):
    """A run with one good checkpoint (step 3) on a 900 kB disk, resumed until its next checkpoint no longer
    fits (on the RLIMIT_FSIZE stand-in: a 200 kB cap per file): (result, run folder copied off, disk)."""
    tmp = tmp_path_factory.mktemp("fulldisk")
    with small_disk(tmp / "disk", 900 << 10, file_limit=200 << 10) as disk:
        first = run(train_cmd(tiny_data, disk.path / "run", steps=EVERY), env=train_env())
        assert first.returncode == 0, first.stderr[-2000:]
        res = disk.run(train_cmd(tiny_data, disk.path / "run", steps=60), env=train_env())
        os.system(f"cp -a {disk.path / 'run'} {tmp / 'run'}")
    return res, tmp / "run", disk


def test_training_on_a_full_disk_keeps_the_last_good_checkpoint(full_disk_training):
    from voxlift.backend.predict import load_predictor

    res, run_dir, _ = full_disk_training
    assert res.returncode != 0, "the disk was expected to fill up"
    step = checkpoint_step(run_dir / "last.safetensors")
    assert step == EVERY  # the last good checkpoint is whole and loads
    assert load_predictor(run_dir).resolution == 32
    print("full disk: last good checkpoint at step", step, "| stderr:", res.stderr.strip().splitlines()[-1:])


def test_training_on_a_full_disk_says_so_in_one_line(full_disk_training):
    res, run_dir, disk = full_disk_training
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and lines[-1].startswith("voxlift: error:") and disk.reason in lines[-1]
    assert "Traceback" not in res.stderr
    assert not list(run_dir.glob(".*.tmp*")), "temporary checkpoint files left on the full disk"
