"""Two jobs pointed at one output folder: the second is refused with a clear message, and the lock is the
kernel's (flock), so a SIGKILLed holder never leaves it stuck: the next run takes over and resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from voxlift.dataset_tools.dataset import DatasetWriter, open_dataset

RENDER = ["--views", "2", "--image-size", "32", "--no-progress", "--workers", "1"]


def voxlift(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voxlift", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def wait_for(predicate, proc, seconds=120) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, "the first job ended before the second one was started"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_second_render_is_refused_and_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    out = tmp_path / "ds"
    first = subprocess.Popen(
        [sys.executable, "-m", "voxlift", "render", "synthetic:400", "--out", str(out), *RENDER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (out / "models.jsonl").exists() and (out / "models.jsonl").stat().st_size > 0, first)
        second = voxlift("render", "synthetic:400", "--out", out, *RENDER)
        assert second.returncode == 1, second.stderr
        assert second.stderr.strip().splitlines() == [
            (
                f"voxlift: error: {out}: another voxlift process is writing this dataset (wait for it to finish or "
                "stop it)"
            )
        ]
        # A writer in this process (the panel's, say) is refused the same way while the CLI holds it.
        with pytest.raises(Exception, match="another voxlift process"):
            DatasetWriter(out, image_size=32, views_per_model=2, resolution=32, views=None)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # a crash: no clean-up code runs
        first.wait()
    kept = len(open_dataset(out))
    res = voxlift("render", "synthetic:40", "--out", out, *RENDER)  # not stuck: takes over and resumes
    assert res.returncode == 0, res.stderr
    assert len(open_dataset(out)) == max(kept, 40) and f"{min(kept, 40)} already there" in res.stdout


def test_second_training_on_one_run_folder_is_refused(tmp_path):
    from _paired_util import make_dataset

    data = make_dataset(tmp_path / "data", chairs=2, tables=2, size=32, views=2)
    run = tmp_path / "run"
    train = [
        "train",
        "paired",
        "--data",
        data,
        "--out",
        run,
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
        "--device",
        "cpu",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(
        [sys.executable, "-m", "voxlift", *map(str, train), "--steps", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    try:
        wait_for(lambda: (run / "config.json").exists(), first)
        second = voxlift(*train, "--steps", "3", "--val-every", "1", "--resume", env=env)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    lines = second.stderr.strip().splitlines()
    assert (
        second.returncode == 1
        and lines
        and lines[-1].startswith("voxlift: error:")
        and "another" in lines[-1]
    )
