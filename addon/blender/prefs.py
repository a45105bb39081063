"""The add-on's preferences: is PyTorch there, Install PyTorch, or a Python environment to run the backend in;
where trained runs go.

Torch is looked for in a child process of the Python that would run the backend (importing it into
Blender just to look would be slow and could not be undone). "Install PyTorch" pip-installs torch (CPU or
CUDA build) and the backend's packages, pinned (torch_install.py), into a folder of the extension's user
directory; it needs Blender's online access to be on. That folder goes when the extension is uninstalled,
which is right for packages but not for trained models: Blender's uninstall removes the extension's user
directory (extensions/.user/REPO/voxlift), so runs go to Blender's user data files
(`datafiles/voxlift/runs`), or to the Runs folder set here, both kept.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import bpy

from .. import backend_process, torch_install
from ..dataset_tools.errors import VoxliftError
from . import ADDON_PACKAGE

RUNS_SUBFOLDER = "voxlift/runs"  # in Blender's user data files: kept when the extension is uninstalled

_status: dict = {}  # probe result of the backend last checked, with "key" = (python, paths)
_install: dict = {"job": None, "error": "", "done": False}


def package_name() -> str:
    return ADDON_PACKAGE


def get_prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(package_name())
    return addon.preferences if addon else None


def torch_site(create: bool = True) -> str | None:
    """The folder "Install PyTorch" installs into (inside the extension's user directory)."""
    try:
        return bpy.utils.extension_path_user(package_name(), path="site-packages", create=create)
    except (ValueError, AttributeError):  # not running as an extension
        return None


def runs_root(context=None) -> Path:
    """Where the Train panel puts new runs: the preferences' Runs folder, else Blender's user data files."""
    prefs = get_prefs(context)
    if prefs is not None and prefs.runs_folder:
        return Path(bpy.path.abspath(prefs.runs_folder))
    return Path(bpy.utils.user_resource("DATAFILES", path=RUNS_SUBFOLDER, create=True))


def current_backend(context=None) -> backend_process.Backend:
    prefs = get_prefs(context)
    python = bpy.path.abspath(prefs.python_path) if prefs and prefs.python_path else ""
    site = torch_site()
    backend = backend_process.make_backend(python, site)
    if not backend.external:
        backend_process.add_to_sys_path(site)
    return backend


def redraw() -> None:
    """Redraw every area (a child process's progress changed)."""
    for win in getattr(bpy.context.window_manager, "windows", []):
        for area in win.screen.areas:
            area.tag_redraw()


def check_torch(wait: bool = False) -> dict:
    """Probe the current backend in a thread (or now, with wait=True); the result lands in _status."""
    try:
        backend = current_backend()
    except VoxliftError as exc:
        _status.clear()
        _status.update(ok=False, error=str(exc), key=None)
        return dict(_status)
    key = (backend.python, tuple(backend.paths))

    def work():
        result = backend_process.probe_torch(backend)
        _status.clear()
        _status.update(result, key=key, python_path=backend.python)

    _status.clear()
    _status.update(checking=True, key=key)
    if wait:
        work()
    else:
        threading.Thread(target=work, daemon=True).start()
    return dict(_status)


def torch_status_line() -> tuple[str, str]:
    """(text, icon) describing whether torch is found."""
    if not _status:
        return "PyTorch: not checked yet", "QUESTION"
    if _status.get("checking"):
        return "PyTorch: checking…", "TIME"
    if _status.get("ok"):
        where = "CUDA, " + _status.get("device", "") if _status.get("cuda") else "CPU only"
        return f"PyTorch {_status.get('version')} ({where})", "CHECKMARK"
    return f"PyTorch not found: {_status.get('error', '')}", "ERROR"


class VOXLIFT_OT_check_torch(bpy.types.Operator):
    bl_idname = "voxlift.check_torch"
    bl_label = "Check PyTorch"
    bl_description = "Look for PyTorch in the Python that runs the backend"

    wait: bpy.props.BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})

    def execute(self, context):
        status = check_torch(wait=self.wait)
        if self.wait:
            text, _ = torch_status_line()
            self.report({"INFO"} if status.get("ok") or _status.get("ok") else {"WARNING"}, text)
        else:
            bpy.app.timers.register(_poll_check, first_interval=0.5)
        return {"FINISHED"}


def _poll_check():
    redraw()
    return 0.5 if _status.get("checking") else None


def pip_command(variant: str, target: str) -> list[str]:
    """The pinned pip command (torch_install.py), its constraints file written beside `target`."""
    constraints = torch_install.write_constraints(Path(target).parent)
    return torch_install.pip_command(variant, target, constraints, sys.executable, _pip_has_raw_progress())


def _pip_has_raw_progress() -> bool:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return torch_install.pip_has_raw_progress(out)


