"""The Train panel and the command line inside Blender, as a new user meets them (issue 15): progress read
from the trainer's JSON lines, a cancelled run that never validated is not the model, Resume (and Train into
an interrupted run's folder) continues it with the same command, a finished run's folder is refused, runs
live where uninstalling the extension does not delete them, `voxlift train` without torch is one line and
runs in the preferences' Python environment when one is set, and every setting has a tooltip.

One Blender process (the built zip installed into bpy) runs the story; the tests check its parts from the
JSON it prints. The preferences' Python environment is a small wrapper around this venv's Python that adds
tiny model sizes to `train paired` (the panel has no size settings): real training, in seconds.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from _blender_util import last_json, run_in_blender
from _paired_util import make_dataset
from _reconstruct_util import tiny_run

TINY = "--batch-size 4 --val-samples 8 --latent-dim 16 --encoder-width 4 --decoder-width 4 --workers 0"
MINUTES = 0.2  # the timed run: 12 s
# validates every 250 steps (the panel's cap, MAX_VAL_EVERY): a cancel sent once step 1 shows lands long before
# the first validation (with 40 steps it validated at step 8, which a tiny model can pass before the cancel)
LONG_STEPS = 1250

SCRIPT = r"""
import contextlib, io, json, os, time
from pathlib import Path

A = json.loads(Path(ARGS).read_text())
ctx = bpy.context
scene = ctx.scene
ui_train, prefs_mod, registry = VOXLIFT.blender.ui_train, VOXLIFT.blender.prefs, VOXLIFT.blender.registry
prefs = ctx.preferences.addons[VOXLIFT.__name__].preferences
t, s = scene.voxlift_train, scene.voxlift_reconstruct
out = {}


def op(fn, **kw):
    try:
        return sorted(fn(**kw))
    except RuntimeError as exc:  # an operator's ERROR report
        return "ERROR " + str(exc)


def state():
    return {k: v for k, v in ui_train._state.items() if k != "job"}


def watch(limit):
    # What the panel's timer does, every 0.2 s, and what the panel shows each time.
    snaps, deadline = [], time.time() + limit
    while time.time() < deadline:
        job = ui_train.current_job()
        more = ui_train.poll_job()
        if job is not None and more is not None:
            p = job.progress
            snaps.append({"status": ui_train._state["status"], "fraction": p.fraction, "step": p.step,
                          "total": p.total, "iou": p.iou, "left": p.seconds_left})
        if more is None:
            break
        time.sleep(0.2)
    return snaps


def wait_for(condition, limit):
    deadline = time.time() + limit
    while time.time() < deadline and ui_train.current_job() is not None:
        if condition(ui_train.current_job()):
            return True
        ui_train.poll_job()
        time.sleep(0.2)
    return False


def cancel_and_wait():
    assert bpy.ops.voxlift.train_cancel() == {"FINISHED"}
    return watch(120)


prefs.python_path = A["python"]
t.dataset, t.device = A["data"], "cpu"
ext_user = bpy.utils.extension_path_user(VOXLIFT.__name__, create=True)
out["runs_root"], out["ext_user"] = str(prefs_mod.runs_root()), ext_user

# 1. A timed run: the bar and the text come from the trainer's JSON lines.
t.budget, t.minutes, t.out = "MINUTES", A["minutes"], ""
out["timed"] = op(bpy.ops.voxlift.train)
job = ui_train.current_job()
out["timed_command"] = job.command
out["timed_snaps"] = watch(300)
out["timed_state"], out["timed_run"] = state(), ui_train._state["out"]
out["timed_end"] = {"step": job.progress.step, "end": job.progress.end}
out["after_timed"] = [s.checkpoint, prefs.last_checkpoint]

# 2. Cancel a run before its first validation: it is not the model; Resume can continue it.
t.budget, t.steps = "STEPS", A["long_steps"]
out["long"] = op(bpy.ops.voxlift.train)
job = ui_train.current_job()
out["long_started"] = wait_for(lambda j: j.progress.step >= 1, 180)
cancel_and_wait()
cancelled = ui_train._state["out"]
out["cancel_state"], out["cancel_run"], out["cancel_command"] = state(), cancelled, job.command
out["cancel_files"] = sorted(os.listdir(cancelled))
out["after_cancel"] = [s.checkpoint, prefs.last_checkpoint]
out["resume_poll"] = bpy.ops.voxlift.train_resume.poll()

