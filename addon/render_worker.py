"""A render worker: one Blender process that loads, voxelises and renders the models the parent asks for.

The parent (render_job.py) starts it with `worker_command()`, writes jobs to its stdin, one JSON line each
({"pos": k, "id": ...}, k the model's position in `list_records(...)`), and closes stdin when the worker
should finish. The worker answers on a pipe (file descriptor `result_fd`), never on stdout, which Blender
fills with its own messages. Each answer is a frame: 4-byte big-endian length, a JSON header, then
`header["nbytes"]` bytes of payload (gray, alpha [V, S, S] uint8, then the R^3 voxels as packed bits).
Only the parent writes the dataset; a worker holds no lock and writes no file but its temporary frames.

This module imports without bpy (the parent uses list_records and worker_command); bpy is imported in main().
"""

from __future__ import annotations

import json
import os
import select
import struct
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .dataset_tools.camera import View
from .dataset_tools.errors import VoxliftError

# Child bootstrap. The package may be `voxlift` (pip/editable install) or `bl_ext.<repo>.voxlift` (Blender
# extension, whose parent packages exist only inside a running Blender): try the name, else load the folder
# as `voxlift` (imports inside the package are relative, so any name works).
_BOOT = r"""
import importlib, importlib.util, json, sys
argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
name, path, config = argv[0], argv[1], argv[2]
try:
    mod = importlib.import_module(name + ".render_worker")
except ImportError:
    spec = importlib.util.spec_from_file_location("voxlift", path + "/__init__.py",
                                                  submodule_search_locations=[path])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["voxlift"] = pkg
    spec.loader.exec_module(pkg)
    mod = importlib.import_module("voxlift.render_worker")
sys.exit(mod.main(json.loads(config)))
"""


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


def tmp_prefix(pid: int) -> str:
    """Name prefix of worker `pid`'s frames folder (render.Renderer.tmp)."""
    return f"voxlift-render-{pid}-"


def frames_dirs(pid: int | None = None) -> list[str]:
    """Frames folders of worker `pid` (of every worker when None): the parent removes what a killed worker
    left behind."""
    import glob
    import tempfile

    pattern = tmp_prefix(pid) + "*" if pid is not None else "voxlift-render-*-*"  # the parent's logs too
    return [p for root in ("/dev/shm", tempfile.gettempdir()) for p in glob.glob(os.path.join(root, pattern))]


def remove_stale_frames() -> None:
    """Frames folders of workers that no longer run (a whole render killed at once leaves them)."""
    import shutil

    for path in frames_dirs():
        try:
            pid = int(os.path.basename(path).split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


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


def _send(fd: int, header: dict, payload: bytes = b"") -> None:
    header = dict(header, nbytes=len(payload))
    head = json.dumps(header).encode()
    data = struct.pack(">I", len(head)) + head + payload
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Lines:
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


def main(config: dict) -> int:
    fd = int(config["result_fd"])
    try:
        from .dataset_tools.voxelize import voxelize
        from .render import Renderer, RenderSettings

        views = [View.from_json(v) for v in config["views"]]
        settings = RenderSettings(
            views=views,
            image_size=config["image_size"],
            supersample=config["supersample"],
            engine=config["engine"],
            cycles_samples=config.get("cycles_samples", 16),
            threads=int(config.get("threads", 0)),
        )
        records = list_records(config["sources"], config.get("categories"), config.get("limit"))
        renderer = Renderer(settings)
    except Exception as exc:  # noqa: BLE001  the parent shows this and stops: every model would fail the same way
        _send(fd, {"type": "fatal", "reason": f"{type(exc).__name__}: {exc}"})
        return 1
    resolution = int(config["resolution"])

    def prepare(pos: int, model_id: str):
        """Load and voxelise (numpy) in a helper thread while the main thread renders the previous model:
        Blender releases the GIL while it renders, so on a 2-core machine one worker does both at once."""
        if not 0 <= pos < len(records) or records[pos].id != model_id:
            raise VoxliftError(f"model {model_id!r}: the source listing changed under the render")
        mesh = records[pos].load()
        mesh.check(model_id)
        return mesh, voxelize(mesh.vertices, mesh.faces, resolution)

    # Fault injection for the tests: "ID:MARKER" makes rendering model ID fail once (while MARKER does not
    # exist) as a lost frame file in /dev/shm once did (RELIABILITY.md, J).
    fault_id, _, fault_marker = os.environ.get("VOXLIFT_RENDER_FAULT", "").rpartition(":")
    _send(fd, {"type": "ready", "pid": os.getpid()})
    lines = _Lines(sys.stdin.fileno())
    pending: deque = deque()
    try:
        with ThreadPoolExecutor(1) as pool:
            while True:
                while len(pending) < 2:  # take the next job if it is there; wait only when idle
                    line = lines.get(block=not pending)
                    if line is None:
                        break
                    job = json.loads(line)
                    pos, model_id = int(job["pos"]), job["id"]
                    pending.append((pos, model_id, time.perf_counter(), pool.submit(prepare, pos, model_id)))
                if not pending:
                    return 0
                pos, model_id, t0, future = pending.popleft()
                try:
                    mesh, voxels = future.result()
                except Exception as exc:  # noqa: BLE001  one bad model is skipped, the run goes on
                    _send(fd, {"type": "skip", "pos": pos, "id": model_id, "reason": _reason(exc)})
                    continue
                try:
                    if model_id == fault_id and fault_marker and not os.path.exists(fault_marker):
                        open(fault_marker, "w").close()
                        raise FileNotFoundError(f"{renderer.tmp}/v_0001.tga (injected)")
                    gray, alpha = renderer.render(mesh.vertices, mesh.faces)
                except Exception as exc:  # noqa: BLE001
                    # The model loaded and voxelised, so a failure here is the renderer's or the file
                    # system's (an OSError: a frame file gone): the parent tries it once more, elsewhere.
                    _send(
                        fd,
                        {
                            "type": "skip",
                            "pos": pos,
                            "id": model_id,
                            "reason": _reason(exc),
                            "transient": isinstance(exc, OSError),
                        },
                    )
                    continue
                payload = (
                    gray.tobytes() + alpha.tobytes() + np.packbits(np.asarray(voxels, bool).ravel()).tobytes()
                )
                _send(
                    fd,
                    {"type": "done", "pos": pos, "id": model_id, "seconds": time.perf_counter() - t0},
                    payload,
                )
    except BrokenPipeError:  # the parent is gone (killed or cancelled): nothing left to do
        return 0
    finally:
        renderer.close()


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, VoxliftError) else f"{type(exc).__name__}: {text}"


def decode_result(header: dict, payload: bytes, views: int, size: int, resolution: int):
    """gray, alpha uint8 [V, S, S] and voxels bool [R, R, R] from a "done" frame."""
    n = views * size * size
    if len(payload) != 2 * n + (resolution**3 + 7) // 8:
        raise ValueError(f"worker sent {len(payload)} bytes for model {header.get('id')!r}")
    gray = np.frombuffer(payload, np.uint8, n).reshape(views, size, size)
    alpha = np.frombuffer(payload, np.uint8, n, offset=n).reshape(views, size, size)
    bits = np.frombuffer(payload, np.uint8, offset=2 * n)
    voxels = np.unpackbits(bits, count=resolution**3).astype(bool).reshape(resolution, resolution, resolution)
    return gray, alpha, voxels
