"""What the parent of a dataset render (render_job.py) and its workers (blender/render_worker.py) say to each
other, in one bpy-free module both sides import.

* The worker command line: `worker_command(config)` starts Blender (or this Python with bpy) on
  `blender/render_worker.main(config)`; `config` is JSON (sources, views, sizes, appearance, the result pipe).
* Jobs: the parent writes one JSON line per model to the worker's stdin (`job_line`), e.g.
  {"pos": k, "id": ..., "views": [...]}, k the model's position in `list_records(...)` (both sides list the
  sources the same way), and closes stdin when the worker should finish. `views` is there only when the
  model's cameras are its own (camera jitter).
* Answers: the worker writes frames to a pipe (file descriptor `result_fd`), never to stdout, which Blender
  fills with its own messages. A frame is a 4-byte big-endian length, a JSON header, then `header["nbytes"]`
  bytes of payload. Kinds: ready, fatal, skip, done; a done frame's payload is gray, alpha [V, S, S] uint8,
  then the R^3 voxels as packed bits (`encode_result` / `decode_result`).
* Temporary frames: each worker renders into its own folder in /dev/shm named `tmp_prefix(pid)` + random;
  the parent removes the folders of workers that died (`frames_dirs`, `remove_stale_frames`).
Only the parent writes the dataset; a worker holds no lock and writes no file but its temporary frames.
"""

from __future__ import annotations

import glob
import json
import os
import select
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from .dataset_tools.camera import View

READY, FATAL, SKIP, DONE = "ready", "fatal", "skip", "done"
_LENGTH = struct.Struct(">I")
TMP_PREFIX = "voxlift-render-"

# Child bootstrap. The package may be `voxlift` (pip/editable install) or `bl_ext.<repo>.voxlift` (Blender
# extension, whose parent packages exist only inside a running Blender): try the name, else load the folder
# as `voxlift` (imports inside the package are relative, so any name works).
_BOOT = r"""
import importlib, importlib.util, json, sys
argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
name, path, config = argv[0], argv[1], argv[2]
try:
    mod = importlib.import_module(name + ".blender.render_worker")
except ImportError:
    spec = importlib.util.spec_from_file_location("voxlift", path + "/__init__.py",
                                                  submodule_search_locations=[path])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["voxlift"] = pkg
    spec.loader.exec_module(pkg)
    mod = importlib.import_module("voxlift.blender.render_worker")
sys.exit(mod.main(json.loads(config)))
"""
# Placeholder in the config for the worker's end of the result pipe (render_job replaces it in argv).
RESULT_FD = "RESULT_FD"


# ---------------------------------------------------------------------------------------------- starting
def package_name() -> str:
    return __package__


def package_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def worker_command(config: dict) -> list[str]:
    """argv that starts a worker: the Blender binary when we run inside one, else this Python with bpy."""
    args = [package_name(), package_dir(), json.dumps(config)]
    bpy = sys.modules.get("bpy")
    binary = getattr(getattr(bpy, "app", None), "binary_path", "") if bpy else ""
    if binary:
        return [
            binary,
            "-b",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python-expr",
            _BOOT,
            "--",
            *args,
        ]
    return [sys.executable, "-c", _BOOT, *args]


def list_records(sources: list[str], categories: list[str] | None = None, limit: int | None = None) -> list:
    """Every model of the sources, in a fixed order (the parent and all workers must agree on it)."""
    from .dataset_tools.sources import iter_models

    records = []
    for spec in sources:
        left = None if limit is None else limit - len(records)
        if left is not None and left <= 0:
            break
        records.extend(iter_models(spec, categories=categories, limit=left))
    return records


# ------------------------------------------------------------------------------------------- frames folders
def tmp_prefix(pid: int) -> str:
    """Name prefix of worker `pid`'s frames folder (blender/render.Renderer.tmp)."""
    return f"{TMP_PREFIX}{pid}-"