# 3. Resume: the same command, continuing where it stopped.
out["resume"] = op(bpy.ops.voxlift.train_resume)
job = ui_train.current_job()
out["resume_command"] = job.command
out["resumed"] = wait_for(lambda j: j.progress.resumed, 180)
out["resumed_at"] = job.progress.step
cancel_and_wait()

# 4. Train into the interrupted run's folder: it continues too.
t.out = cancelled
out["train_into"] = op(bpy.ops.voxlift.train)
job = ui_train.current_job()
out["train_into_command"] = job.command
out["train_into_resumed"] = wait_for(lambda j: j.progress.resumed, 180)
cancel_and_wait()

# 5. Train into a finished run's folder: refused, in clear words.
t.out = A["finished_run"]
out["into_finished"] = op(bpy.ops.voxlift.train)
t.out = ""

# 6. The command line inside Blender: a Blender without torch says what to do in one line...
sys.modules["torch"] = None
prefs.python_path = ""
cli = {}
for name, argv in A["cli"].items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = registry._cli(argv)
    cli[name] = [rc, err.getvalue()]
out["cli_no_torch"] = cli
# ...and with the preferences' Python environment, the command runs there.
prefs.python_path = A["python"]
out["cli_external"] = registry._cli(A["cli"]["train"] + ["--quiet"])
out["cli_run_files"] = sorted(os.listdir(A["cli_run"])) if os.path.isdir(A["cli_run"]) else []

# 7. Every setting of these panels and of the preferences says what it is.
def described(group):
    missing = []
    for prop in group.bl_rna.properties:
        if prop.identifier in ("rna_type", "name", "bl_idname") or prop.is_hidden:
            continue
        if not prop.description:
            missing.append(prop.identifier)
        for item in getattr(prop, "enum_items", []):
            if not item.description:
                missing.append(f"{prop.identifier}:{item.identifier}")
    return missing

obj = bpy.data.objects.new("probe", bpy.data.meshes.new("probe"))
out["undescribed"] = {"train": described(t), "reconstruct": described(s), "object": described(obj.voxlift),
                      "preferences": described(prefs)}

# 8. Uninstall the extension: its own user folder goes, the runs stay.
Path(ext_user, "marker").write_text("kept?")
repos = ctx.preferences.extensions.repos
index = next(i for i, r in enumerate(repos) if r.module == "user_default")
out["uninstall"] = op(bpy.ops.extensions.package_uninstall, repo_index=index, pkg_id="voxlift")
out["after_uninstall"] = {"ext_user": os.path.exists(ext_user), "timed_run": sorted(os.listdir(out["timed_run"]))}
print(json.dumps(out))
"""


def tiny_python(folder: Path) -> str:
    """A "Python environment" for the preferences: this venv's Python, with tiny sizes for `train paired`."""
    path = folder / "tiny-python"
    path.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" train paired "*) exec {sys.executable} "$@" {TINY} ;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    finished = tiny_run(tmp_path_factory)["run"]  # a run that trained its 3 steps (a step budget)
    tmp = tmp_path_factory.mktemp("train-panel")
    data = make_dataset(tmp / "data", chairs=3, tables=3, size=32, views=2)
    cli_run = str(tmp / "cli-run")
    args = {
        "python": tiny_python(tmp),
        "data": data,
        "minutes": MINUTES,
        "long_steps": LONG_STEPS,
        "cli_run": cli_run,
        "finished_run": str(finished),
        "cli": {
            "train": ["train", "paired", "--data", data, "--out", cli_run, "--steps", "2"],
            "evaluate": ["evaluate", "--checkpoint", cli_run, "--data", data],
        },
    }
    (tmp / "args.json").write_text(json.dumps(args))
    res = run_in_blender(f"ARGS = {str(tmp / 'args.json')!r}\n" + SCRIPT, tmp, timeout=900)
    return {"out": last_json(res.stdout), "args": args, "tmp": tmp, "log": res.stdout + res.stderr}


