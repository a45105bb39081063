"""Blender stays responsive while the panels render or train, and cleans up after itself.

The bpy module has no window event loop (background mode: modal operators and bpy.app.timers never fire), so
the operator's timer is driven by the test: what the Dataset panel's modal handler calls on every TIMER
event is `RenderJob.poll(0.0)`, and the Train panel's timer calls `ui_train.poll_job()`. The tests check
those calls never wait on the child processes (they keep returning while every worker is frozen with
SIGSTOP: a blocking call would hang Blender's UI), that Cancel stops every child (no orphans), and that
disabling the add-on, or loading another file, stops a running job."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from _blender_util import last_json, run_in_blender
from _fuzz_util import time_limit

from voxlift.render_job import RenderJob, RenderOptions


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def test_render_polls_never_wait_on_workers_and_cancel_leaves_no_orphans(tmp_path):
    job = RenderJob(
        RenderOptions(sources=["synthetic:200"], out=str(tmp_path / "ds"), views=2, image_size=32, workers=2),
        log=lambda msg: None,
    )
    job.start()
    try:
        ticks = 0
        with time_limit(120):  # a hang guard, not a speed check
            while job.done < 2:  # rendering has started
                job.poll(0.0)
                ticks += 1
                time.sleep(0.01)  # Blender's event loop between two TIMER events
        pids = [w.proc.pid for w in job.workers]
        assert pids and all(alive(p) for p in pids)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)  # workers frozen mid-model: nothing arrives on their pipes
        try:
            done = job.done
            with time_limit(30):
                for _ in range(200):  # every TIMER event is handled and returns, though no worker answers
                    assert job.poll(0.0) is True
            # Only results already on their way before the stop can arrive (at most the jobs in flight).
            assert job.done <= done + RenderJob.PER_WORKER * len(pids)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        with time_limit(120):
            while job.done < done + 2:  # and the job goes on when they wake up
                job.poll(0.0)
                ticks += 1
                time.sleep(0.01)
    finally:
        job.cancel()  # what Cancel and ESC call
    assert not [p for p in pids if alive(p)], "render workers outlived Cancel"
    assert not job.workers and job.writer is None
    from voxlift.dataset_tools.dataset import open_dataset

    assert len(open_dataset(tmp_path / "ds")) == job.done  # what was committed stays, for the next run


ADDON_SCRIPT = """
import json, os, sys, time
from pathlib import Path
from importlib import import_module
ui_dataset = import_module(VOXLIFT.__name__ + ".blender.ui_dataset")
ui_train, prefs = VOXLIFT.blender.ui_train, VOXLIFT.blender.prefs
scene = bpy.context.scene

# The Dataset panel: its settings, then what the Render operator's _start does.
s = scene.voxlift_dataset
s.sources, s.categories, s.views, s.image_size, s.workers, s.out = "synthetic:300", "", 2, 32, 1, {out!r}
from importlib import import_module
RenderJob = import_module(VOXLIFT.__name__ + ".render_job").RenderJob
job = RenderJob(ui_dataset.options_from_settings(s)).start()
ui_dataset._job = job
while job.done < 1:
    job.poll(0.0); time.sleep(0.01)
render_pids = [w.proc.pid for w in job.workers]

# The Train panel: a Python with torch as the backend (the preference), then its Train button's function.
{train}

{action}

def alive(pid):
    try:
        return Path(f"/proc/{{pid}}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False

def family():
    # the children and everything in their sessions (the trainer's DataLoader workers, say)
    pids = set(render_pids + train_pids)
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                if os.getsid(int(e)) in train_pids:
                    pids.add(int(e))
            except OSError:
                pass
    return sorted(p for p in pids if alive(p))

deadline = time.time() + {wait}
while time.time() < deadline and family():
    time.sleep(0.1)
print(json.dumps({{"render": render_pids, "train": train_pids, "alive": family(),
                   "last": Path({run!r}, "last.safetensors").exists()}}))
for p in family():  # never leave a child behind, even when the test fails
    try:
        os.kill(p, 9)
    except OSError:
        pass
"""

TRAIN = """
p = prefs.get_prefs()
p.python_path = {python!r}
t = scene.voxlift_train
t.dataset, t.out, t.budget, t.steps, t.device = {data!r}, {run!r}, "STEPS", 100000, "cpu"
ui_train.start_training(bpy.context)
tjob = ui_train.current_job()
while tjob.progress.step < 2 and tjob.poll() is None:
    assert ui_train.poll_job() == 1.0
    time.sleep(0.2)
train_pids = [tjob.proc.pid]
"""


def addon_run(tmp_path, action: str, train: bool, wait: float):
    from _paired_util import make_dataset

    data = make_dataset(tmp_path / "data", chairs=2, tables=2, size=32, views=2) if train else ""
    run = str(tmp_path / "run")
    train_code = TRAIN.format(python=sys.executable, data=data, run=run) if train else "train_pids = []"
    script = ADDON_SCRIPT.format(
        out=str(tmp_path / "ds"), run=run, train=train_code, action=action, wait=wait
    )
    res = run_in_blender(script, tmp_path, timeout=240)
    return last_json(res.stdout)


def test_disabling_the_add_on_stops_its_render_and_training(tmp_path):
    # Up to 60 s for the children to go: the trainer first saves its checkpoint (SIGINT, as Ctrl-C would).
    result = addon_run(
        tmp_path, "bpy.ops.preferences.addon_disable(module=VOXLIFT.__name__)", train=True, wait=60
    )
    assert result["render"] and result["train"]
    assert result["alive"] == [], f"children outlived disabling the add-on: {result}"
    assert result["last"], "the interrupted training did not save its last checkpoint"


def test_loading_another_file_stops_the_render(tmp_path):
    result = addon_run(
        tmp_path,
        "bpy.ops.wm.read_homefile(use_empty=True)\n"
        "assert ui_dataset._job is None, 'the panel still holds the job'",
        train=False,
        wait=10,
    )
    assert result["render"] and result["alive"] == [], result