class VOXLIFT_OT_install_torch(bpy.types.Operator):
    bl_idname = "voxlift.install_torch"
    bl_label = "Install PyTorch"
    bl_description = (
        "Download PyTorch with pip into the extension's user folder (about 200 MB for the CPU "
        "build, 2-3 GB for CUDA)"
    )

    def execute(self, context):
        if not bpy.app.online_access:
            self.report(
                {"ERROR"},
                "Blender's online access is off (Preferences > System > Network > Allow "
                "Online Access): turn it on to install PyTorch, or set a Python "
                "environment that has torch",
            )
            return {"CANCELLED"}
        job = _install.get("job")
        if job is not None and job.poll() is None:
            self.report({"WARNING"}, "PyTorch is being installed already")
            return {"CANCELLED"}
        target = torch_site(create=True)
        if target is None:
            self.report({"ERROR"}, "voxlift is not installed as an extension: no user folder to install into")
            return {"CANCELLED"}
        prefs = get_prefs(context)
        if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
            subprocess.run([sys.executable, "-m", "ensurepip"], capture_output=True)
        cmd = pip_command(prefs.install_variant if prefs else "CPU", target)
        try:
            job = backend_process.Job(cmd, None, parse=backend_process.parse_pip_progress)
        except OSError as exc:
            self.report({"ERROR"}, f"could not start pip: {exc}")
            return {"CANCELLED"}
        _install.update(job=job, error="", done=False)
        bpy.app.timers.register(_poll_install, first_interval=0.5)
        self.report({"INFO"}, "Installing PyTorch…")
        return {"FINISHED"}


def _poll_install():
    job = _install.get("job")
    redraw()
    if job is None:
        return None
    rc = job.poll()
    if rc is None:
        return 0.5
    _install["job"] = None
    if rc == 0:
        _install["done"] = True
        torch_install.remove_shared(torch_site())  # Blender's own numpy is the one used
        backend_process.add_to_sys_path(torch_site())
        check_torch()
    else:
        _install["error"] = f"pip failed (exit {rc}): {job.error_line()}"
    return None


class VoxliftPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    python_path: bpy.props.StringProperty(
        name="Python environment",
        subtype="FILE_PATH",
        description="A Python interpreter that has torch (e.g. /path/to/venv/bin/python): the backend "
        "runs in it as a child process. Empty: Blender's own Python with the PyTorch installed below",
    )
    install_variant: bpy.props.EnumProperty(
        name="Build",
        description="Which PyTorch Install PyTorch downloads",
        items=[
            ("CPU", "CPU", "CPU only (smaller download)"),
            ("CUDA", "CUDA", "NVIDIA GPUs (CUDA 12.6 build, large download)"),
        ],
        default="CPU",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        description="Where Reconstruct runs the model",
        items=backend_process.DEVICE_ITEMS,
        default="auto",
    )
    runs_folder: bpy.props.StringProperty(
        name="Runs folder",
        subtype="DIR_PATH",
        description="Where the Train panel puts new runs (empty: Blender's user data files, "
        "datafiles/voxlift/runs); runs stay when the extension is uninstalled",
    )
    last_checkpoint: bpy.props.StringProperty(
        name="Last trained model",
        subtype="FILE_PATH",
        description="Reconstruct uses this model when its panel names none",
    )

    def draw(self, context):
        layout = self.layout
        box = layout.box()
        text, icon = torch_status_line()
        row = box.row()
        row.label(text=text, icon=icon)
        row.operator(VOXLIFT_OT_check_torch.bl_idname, text="", icon="FILE_REFRESH")
        if not _status:
            check_torch()
        box.prop(self, "python_path")
        row = box.row(align=True)
        row.prop(self, "install_variant", expand=True)
        job = _install.get("job")
        if job is not None and job.poll() is None:
            p = job.progress
            label = (
                f"Downloading {p.step / 1e6:.0f} of {p.total / 1e6:.0f} MB"
                if p.total
                else (p.message or "Installing…")
            )
            box.progress(factor=p.fraction, type="BAR", text=label[:80])
        else:
            sub = box.row()
            sub.enabled = not self.python_path
            sub.operator(VOXLIFT_OT_install_torch.bl_idname, icon="IMPORT")
            if not bpy.app.online_access:
                box.label(
                    text="Online access is off in Blender's preferences: installing is disabled", icon="INFO"
                )
        if _install.get("error"):
            box.label(text=_install["error"][:160], icon="ERROR")
        elif _install.get("done"):
            box.label(text="PyTorch installed", icon="CHECKMARK")
        layout.prop(self, "device")
        layout.prop(self, "runs_folder")
        if not self.runs_folder:
            layout.label(text=f"Runs go to {runs_root()}", icon="INFO")
        layout.prop(self, "last_checkpoint")


CLASSES = (VoxliftPreferences, VOXLIFT_OT_check_torch, VOXLIFT_OT_install_torch)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    # A PyTorch installed by "Install PyTorch" imports everywhere (panels, `blender -c voxlift train`).
    backend_process.add_to_sys_path(torch_site(create=False))


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
