"""The Train panel: train a model on a dataset folder in a child process, watch it, cancel it, resume it.

Training never runs in Blender's UI thread: `PYTHON -m voxlift train KIND --data ... --out ... --progress json`
runs as a child (backend_process.Job); a reader thread reads the trainer's JSON lines (step, budget, time,
losses, last validation: backend/loop.py) and a timer redraws the panel. The panel reads nothing else: the
bar is the share of the budget spent, the text the step, the time left, the loss and the last IoU.

Cancel sends Ctrl-C: the trainer saves last.safetensors, and the run can be resumed (the Resume button, or
Train into its folder: the same command continues it, as on the command line). A finished run's folder is
never trained into again. When a run ends, the checkpoint of a kind that reconstructs becomes the Reconstruct
panel's model and the preferences' last model, but only if it validated at least once: a run cancelled
before its first validation holds noise. The kinds offered are those of backend/registry.py (torch-free).
New runs go to the preferences' runs root (prefs.runs_root: kept when the extension is uninstalled).
Headless, `voxlift train ...` and `blender -b -c voxlift train ...` take the same arguments.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import bpy

from .. import backend_process
from ..backend.registry import KINDS
from ..dataset_tools.errors import VoxliftError
from ..run_folder import RunState, run_state
from . import prefs

CATEGORY = "voxlift"
POLL_INTERVAL_S = 1.0  # the panel's timer: progress and the end of the run
MAX_VALIDATIONS = 5  # a step-budgeted run validates about this often...
MAX_VAL_EVERY = 250  # ...but at least every this many steps (timed runs: every fifth of their time)
SECONDS_PER_MINUTE = 60


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


# The model kinds the panel offers: every kind of the backend's registry, its description as the tooltip.
KIND_ITEMS = [(k.name, k.label, _sentence(k.description)) for k in KINDS.values()]
BUDGET_ITEMS = [
    ("STEPS", "Steps", "Train for a number of steps"),
    ("MINUTES", "Minutes", "Train for a length of time (the schedule follows the share of it spent)"),
]

_state: dict = {"job": None, "out": "", "scene": "", "status": "", "error": "", "kind": "", "resumable": ""}


def current_job() -> backend_process.Job | None:
    return _state["job"]


def default_run_folder(kind: str) -> Path:
    """A new folder for a run, in the runs root (kept when the extension is uninstalled)."""
    return prefs.runs_root() / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_arguments(
    kind: str, data: str, out: Path, device: str, steps: int | None = None, minutes: float | None = None
) -> list[str]:
    """`voxlift train` arguments; progress as JSON lines, what the panel reads."""
    args = ["train", kind, "--data", data, "--out", str(out), "--device", device, "--progress", "json"]
    if steps:
        val_every = max(1, min(MAX_VAL_EVERY, steps // MAX_VALIDATIONS))
        args += ["--steps", str(steps), "--val-every", str(val_every)]
    else:
        args += ["--max-minutes", f"{minutes:g}"]
    return args


def finished_run_error(state: RunState) -> VoxliftError:
    return VoxliftError(
        f"{state.folder}: holds a finished run ({state.budget_text()}); it is never trained into again: "
        "choose another run folder, or leave Run folder empty for a new one"
    )


def _checked_dataset(data: str) -> str:
    from ..dataset_tools.dataset import open_dataset

    ds = open_dataset(data)  # raises VoxliftError for a folder that is not a dataset
    if len(ds) == 0:
        raise VoxliftError(f"{data}: the dataset holds no models yet")
    return data


def resume_arguments(state: RunState, s) -> list[str]:
    """The command that made the run in `state`: its kind, dataset and budget (the panel's device)."""
    if state.kind not in KINDS:
        raise VoxliftError(f"{state.folder}: a run of kind {state.kind!r}, which this voxlift cannot train")
    data = state.data if state.data and os.path.isdir(state.data) else bpy.path.abspath(s.dataset)
    if not data:
        raise VoxliftError(f"{state.folder}: its dataset is gone; choose the dataset folder to resume it")
    return train_arguments(
        state.kind, _checked_dataset(data), state.folder, s.device, state.steps_total, state.minutes
    )


def new_run_arguments(s, out: Path) -> list[str]:
    if not s.dataset:
        raise VoxliftError("no dataset folder chosen in the Train panel")
    data = _checked_dataset(bpy.path.abspath(s.dataset).rstrip("/\\") or "/")
    budget = {"steps": s.steps} if s.budget == "STEPS" else {"minutes": s.minutes}
    return train_arguments(s.kind, data, out, s.device, **budget)


def start_training(context, resume: str | os.PathLike | None = None) -> Path:
    """Start the child process: a new run, or (into an interrupted run's folder, or `resume`) the same
    command again, which continues it. VoxliftError says what is wrong."""
    s = context.scene.voxlift_train
    job = current_job()
    if job is not None and job.poll() is None:
        raise VoxliftError("a training run is going on already: cancel it first")
    backend = prefs.current_backend(context)
    if not backend.external and not backend_process.torch_in_process(prefs.torch_site()):
        raise VoxliftError(backend_process.missing_torch_message("torch", "train"))
    out = Path(resume or (bpy.path.abspath(s.out) if s.out else default_run_folder(s.kind)))
    state = run_state(out)
    if state is not None and state.finished:
        raise finished_run_error(state)
    if state is None and resume is not None:
        raise VoxliftError(f"{out}: no interrupted run to resume here (no last.safetensors)")
    args = resume_arguments(state, s) if state is not None else new_run_arguments(s, out)
    out.mkdir(parents=True, exist_ok=True)
    job = backend_process.backend_job(backend, args, log_path=out / "train.log")
    kind = state.kind if state is not None else s.kind
    status = f"Resuming at step {state.step}…" if state is not None else "Starting…"
    _state.update(job=job, out=str(out), scene=context.scene.name, status=status, error="", kind=kind)
    _state["resumable"] = ""
    if not bpy.app.background:
        bpy.app.timers.register(poll_job, first_interval=POLL_INTERVAL_S)
    return out


def resumable_run(context) -> Path | None:
    """The interrupted run the Resume button continues: the Run folder's, else the run last cancelled."""
    s = context.scene.voxlift_train
    for folder in (bpy.path.abspath(s.out) if s.out else "", _state["resumable"]):
        if folder:
            state = run_state(folder)
            if state is not None and not state.finished:
                return Path(folder)
    return None


def use_for_reconstruct(run: Path) -> None:
    """The run becomes the Reconstruct panel's model (in the scene it was started from) and the default."""
    scene = bpy.data.scenes.get(_state["scene"])
    if scene is not None:
        scene.voxlift_reconstruct.checkpoint = str(run)
    p = prefs.get_prefs()
    if p is not None:
        p.last_checkpoint = str(run)


def _iou_text(iou: float | None) -> str:
    return f", IoU {iou:.3f}" if iou is not None else ""


def finish(job: backend_process.Job, rc: int) -> None:
    """Say how the run ended; a run that validated (and reconstructs) becomes the model."""
    out = Path(_state["out"])
    state = run_state(out)
    pr = job.progress
    if rc == 0:
        steps = state.step if state is not None else pr.step
        model = _adopt(out, state)
        _state["status"] = f"Trained ({steps} steps{_iou_text(pr.iou)}); {model}"
    elif state is not None and (job.cancelled or pr.end == "interrupted"):
        _state["resumable"] = str(out)
        model = _adopt(out, state)
        _state["status"] = f"Cancelled at step {state.step}{_iou_text(pr.iou)}: Resume continues it; {model}"
    elif job.cancelled:
        _state["status"] = "Cancelled before the first checkpoint (nothing to resume)"
    else:
        _state["error"] = f"Training failed: {job.error_line()}"
        _state["status"] = ""


def _adopt(out: Path, state: RunState | None) -> str:
    """Make a validated run of a reconstructing kind the model; the words that say what happened."""
    if not KINDS[_state["kind"]].reconstructs:  # a pre-training checkpoint cannot reconstruct anything
        return f"run: {out.name}"
    if state is None or not state.validated:
        return "not used as the model (it never validated)"
    use_for_reconstruct(out)
    return f"model: {out.name}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), SECONDS_PER_MINUTE)
    return f"{minutes}:{secs:02d}"


def status_line(p: backend_process.Progress) -> str:
    """step 120/2000 · 3:20 left · loss 0.312 · IoU 0.410 (a timed run: step 120 · 2:10 left · ...)."""
    parts = [("resumed, " if p.resumed else "") + f"step {p.step}" + (f"/{p.total}" if p.total else "")]
    left = p.seconds_left
    if left is not None and p.step:
        parts.append(f"{_clock(left)} left")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.3f}")
    if p.iou is not None:
        parts.append(f"IoU {p.iou:.3f}")
    return " · ".join(parts)