def tmp_root() -> str:
    """Where frames folders go: RAM-backed /dev/shm when there is one."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


def frames_dirs(pid: int | None = None) -> list[str]:
    """Frames folders of worker `pid` (of every worker when None): the parent removes what a killed worker
    left behind."""
    pattern = tmp_prefix(pid) + "*" if pid is not None else TMP_PREFIX + "*-*"  # the parent's logs too
    return [p for root in ("/dev/shm", tempfile.gettempdir()) for p in glob.glob(os.path.join(root, pattern))]


def remove_stale_frames() -> None:
    """Frames folders of workers that no longer run (a whole render killed at once leaves them)."""
    for path in frames_dirs():
        try:
            pid = int(os.path.basename(path).split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


# ---------------------------------------------------------------------------------------------- jobs
@dataclass
class Job:
    pos: int
    id: str
    views: list[View] | None = None  # the model's own cameras (jitter); None: the config's shared views


def job_line(job: Job) -> bytes:
    d = {"pos": job.pos, "id": job.id}
    if job.views is not None:
        d["views"] = [v.to_json() for v in job.views]
    return (json.dumps(d) + "\n").encode()


def parse_job_line(line: str) -> Job:
    d = json.loads(line)
    views = [View.from_json(v) for v in d["views"]] if "views" in d else None
    return Job(int(d["pos"]), d["id"], views)


class JobLines:
    """Job lines from a file descriptor, without blocking when asked not to (select + own buffer: Python's
    buffered stdin would hide lines from select)."""

    def __init__(self, fd: int):
        self.fd, self.buf, self.eof = fd, b"", False

    def get(self, block: bool) -> str | None:
        """A line, None when none is ready (block=False) or at the end."""
        while b"\n" not in self.buf and not self.eof:
            if not block and not select.select([self.fd], [], [], 0)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            self.eof = not chunk
            self.buf += chunk
        if b"\n" not in self.buf:
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


# ---------------------------------------------------------------------------------------------- answers
def encode_frame(header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(dict(header, nbytes=len(payload))).encode()
    return _LENGTH.pack(len(head)) + head + payload


def send_frame(fd: int, header: dict, payload: bytes = b"") -> None:
    view = memoryview(encode_frame(header, payload))
    while view:
        n = os.write(fd, view)
        view = view[n:]


class FrameReader:
    """Collects the bytes read from a worker's pipe and hands out its complete frames."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.buffer.extend(chunk)

    def frames(self):
        """Complete frames received so far: (header, payload)."""
        n = _LENGTH.size
        while len(self.buffer) >= n:
            (hlen,) = _LENGTH.unpack(self.buffer[:n])
            if len(self.buffer) < n + hlen:
                return
            header = json.loads(self.buffer[n : n + hlen])
            end = n + hlen + header["nbytes"]
            if len(self.buffer) < end:
                return
            payload = bytes(self.buffer[n + hlen : end])
            del self.buffer[:end]
            yield header, payload


def encode_result(gray: np.ndarray, alpha: np.ndarray, voxels: np.ndarray) -> bytes:
    """A done frame's payload: gray and alpha uint8 [V, S, S], then the voxels as packed bits."""
    return (
        np.ascontiguousarray(gray, np.uint8).tobytes()
        + np.ascontiguousarray(alpha, np.uint8).tobytes()
        + np.packbits(np.asarray(voxels, bool).ravel()).tobytes()
    )


def decode_result(header: dict, payload: bytes, views: int, size: int, resolution: int):
    """gray, alpha uint8 [V, S, S] and voxels bool [R, R, R] from a done frame."""
    n = views * size * size
    if len(payload) != 2 * n + (resolution**3 + 7) // 8:
        raise ValueError(f"worker sent {len(payload)} bytes for model {header.get('id')!r}")
    gray = np.frombuffer(payload, np.uint8, n).reshape(views, size, size)
    alpha = np.frombuffer(payload, np.uint8, n, offset=n).reshape(views, size, size)
    bits = np.frombuffer(payload, np.uint8, offset=2 * n)
    voxels = np.unpackbits(bits, count=resolution**3).astype(bool).reshape(resolution, resolution, resolution)
    return gray, alpha, voxels