def test_progress_is_the_trainers_json(story):
    o = story["out"]
    assert o["timed"] == ["FINISHED"] and "--progress" in o["timed_command"]
    assert o["timed_command"][o["timed_command"].index("--progress") + 1] == "json"
    running = [snap for snap in o["timed_snaps"] if snap["step"] > 0]
    assert running, o["timed_snaps"][:5]
    fractions = [snap["fraction"] for snap in running]
    assert fractions == sorted(fractions) and fractions[0] > 0 and min(fractions) < 1
    for snap in running:  # a timed run: the step alone (no step total to reach), the time left
        assert snap["total"] is None and f"step {snap['step']}" in snap["status"], snap
        assert "/" not in snap["status"].split("·")[0] and "left" in snap["status"], snap
    # Timed runs validate at every fifth of their time: the IoU shows while training goes on.
    assert any(
        snap["iou"] is not None and "IoU" in snap["status"] for snap in running if snap["fraction"] < 1
    )
    st = o["timed_state"]
    assert st["error"] == "" and st["status"].startswith(f"Trained ({o['timed_end']['step']} steps, IoU ")
    assert o["timed_end"]["end"] == "done"


def test_runs_go_where_uninstalling_does_not_delete_them(story):
    o, tmp = story["out"], story["tmp"]
    root = Path(o["runs_root"])
    assert root == tmp / "blender-home" / "blender" / "datafiles" / "voxlift" / "runs"
    assert Path(o["timed_run"]).parent == root and not Path(o["timed_run"]).is_relative_to(o["ext_user"])
    assert o["uninstall"] == ["FINISHED"]
    assert o["after_uninstall"]["ext_user"] is False  # what Blender deletes: the extension's user folder
    assert {"best.safetensors", "last.safetensors"} <= set(o["after_uninstall"]["timed_run"])


def test_a_validated_run_becomes_the_model(story):
    o = story["out"]
    assert o["after_timed"] == [o["timed_run"], o["timed_run"]]


def test_a_cancelled_run_that_never_validated_is_not_the_model(story):
    o = story["out"]
    assert o["long"] == ["FINISHED"] and o["long_started"]
    assert "last.safetensors" in o["cancel_files"] and "best.safetensors" not in o["cancel_files"]
    st = o["cancel_state"]
    assert st["status"].startswith("Cancelled at step ") and "not used as the model" in st["status"], st
    assert "Resume" in st["status"]
    assert o["after_cancel"] == [o["timed_run"], o["timed_run"]]  # the model stays the validated one


def test_resume_continues_the_cancelled_run_with_the_same_command(story):
    o = story["out"]
    assert o["resume_poll"] is True and o["resume"] == ["FINISHED"]
    assert o["resume_command"] == o["cancel_command"]
    assert o["resumed"] and o["resumed_at"] >= 1


def test_training_into_an_interrupted_runs_folder_resumes_it(story):
    o = story["out"]
    assert o["train_into"] == ["FINISHED"] and o["train_into_resumed"]
    assert o["train_into_command"] == o["cancel_command"]


def test_a_finished_runs_folder_is_refused_in_clear_words(story):
    o = story["out"]
    err = o["into_finished"]
    assert (
        err.startswith("ERROR") and story["args"]["finished_run"] in err and "holds a finished run" in err
    ), err
    assert "(3 of 3 steps)" in err and "choose another run folder" in err and "--resume" not in err


def test_command_line_in_blender_without_torch_is_one_line(story):
    o = story["out"]
    for name, (rc, err) in o["cli_no_torch"].items():
        lines = err.strip().splitlines()
        assert rc == 1 and len(lines) == 1 and "Traceback" not in err, (name, err)
        assert lines[0].startswith(f"voxlift: error: voxlift {name} needs PyTorch"), lines
        assert "Install PyTorch" in lines[0] and "Python environment" in lines[0]
    assert "Traceback" not in story["log"]


def test_command_line_in_blender_uses_the_preferences_python(story):
    o = story["out"]
    assert o["cli_external"] == 0 and "best.safetensors" in o["cli_run_files"]


def test_every_setting_has_a_tooltip(story):
    assert story["out"]["undescribed"] == {"train": [], "reconstruct": [], "object": [], "preferences": []}


def test_the_wrapper_is_only_a_size_change(tmp_path):
    """The tiny-python wrapper passes everything through (a real Python, real training)."""
    wrapper = tiny_python(tmp_path)
    out = os.popen(f"{wrapper} -c 'import sys, torch; print(sys.executable)'").read().strip()
    assert out == sys.executable
