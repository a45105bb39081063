"""Running the torch backend from Blender: which Python, which import path, and child processes.

Blender's Python has no torch. Either "Install PyTorch" pip-installs it into a folder of the extension's
user directory (`torch_site`), which is then put on sys.path (in-process use) or PYTHONPATH (children), or
the preferences name an existing Python with torch, which runs the backend as a child process.
A child runs `PYTHON -m voxlift COMMAND ...`; inside a Blender binary PYTHONPATH points at the folder that
holds the extension, so that `import voxlift` finds this very package. Plain Python, no bpy: the same code
runs in tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# Where the backend runs, as Blender enum items (identifier, name, description); the identifiers are what
# `--device` takes (backend/device.py DEVICES).
DEVICE_ITEMS = (
    ("auto", "Auto", "CUDA if available, else CPU"),
    ("cpu", "CPU", "The processor (slower, always there)"),
    ("cuda", "CUDA", "An NVIDIA GPU"),
)
DEVICES = tuple(identifier for identifier, _, _ in DEVICE_ITEMS)


@dataclass
class Backend:
    """Where the backend runs: `python` for child processes, `paths` added to their import path."""

    python: str
    paths: list[str] = field(default_factory=list)
    external: bool = False  # a user-chosen environment (never imported into Blender's process)

    def env(self) -> dict:
        env = dict(os.environ)
        paths = list(self.paths)
        # In Blender the package folder is .../extensions/<repo>/voxlift: its parent makes `import voxlift`
        # work in the child. (pip installs have voxlift on the path already.)
        if PACKAGE_DIR.name == "voxlift" and not _importable_as_voxlift():
            paths.append(str(PACKAGE_DIR.parent))
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("PYTHONIOENCODING", "utf-8")
        return env

    def command(self, *args: str) -> list[str]:
        return [self.python, "-m", "voxlift", *map(str, args)]


def _importable_as_voxlift() -> bool:
    return __package__ == "voxlift"


def blender_python() -> str:
    """The interpreter of this process (Blender's bundled Python inside Blender, the venv's with bpy)."""
    return sys.executable


def make_backend(python_path: str = "", torch_site: str | os.PathLike | None = None) -> Backend:
    if python_path:
        if not Path(python_path).is_file():
            from .dataset_tools.errors import VoxliftError

            raise VoxliftError(
                f"{python_path}: no such Python interpreter (voxlift preferences, Python environment)"
            )
        return Backend(python_path, [], external=True)
    paths = [str(torch_site)] if torch_site and Path(torch_site).is_dir() else []
    return Backend(blender_python(), paths)


PROBE = (
    "import json, sys\n"
    "v = sys.version.split()[0]\n"
    "try:\n"
    "    import torch\n"
    "except Exception as exc:\n"
    "    print(json.dumps({'ok': False, 'error': f'{type(exc).__name__}: {exc}', 'python': v}))\n"
    "else:\n"
    "    cuda = torch.cuda.is_available()\n"
    "    print(json.dumps({'ok': True, 'version': torch.__version__, 'cuda': cuda,\n"
    "        'device': torch.cuda.get_device_name(0) if cuda else 'CPU', 'python': v}))\n"
)


def probe_torch(backend: Backend, timeout: float = 60.0) -> dict:
    """{'ok', 'version', 'cuda', 'device', 'python'} or {'ok': False, 'error'}, found in a child process
    (importing torch into Blender just to look would slow the UI and could not be undone)."""
    try:
        proc = subprocess.run(
            [backend.python, "-c", PROBE], env=backend.env(), capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "error": f"could not run {backend.python}: {exc}"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return {"ok": False, "error": (proc.stderr.strip().splitlines() or ["no answer"])[-1]}


def add_to_sys_path(torch_site: str | os.PathLike | None) -> None:
    if torch_site and Path(torch_site).is_dir() and str(torch_site) not in sys.path:
        sys.path.append(str(torch_site))


def torch_in_process(torch_site: str | os.PathLike | None = None) -> bool:
    """Whether torch imports in this process (after adding the extension's torch folder)."""
    add_to_sys_path(torch_site)
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ValueError, ImportError):  # a broken or blocked torch
        return False


# ------------------------------------------------------------------------------------ long child jobs


_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


@dataclass
class Progress:
    step: int = 0
    total: int | None = None
    loss: float | None = None
    iou: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


