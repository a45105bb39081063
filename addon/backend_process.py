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


TORCH_PACKAGES = ("torch", "safetensors", "tensorboard", "tqdm", "skimage", "PIL")  # what the backend imports


def missing_torch_message(module: str = "torch", command: str = "") -> str:
    """One line saying what to do when the backend's `module` does not import in this Python."""
    what = f"voxlift {command}" if command else "this"
    inside_blender = "bpy" in sys.modules
    fix = (
        "in Blender: Edit > Preferences > Add-ons > voxlift > Install PyTorch, or set its Python environment "
        "to an interpreter that has torch"
        if inside_blender
        else "pip install torch==2.13.0 safetensors tqdm tensorboard scikit-image pillow (or pip install voxlift)"
    )
    name = "PyTorch" if module == "torch" else module
    return f"{what} needs {name}, which {sys.executable} cannot import: {fix}"


def run_in_backend(backend: Backend, argv: list[str]) -> int:
    """`PYTHON -m voxlift ARGV...` in the backend's Python, its output going where ours goes (the command
    line inside Blender, when the preferences name a Python environment); its exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        return subprocess.run(backend.command(*argv), env=backend.env(), check=False).returncode
    except OSError as exc:
        from .dataset_tools.errors import VoxliftError

        raise VoxliftError(f"{backend.python}: could not run the backend ({exc})") from None


# ------------------------------------------------------------------------------------ long child jobs


@dataclass
class Progress:
    """Where a child job stands. A training fills it from the trainer's `--progress json` lines only
    (backend/loop.py): one JSON object per line, events start, step, val and end."""

    step: int = 0
    total: int | None = None  # steps of a step budget (None for a time budget); pip: bytes to download
    minutes: float | None = None  # a time budget
    elapsed: float = 0.0  # seconds trained (a resumed run counts its earlier time too)
    fraction: float = 0.0  # share of the budget spent, what the progress bar shows
    loss: float | None = None
    val: dict | None = None  # the last validation's scores
    resumed: bool = False  # the trainer continued an interrupted run
    end: str | None = None  # "done" or "interrupted", once the trainer said so
    message: str = ""

    @property
    def iou(self) -> float | None:
        """The last validation's IoU (at 0.3, the threshold the README reports), if the kind has one."""
        if not self.val:
            return None
        value = self.val.get("iou@0.3", self.val.get("iou"))
        return float(value) if isinstance(value, int | float) else None

    @property
    def seconds_left(self) -> float | None:
        """Time to the end of the budget: what is left of a time budget, or a step budget at this pace."""
        if self.minutes:
            return max(0.0, self.minutes * 60 - self.elapsed)
        if self.fraction > 0 and self.elapsed > 0:
            return self.elapsed * (1 - self.fraction) / self.fraction
        return None


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_train_event(text: str, progress: Progress) -> None:
    """Update `progress` from one `--progress json` line of a trainer; anything else (warnings, a tqdm bar,
    an error) is no progress and is left alone (Job keeps it for the error line)."""
    text = text.strip()
    if not text.startswith("{"):
        return
    try:
        event = json.loads(text)
    except ValueError:
        return
    if not isinstance(event, dict) or "event" not in event:
        return
    kind = event["event"]
    step = _number(event.get("step"))
    if step is not None:
        progress.step = int(step)
    progress.total = int(event["steps"]) if _number(event.get("steps")) else None
    progress.minutes = _number(event.get("minutes"))
    progress.elapsed = _number(event.get("elapsed")) or progress.elapsed
    if kind == "start":
        progress.resumed = bool(event.get("resumed"))
        progress.fraction = progress.step / progress.total if progress.total else 0.0
    if _number(event.get("progress")) is not None:
        progress.fraction = min(1.0, max(0.0, float(event["progress"])))
    losses = event.get("losses")
    if isinstance(losses, dict) and _number(losses.get("loss")) is not None:
        progress.loss = float(losses["loss"])
    if isinstance(event.get("val"), dict):
        progress.val = event["val"]
    if kind == "end":
        progress.end = str(event.get("reason"))
        if progress.end == "done":
            progress.fraction = 1.0


def backend_job(backend: Backend, args: list[str], log_path=None) -> Job:
    """`PYTHON -m voxlift ARGS...` as a Job whose progress comes from `--progress json` lines."""
    return Job(backend.command(*args), backend.env(), log_path, parse=parse_train_event)


def parse_pip_progress(text: str, progress: Progress) -> None:
    """pip's `--progress-bar raw` lines (`Progress 1234 of 5678`, bytes), else keep the last line."""
    m = re.match(r"\s*Progress (\d+) of (\d+)", text)
    if m:
        progress.step, progress.total = int(m.group(1)), int(m.group(2))
        progress.fraction = min(1.0, progress.step / progress.total) if progress.total else 0.0
        return
    text = text.strip()
    if text:
        progress.message = text[-200:]


class Job:
    """A command in a child process whose output is read on threads (never blocks Blender's UI).

    `progress` is updated as lines arrive; `poll()` returns None while running, else the exit code. stdout
    and stderr are read apart, each split into lines on its own: a message on stderr never lands inside a
    progress line of stdout."""

    def __init__(
        self,
        command: list[str],
        env: dict | None = None,
        log_path: str | os.PathLike | None = None,
        parse=None,
    ):
        self.command = [str(c) for c in command]
        self.parse = parse or parse_train_event
        self.progress = Progress()
        self.tail: list[str] = []
        self.cancelled = False
        self.started = time.time()
        self._lock = threading.Lock()  # two readers share the tail, the log and the progress
        self._log = open(log_path, "w", encoding="utf-8") if log_path else None  # noqa: SIM115 (closed in wait/poll)
        self.proc = subprocess.Popen(
            self.command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream) -> None:
        buf = b""
        while True:
            chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(1)
            if not chunk:
                break
            buf += chunk
            # progress bars refresh with carriage returns: treat \r like a line end.
            *lines, buf = re.split(rb"[\r\n]", buf)
            for raw in lines:
                self._line(raw.decode("utf-8", "replace"))
        if buf:
            self._line(buf.decode("utf-8", "replace"))

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        with self._lock:
            if self._log:
                self._log.write(line + "\n")
                self._log.flush()
            self.tail = (self.tail + [line])[-30:]
            self.parse(line, self.progress)

    def _join_readers(self, timeout: float) -> None:
        for reader in self._readers:
            reader.join(timeout=timeout)
        with self._lock:
            if self._log and not any(r.is_alive() for r in self._readers):
                self._log.close()
                self._log = None

    def poll(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None:
            self._join_readers(timeout=2)
        return rc

    def wait(self, timeout: float | None = None) -> int:
        rc = self.proc.wait(timeout)
        self._join_readers(timeout=5)
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