def poll_job():
    """Timer callback (and what tests call in background mode): None when the run is over."""
    job = current_job()
    if job is None:
        return None
    rc = job.poll()
    if rc is None:
        if job.progress.step or job.progress.fraction:
            _state["status"] = status_line(job.progress)
        prefs.redraw()
        return POLL_INTERVAL_S
    _state["job"] = None
    finish(job, rc)
    prefs.redraw()
    return None


class VOXLIFT_OT_train(bpy.types.Operator):
    bl_idname = "voxlift.train"
    bl_label = "Train"
    bl_description = (
        "Train a model on the dataset folder in a separate process (into an interrupted run's folder: "
        "continue it)"
    )

    def execute(self, context):
        try:
            out = start_training(context)
        except VoxliftError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Training into {out}")
        return {"FINISHED"}


class VOXLIFT_OT_train_resume(bpy.types.Operator):
    bl_idname = "voxlift.train_resume"
    bl_label = "Resume"
    bl_description = "Continue the cancelled or interrupted run where it stopped (the same command again)"

    @classmethod
    def poll(cls, context):
        job = current_job()
        return (job is None or job.poll() is not None) and resumable_run(context) is not None

    def execute(self, context):
        try:
            out = start_training(context, resume=resumable_run(context))
        except VoxliftError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Resuming {out}")
        return {"FINISHED"}


