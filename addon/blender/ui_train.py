"""The Train panel: train a model on a dataset folder in a child process, watch it, cancel it.

Training never runs in Blender's UI thread: `PYTHON -m voxlift train KIND --data ... --out ...` runs as a
child (backend_process.Job), a reader thread parses its progress (step, loss, validation IoU) and a timer
redraws the panel. Cancel sends Ctrl-C (the trainer saves its last checkpoint) and then terminates it.
When the run ends, the checkpoint of a kind that reconstructs becomes the Reconstruct panel's model and the
preferences' last model. The kinds offered are those of backend/registry.py (torch-free).
Headless, `voxlift train ...` and `blender -b -c voxlift train ...` take the same arguments.
"""

from __future__ import annotations

import time
from pathlib import Path

import bpy

from .. import backend_process
from ..backend.registry import KINDS
from ..dataset_tools.errors import VoxliftError
from . import prefs

CATEGORY = "voxlift"
POLL_INTERVAL_S = 1.0  # the panel's timer: progress and the end of the run
MAX_VALIDATIONS = 5  # a step-budgeted run validates about this often...
MAX_VAL_EVERY = 250  # ...but at least every this many steps


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


# The model kinds the panel offers: every kind of the backend's registry, its description as the tooltip.
KIND_ITEMS = [(k.name, k.label, _sentence(k.description)) for k in KINDS.values()]

_state: dict = {"job": None, "out": "", "scene": "", "status": "", "error": "", "kind": ""}


def current_job() -> backend_process.Job | None:
    return _state["job"]


def default_run_folder(kind: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        base = Path(bpy.utils.extension_path_user(prefs.package_name(), path="runs", create=True))
    except (ValueError, AttributeError):
        base = Path(bpy.app.tempdir or "/tmp") / "voxlift-runs"
    return base / f"{kind}-{stamp}"


def train_arguments(s, data: str, out: Path) -> list[str]:
    args = ["train", s.kind, "--data", data, "--out", str(out), "--device", s.device]
    if s.budget == "STEPS":
        val_every = max(1, min(MAX_VAL_EVERY, s.steps // MAX_VALIDATIONS))
        args += ["--steps", str(s.steps), "--val-every", str(val_every)]
    else:
        args += ["--max-minutes", f"{s.minutes:g}"]
    return args


def start_training(context) -> Path:
    """Check the inputs and start the child process; VoxliftError says what is wrong."""
    s = context.scene.voxlift_train
    job = current_job()
    if job is not None and job.poll() is None:
        raise VoxliftError("a training run is going on already: cancel it first")
    if not s.dataset:
        raise VoxliftError("no dataset folder chosen in the Train panel")
    data = bpy.path.abspath(s.dataset).rstrip("/\\") or "/"
    from ..dataset_tools.dataset import open_dataset

    ds = open_dataset(data)  # raises VoxliftError for a folder that is not a dataset
    if len(ds) == 0:
        raise VoxliftError(f"{data}: the dataset holds no models yet")
    backend = prefs.current_backend(context)
    if not backend.external and not backend_process.torch_in_process(prefs.torch_site()):
        raise VoxliftError(
            "PyTorch is not installed: use Install PyTorch in voxlift's preferences, or set a "
            "Python environment that has torch"
        )
    out = Path(bpy.path.abspath(s.out)) if s.out else default_run_folder(s.kind)
    if (out / "last.safetensors").exists():
        raise VoxliftError(f"{out}: holds a finished run already; choose another run folder")
    out.mkdir(parents=True, exist_ok=True)
    job = backend_process.backend_job(backend, train_arguments(s, data, out), log_path=out / "train.log")
    _state.update(job=job, out=str(out), scene=context.scene.name, status="Starting…", error="", kind=s.kind)
    if not bpy.app.background:
        bpy.app.timers.register(poll_job, first_interval=POLL_INTERVAL_S)
    return out


def use_for_reconstruct(run: Path) -> None:
    """The run becomes the Reconstruct panel's model (in the scene it was started from) and the default."""
    scene = bpy.data.scenes.get(_state["scene"])
    if scene is not None:
        scene.voxlift_reconstruct.checkpoint = str(run)
    p = prefs.get_prefs()
    if p is not None:
        p.last_checkpoint = str(run)


def finish(job: backend_process.Job, rc: int) -> None:
    out = Path(_state["out"])
    have = (out / "best.safetensors").exists() or (out / "last.safetensors").exists()
    if rc == 0 or (job.cancelled and have):
        if KINDS[_state["kind"]].reconstructs:  # a pre-training checkpoint cannot reconstruct anything
            use_for_reconstruct(out)
        pr = job.progress
        done = f"{pr.step} steps" + (f", IoU {pr.iou:.3f}" if pr.iou is not None else "")
        _state["status"] = (
            f"Cancelled after {done}; " if job.cancelled else f"Trained ({done}); "
        ) + f"model: {out.name}"
    elif job.cancelled:
        _state["status"] = "Cancelled before the first checkpoint"
    else:
        _state["error"] = f"Training failed: {job.error_line()}"
        _state["status"] = ""


def poll_job():
    """Timer callback (and what tests call in background mode): None when the run is over."""
    job = current_job()
    if job is None:
        return None
    rc = job.poll()
    if rc is None:
        p = job.progress
        parts = [f"step {p.step}" + (f"/{p.total}" if p.total else "")]
        if p.loss is not None:
            parts.append(f"loss {p.loss:.3f}")
        if p.iou is not None:
            parts.append(f"IoU {p.iou:.3f}")
        _state["status"] = " · ".join(parts)
        prefs.redraw()
        return POLL_INTERVAL_S
    _state["job"] = None
    finish(job, rc)
    prefs.redraw()
    return None


class VOXLIFT_OT_train(bpy.types.Operator):
    bl_idname = "voxlift.train"
    bl_label = "Train"
    bl_description = "Train a model on the dataset folder in a separate process"

    def execute(self, context):
        try:
            out = start_training(context)
        except VoxliftError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Training into {out}")
        return {"FINISHED"}


class VOXLIFT_OT_train_cancel(bpy.types.Operator):
    bl_idname = "voxlift.train_cancel"
    bl_label = "Cancel"
    bl_description = "Stop the training run (its last checkpoint is kept)"

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
        description="Where checkpoints go (empty: a new folder in the extension's user directory)",
    )
    kind: bpy.props.EnumProperty(name="Model", items=KIND_ITEMS, default="paired")
    budget: bpy.props.EnumProperty(
        name="Budget", items=[("STEPS", "Steps", ""), ("MINUTES", "Minutes", "")], default="STEPS"
    )
    steps: bpy.props.IntProperty(name="Steps", default=2000, min=1)
    minutes: bpy.props.FloatProperty(name="Minutes", default=10.0, min=0.1)
    device: bpy.props.EnumProperty(name="Device", items=backend_process.DEVICE_ITEMS, default="auto")


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
            p = job.progress
            layout.progress(factor=p.fraction, type="BAR", text=_state["status"] or "Starting…")
            layout.operator(VOXLIFT_OT_train_cancel.bl_idname, icon="CANCEL")
        else:
            layout.operator(VOXLIFT_OT_train.bl_idname, icon="PLAY")
            if _state["error"]:
                layout.label(text=_state["error"][:160], icon="ERROR")
            elif _state["status"]:
                layout.label(text=_state["status"], icon="CHECKMARK")


CLASSES = (VoxliftTrainSettings, VOXLIFT_OT_train, VOXLIFT_OT_train_cancel, VOXLIFT_PT_train)


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