def parse_progress(text: str, progress: Progress) -> None:
    """Update `progress` from one line or tqdm refresh of a training run (`12/500 [...loss=0.31, val=0.42]`,
    or the JSON lines `{"step":..., "loss":..., "iou":...}` when a trainer prints them)."""
    text = text.strip()
    if not text:
        return
    if text.startswith("{"):
        try:
            d = json.loads(text)
        except ValueError:
            d = None
        if isinstance(d, dict):
            progress.step = int(d.get("step", progress.step))
            progress.total = d.get("total", progress.total)
            progress.loss = d.get("loss", progress.loss)
            progress.iou = d.get("iou", d.get("val_iou", progress.iou))
            return
    # tqdm: "...| 60/500 [00:03<00:20, ...]"; plain logs: "step 60/500".
    m = re.search(r"(\d+)/(\d+|\?)\s*\[", text) or re.search(r"\bstep\s+(\d+)(?:\s*/\s*(\d+))?", text)
    if m:
        progress.step = int(m.group(1))
        if m.group(2) and m.group(2).isdigit():
            progress.total = int(m.group(2))
    m = re.search(r"loss[=: ]+" + _NUM, text)
    if m:
        progress.loss = float(m.group(1))
    m = re.search(r"(?:val|iou|IoU@0\.3)[=: ]+" + _NUM, text)
    if m:
        progress.iou = float(m.group(1))
    progress.message = text[-200:]


def backend_job(backend: Backend, args: list[str], log_path=None) -> Job:
    """`PYTHON -m voxlift ARGS...` as a Job."""
    return Job(backend.command(*args), backend.env(), log_path)


def parse_pip_progress(text: str, progress: Progress) -> None:
    """pip's `--progress-bar raw` lines (`Progress 1234 of 5678`, bytes), else keep the last line."""
    m = re.match(r"\s*Progress (\d+) of (\d+)", text)
    if m:
        progress.step, progress.total = int(m.group(1)), int(m.group(2))
        return
    text = text.strip()
    if text:
        progress.message = text[-200:]


class Job:
    """A command in a child process whose output is read on a thread (never blocks Blender's UI).

    `progress` is updated as lines arrive; `poll()` returns None while running, else the exit code."""

    def __init__(
        self,
        command: list[str],
        env: dict | None = None,
        log_path: str | os.PathLike | None = None,
        parse=None,
    ):
        self.command = [str(c) for c in command]
        self.parse = parse or parse_progress
        self.progress = Progress()
        self.tail: list[str] = []
        self.cancelled = False
        self.started = time.time()
        self._log = open(log_path, "w", encoding="utf-8") if log_path else None  # noqa: SIM115 (closed in _read)
        self.proc = subprocess.Popen(
            self.command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = (
                self.proc.stdout.read1(4096)
                if hasattr(self.proc.stdout, "read1")
                else self.proc.stdout.read(1)
            )
            if not chunk:
                break
            buf += chunk
            # tqdm refreshes with carriage returns: treat \r like a line end.
            *lines, buf = re.split(rb"[\r\n]", buf)
            for raw in lines:
                self._line(raw.decode("utf-8", "replace"))
        if buf:
            self._line(buf.decode("utf-8", "replace"))
        if self._log:
            self._log.close()

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        if self._log:
            self._log.write(line + "\n")
            self._log.flush()
        self.tail = (self.tail + [line])[-30:]
        self.parse(line, self.progress)

    def poll(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None:
            self._reader.join(timeout=2)
        return rc

    def wait(self, timeout: float | None = None) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(timeout=5)
        return rc

    def error_line(self) -> str:
        """The `voxlift: error: ...` line of a failed run, else its last line."""
        for line in reversed(self.tail):
            if "error:" in line:
                return line.split("error:", 1)[1].strip()
        return self.tail[-1].strip() if self.tail else f"exit status {self.proc.returncode}"

    def cancel(self, grace: float = 10.0) -> None:
        """Interrupt (the trainer saves its last checkpoint on Ctrl-C), then terminate if it lingers."""
        self.cancelled = True
        if self.proc.poll() is not None:
            return
        try:
            self.proc.send_signal(signal.SIGINT)
        except OSError:
            return

        def reap():
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.terminate()

        threading.Thread(target=reap, daemon=True).start()