class VOXLIFT_OT_train_cancel(bpy.types.Operator):
    bl_idname = "voxlift.train_cancel"
    bl_label = "Cancel"
    bl_description = "Stop the training run (its last checkpoint is kept: Resume continues it)"

    @classmethod
    def poll(cls, context):
        job = current_job()
        return job is not None and job.poll() is None

    def execute(self, context):
        current_job().cancel()
        _state["status"] = "Cancelling…"
        return {"FINISHED"}


class VoxliftTrainSettings(bpy.types.PropertyGroup):
    dataset: bpy.props.StringProperty(
        name="Dataset",
        subtype="DIR_PATH",
        description="A voxlift dataset folder (Dataset panel or voxlift render)",
    )
    out: bpy.props.StringProperty(
        name="Run folder",
        subtype="DIR_PATH",
        description="Where checkpoints go (empty: a new folder in the runs folder of voxlift's preferences). "
        "An interrupted run's folder continues that run",
    )
    kind: bpy.props.EnumProperty(
        name="Model", description="The kind of model to train", items=KIND_ITEMS, default="paired"
    )
    budget: bpy.props.EnumProperty(
        name="Budget", description="How long to train", items=BUDGET_ITEMS, default="STEPS"
    )
    steps: bpy.props.IntProperty(
        name="Steps", description="Training steps (one batch each)", default=2000, min=1
    )
    minutes: bpy.props.FloatProperty(
        name="Minutes", description="Training time in minutes", default=10.0, min=0.1
    )
    device: bpy.props.EnumProperty(
        name="Device",
        description="Where the training runs",
        items=backend_process.DEVICE_ITEMS,
        default="auto",
    )


def _draw_idle(layout, context) -> None:
    """Below the settings when nothing runs: Train, Resume, and how the last run ended."""
    s = context.scene.voxlift_train
    row = layout.row(align=True)
    row.operator(VOXLIFT_OT_train.bl_idname, icon="PLAY")
    if resumable_run(context) is not None:
        row.operator(VOXLIFT_OT_train_resume.bl_idname, icon="RECOVER_LAST")
    state = run_state(bpy.path.abspath(s.out)) if s.out else None
    if state is not None and state.finished:
        layout.label(text="This run folder holds a finished run: choose another", icon="INFO")
    if _state["error"]:
        layout.label(text=_state["error"][:160], icon="ERROR")
    elif _state["status"]:
        layout.label(text=_state["status"], icon="CHECKMARK")


class VOXLIFT_PT_train(bpy.types.Panel):
    bl_label = "Train"
    bl_idname = "VOXLIFT_PT_train"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        s = context.scene.voxlift_train
        job = current_job()
        running = job is not None and job.poll() is None
        col = layout.column()
        col.enabled = not running
        col.prop(s, "dataset")
        col.row().prop(s, "kind", expand=True)
        col.row().prop(s, "budget", expand=True)
        col.prop(s, "steps" if s.budget == "STEPS" else "minutes")
        col.prop(s, "device")
        col.prop(s, "out")
        if running:
            layout.progress(factor=job.progress.fraction, type="BAR", text=_state["status"] or "Starting…")
            layout.operator(VOXLIFT_OT_train_cancel.bl_idname, icon="CANCEL")
        else:
            _draw_idle(layout, context)


CLASSES = (
    VoxliftTrainSettings,
    VOXLIFT_OT_train,
    VOXLIFT_OT_train_resume,
    VOXLIFT_OT_train_cancel,
    VOXLIFT_PT_train,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.voxlift_train = bpy.props.PointerProperty(type=VoxliftTrainSettings)


def unregister():
    job = current_job()
    if job is not None and job.poll() is None:
        job.cancel()
    del bpy.types.Scene.voxlift_train
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
