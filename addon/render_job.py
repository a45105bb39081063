"""The parent of a dataset render: lists the models, feeds render workers, and is the one dataset writer.

Used by the CLI (`voxlift render`, a blocking loop around poll()) and by the panel's modal operator (poll(0)
from a timer, so Blender never freezes). No bpy here: workers are child processes (blender/render_worker.py),
spoken to as render_protocol.py says.

Resumable and deterministic: models are appended in source order, whatever worker finishes first (results
wait in a small reorder buffer), so the committed models are always a prefix of the listing, and an
interrupted run that is started again produces byte for byte the dataset an uninterrupted run produces.
Models already in the dataset or already skipped are not rendered again.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .dataset_tools.camera import View, fixed_views
from .dataset_tools.dataset import DatasetWriter
from .dataset_tools.errors import VoxliftError
from .dataset_tools.synthetic import GENERATOR_VERSION
from .render_appearance import (
    APPEARANCES,
    JITTER_DISTANCE,
    JITTER_ELEVATION,
    JITTER_FOV,
    jittered_views,
)
from .render_protocol import (
    DONE,
    FATAL,
    READY,
    RESULT_FD,
    FrameReader,
    Job,
    decode_result,
    frames_dirs,
    job_line,
    list_records,
    remove_stale_frames,
    worker_command,
)


@dataclass
class RenderOptions:
    sources: list[str]
    out: str
    categories: list[str] | None = None
    limit: int | None = None
    views: int = 8
    elevation: float = 20.0
    distance: float = 2.5
    fov: float = 40.0
    image_size: int = 128
    resolution: int = 32
    engine: str = "workbench"
    appearance: str = "plain"  # or "random" (render_appearance.py)
    camera_jitter: bool = False  # each model gets its own elevation, distance, fov per view (cameras.f64)
    supersample: int = 2
    cycles_samples: int = 16
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    shard: tuple[int, int] = (0, 1)
    restart_every: int = 500  # models per worker process: bounds whatever Blender leaks
    model_timeout: float = 600.0  # seconds one model may take before its worker is killed and it is skipped
    durable: bool = True  # fsync each model (survives power loss, not only a killed process)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise VoxliftError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise VoxliftError(f"--shard {text!r}: need 0 <= i < N")
    return i, n


def camera_rows(views: list[View]) -> np.ndarray:
    """float64 [V, 16] rows of cameras.f64: azimuth, elevation, distance, fov, world_to_pixel row-major."""
    return np.array(
        [[v.azimuth, v.elevation, v.distance, v.fov, *np.asarray(v.world_to_pixel).ravel()] for v in views]
    )


class _Worker:
    def __init__(self, cmd: list[str], log_dir: str, number: int, threads: int):
        self.read_fd, write_fd = os.pipe()
        self.log_path = os.path.join(log_dir, f"worker{number}.log")
        cmd = [c.replace(RESULT_FD, str(write_fd)) for c in cmd]
        # Workbench renders through Mesa's llvmpipe here, which starts one thread per core in every process:
        # with several workers that oversubscribes the cores, so each worker gets its share (a user's own
        # LP_NUM_THREADS wins; GPU drivers ignore it).
        env = dict(os.environ)
        env.setdefault("LP_NUM_THREADS", str(threads))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(write_fd,),
                close_fds=True,
                env=env,
            )
        os.close(write_fd)  # the worker holds the only write end: EOF here means it is gone
        os.set_blocking(self.read_fd, False)
        self.reader = FrameReader()
        self.inflight: deque[tuple[int, str]] = deque()
        self.started_at = time.monotonic()
        self.job_started = None  # when the oldest in-flight job started (after ready)
        self.sent = 0
        self.ready = False
        self.closing = False
        self.peak_rss_kb = 0

    def send(self, pos: int, model_id: str, views: list[View] | None = None) -> None:
        self.proc.stdin.write(job_line(Job(pos, model_id, views)))
        self.proc.stdin.flush()
        if not self.inflight:
            self.job_started = time.monotonic()
        self.inflight.append((pos, model_id))
        self.sent += 1

    def finish(self) -> None:
        """No more jobs: the worker exits once its in-flight ones are answered."""
        if not self.closing:
            self.closing = True
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def sample_memory(self) -> None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
        except OSError:
            pass

    def stderr_tail(self, n: int = 6) -> str:
        try:
            with open(self.log_path, "rb") as f:
                lines = [
                    ln
                    for ln in f.read().decode(errors="replace").splitlines()
                    if ln.strip() and "EGL" not in ln
                ]
            return " | ".join(lines[-n:])
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self.read_fd)
        # A worker killed mid-model cannot clean its frames folder (blender/render.Renderer.tmp): do it here.
        for path in frames_dirs(self.proc.pid):
            shutil.rmtree(path, ignore_errors=True)


class RenderJob:
    """start(), then poll() until it returns False; cancel() stops cleanly; close() always."""

    PER_WORKER = 2  # jobs queued per worker: it loads the next model while it renders one
    STARTUP_TIMEOUT = 300  # seconds for a worker to import bpy and set its scene up

    def __init__(self, opts: RenderOptions, log=None):
        self.opts = opts
        self.log = log or (lambda msg: None)
        self.writer: DatasetWriter | None = None
        self.workers: list[_Worker] = []
        self.todo: list[tuple[int, str, str, str]] = []  # (pos, id, category, source)
        self.total = self.done = self.skipped = self.rendered = 0
        self.already = 0
        self.seconds_in_workers = 0.0
        self.peak_rss_kb = 0
        self.cancelled = False
        self.finished = False
        self._retry: deque[tuple[int, str]] = deque()  # jobs of a worker that died, to send again
        self._crashes: dict[int, int] = {}  # position -> how many workers died rendering it
        self._transient: set[int] = set()  # positions already retried after a transient render error

    # -- setup ---------------------------------------------------------------------------------------------
    def start(self) -> RenderJob:
        o = self.opts
        if o.views < 1 or o.image_size < 8 or o.resolution < 4 or o.workers < 1 or o.supersample < 1:
            raise VoxliftError(
                "render: views, workers and supersample must be >= 1, image size >= 8, resolution >= 4"
            )
        if not (-90 < o.elevation < 90 and 0 < o.fov < 180 and o.distance > 0.87):
            raise VoxliftError(
                f"render: need -90 < elevation < 90 (got {o.elevation}), 0 < fov < 180 (got {o.fov}) "
                f"and distance > 0.87 to keep the unit cube in front of the camera (got {o.distance})"
            )
        if o.engine not in ("workbench", "cycles"):
            raise VoxliftError(f"render: unknown engine {o.engine!r} (workbench or cycles)")
        if o.appearance not in APPEARANCES:
            raise VoxliftError(f"render: unknown appearance {o.appearance!r} ({' or '.join(APPEARANCES)})")
        if o.appearance != "plain" and o.engine != "workbench":
            raise VoxliftError(f"render: --appearance {o.appearance} needs --engine workbench")
        for spec in o.sources:
            if ":" not in spec.split(os.sep)[0] and not os.path.exists(spec):
                raise VoxliftError(f"{spec}: no such file or folder")
        self.views = fixed_views(o.views, o.elevation, o.distance, o.fov, o.image_size)
        records = list_records(o.sources, o.categories, o.limit)
        i, n = o.shard
        mine = [(pos, r) for pos, r in enumerate(records) if pos % n == i]
        self.writer = DatasetWriter(
            o.out,
            image_size=o.image_size,
            views_per_model=o.views,
            resolution=o.resolution,
            views=None if o.camera_jitter else self.views,
            extra_manifest={"render": self._render_manifest()},
        )
        self._check_same_look()
        done = self.writer.ids | self.writer.skipped_ids
        self.todo = [(pos, r.id, r.category, r.source) for pos, r in mine if r.id not in done]
        self.already = len(mine) - len(self.todo)
        self.total = len(self.todo)
        self.next_commit = 0  # index into todo of the next model to append
        self.next_send = 0
        self.results: dict[int, tuple] = {}
        remove_stale_frames()
        self.log_dir = tempfile.mkdtemp(prefix=f"voxlift-render-{os.getpid()}-logs")
        self.selector = selectors.DefaultSelector()
        self.config = {
            "sources": list(o.sources),
            "categories": o.categories,
            "limit": o.limit,
            "views": [v.to_json() for v in self.views],
            "image_size": o.image_size,
            "supersample": o.supersample,
            "engine": o.engine,
            "resolution": o.resolution,
            "cycles_samples": o.cycles_samples,
            "appearance": o.appearance,
            "per_model_views": o.camera_jitter,
            "result_fd": RESULT_FD,
        }
        self.started = time.monotonic()
        self._startup_failures = 0
        self._spawned = 0
        for _ in range(min(o.workers, self.total)):
            self._spawn()
        if not self.total:
            self._finish()
        return self

    def _render_manifest(self) -> dict:
        o = self.opts
        d = {"engine": o.engine, "supersample": o.supersample, "background": 255}  # blender/render.BACKGROUND
        if o.engine == "cycles":
            d["cycles_samples"] = o.cycles_samples
        d["appearance"] = o.appearance
        d["synthetic_generator"] = GENERATOR_VERSION
        if o.camera_jitter:
            d["camera_jitter"] = {
                "elevation": JITTER_ELEVATION,
                "distance": JITTER_DISTANCE,
                "fov": JITTER_FOV,
            }
        return d

    def _check_same_look(self) -> None:
        """A dataset keeps one appearance: a render with another one is refused, not mixed in."""
        old = self.writer.manifest.get("render")
        old = old.get("appearance", "plain") if isinstance(old, dict) else "plain"
        if old != self.opts.appearance:
            self.writer.close()
            self.writer = None
            raise VoxliftError(
                f"{self.opts.out}: exists with appearance {old}, not {self.opts.appearance}; "
                "choose another --out"
            )
        made = self.writer.manifest.get("render")
        made = made.get("synthetic_generator", 1) if isinstance(made, dict) else 1
        if made != GENERATOR_VERSION and any(i.startswith("synthetic:") for i in self.writer.ids):
            self.writer.close()
            self.writer = None
            raise VoxliftError(
                f"{self.opts.out}: its synthetic models come from generator version {made}, this voxlift's "
                f"is {GENERATOR_VERSION} (the same ids are other shapes now); choose another --out"
            )

    def views_of(self, model_id: str) -> list[View] | None:
        """The model's own cameras (camera jitter), None when it has the shared views."""
        if not self.opts.camera_jitter:
            return None
        return jittered_views(model_id, self.views, self.opts.image_size)

    def _spawn(self) -> None:
        threads = max(1, (os.cpu_count() or 1) // self.opts.workers)
        w = _Worker(worker_command(dict(self.config, threads=threads)), self.log_dir, self._spawned, threads)
        self._spawned += 1
        self.workers.append(w)
        self.selector.register(w.read_fd, selectors.EVENT_READ, w)

    # -- running -------------------------------------------------------------------------------------------
    def poll(self, timeout: float = 0.5) -> bool:
        """Handle what the workers sent (waiting up to `timeout` s); True while work remains."""
        if self.finished:
            return False
        self._dispatch()
        for key, _ in self.selector.select(timeout):
            w: _Worker = key.data
            gone = False
            while True:
                try:
                    chunk = os.read(w.read_fd, 1 << 20)
                except BlockingIOError:
                    break
                if not chunk:
                    gone = True
                    break
                w.reader.feed(chunk)
            for header, payload in w.reader.frames():  # its last answers first, then what it left unanswered
                self._handle(w, header, payload)
            if gone:
                self._worker_gone(w)
        self._check_timeouts()
        self._commit()
        self._dispatch()
        if self.next_commit >= len(self.todo):
            self._finish()
            return False
        return True

    def _handle(self, w: _Worker, header: dict, payload: bytes) -> None:
        kind = header["type"]
        if kind == READY:
            w.ready = True
            w.job_started = time.monotonic()
            self._startup_failures = 0
            return
        if kind == FATAL:
            self._fatal(f"render worker could not start: {header['reason']}")
        pos, _ = w.inflight.popleft() if w.inflight else (None, None)
        if pos != header.get("pos"):
            self._fatal(f"render worker answered model {header.get('id')!r} out of turn")
        w.job_started = time.monotonic()
        w.sample_memory()
        if kind == DONE:
            o = self.opts
            self.results[pos] = (DONE, decode_result(header, payload, o.views, o.image_size, o.resolution))
            self.seconds_in_workers += header.get("seconds", 0.0)
        elif header.get("transient") and pos not in self._transient:
            # A frame file lost, say: not the model's fault, and a skip is never retried on resume, so
            # the model goes first to the next worker, and this worker is replaced (its state is suspect).
            self._transient.add(pos)
            self._retry.appendleft((pos, header.get("id")))
            self.log(f"retrying {header.get('id')} in a fresh worker: {header.get('reason')}")
            w.finish()
        else:
            self.results[pos] = ("skip", header.get("reason", "unknown error"))
        if w.closing is False and w.sent >= self.opts.restart_every:
            w.finish()

    def _worker_gone(self, w: _Worker) -> None:
        self.selector.unregister(w.read_fd)
        w.kill()
        self.peak_rss_kb = max(self.peak_rss_kb, w.peak_rss_kb)
        self.workers.remove(w)
        if not w.ready:
            self._startup_failures += 1
            if self._startup_failures >= 2:
                self._fatal(f"render workers die on start (exit {w.proc.returncode}): {w.stderr_tail()}")
        jobs = list(w.inflight)
        if jobs and w.ready:
            # It died on its oldest job. Once may be bad luck (killed from outside, out of memory): that model
            # goes first to the next worker. A second crash on the same model skips it; the run goes on.
            pos, _ = jobs[0]
            self._crashes[pos] = self._crashes.get(pos, 0) + 1
            if self._crashes[pos] >= 2:
                self.results[pos] = ("skip", f"Blender crashed twice rendering it (exit {w.proc.returncode})")
                jobs = jobs[1:]
        self._retry.extendleft(reversed([j for j in jobs if j[0] not in self.results]))
        if (self.next_send < len(self.todo) or self._retry) and len(self.workers) < self.opts.workers:
            self._spawn()

    def _requeue(self, jobs) -> None:
        for pos, model_id in jobs:
            if pos not in self.results:
                self._retry.append((pos, model_id))

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for w in list(self.workers):
            if not w.ready and now - w.started_at > self.STARTUP_TIMEOUT:
                self.selector.unregister(w.read_fd)
                w.kill()
                self.workers.remove(w)
                self._fatal(
                    f"a render worker did not start within {self.STARTUP_TIMEOUT} s: {w.stderr_tail()}"
                )
            if w.inflight and w.job_started and now - w.job_started > self.opts.model_timeout:
                pos, _ = w.inflight.popleft()
                self.results[pos] = ("skip", f"timed out after {self.opts.model_timeout:.0f} s")
                self._requeue(w.inflight)
                w.inflight.clear()
                self.selector.unregister(w.read_fd)
                w.kill()
                self.workers.remove(w)
                if self.next_send < len(self.todo) or self._retry:
                    self._spawn()

    def _dispatch(self) -> None:
        for w in self.workers:
            if not w.ready or w.closing:
                continue
            while len(w.inflight) < self.PER_WORKER:
                if self._retry:
                    pos, model_id = self._retry.popleft()
                elif self.next_send < len(self.todo):
                    pos, model_id = self.todo[self.next_send][:2]
                    self.next_send += 1
                else:
                    w.finish()
                    break
                try:
                    w.send(pos, model_id, self.views_of(model_id))
                except (BrokenPipeError, OSError):
                    self._retry.append((pos, model_id))
                    break
                if w.sent >= self.opts.restart_every:
                    w.finish()
                    break

    def _commit(self) -> None:
        while self.next_commit < len(self.todo):
            pos, model_id, category, source = self.todo[self.next_commit]
            if pos not in self.results:
                return
            kind, value = self.results.pop(pos)
            if kind == DONE:
                gray, alpha, voxels = value
                views = self.views_of(model_id)
                self.writer.append(
                    id=model_id,
                    category=category,
                    source=source,
                    images=gray,
                    alpha=alpha,
                    voxels=voxels,
                    cameras=None if views is None else camera_rows(views),
                    durable=self.opts.durable,
                )
                self.rendered += 1
            else:
                self.writer.skip(model_id, source, value)
                self.skipped += 1
                self.log(f"skipped {model_id} ({source}): {value}")
            self.done += 1
            self.next_commit += 1

    # -- progress ------------------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Models per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    # -- ending --------------------------------------------------------------------------------------------
    def _fatal(self, message: str):
        self.close()
        raise VoxliftError(message)

    def _finish(self) -> None:
        self.finished = True
        self.close()

    def cancel(self) -> None:
        """Stop now: workers are killed, committed models stay, the next run resumes after them."""
        self.cancelled = True
        self.finished = True
        self.close()

    def close(self) -> None:
        for w in self.workers:
            w.sample_memory()
            self.peak_rss_kb = max(self.peak_rss_kb, w.peak_rss_kb)
            with contextlib.suppress(OSError):
                w.proc.send_signal(signal.SIGTERM) if w.proc.poll() is None else None
        for w in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=5)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(w.read_fd)
            w.kill()
        self.workers = []
        if getattr(self, "log_dir", None):
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self.log_dir = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def summary(self) -> str:
        views = self.rendered * self.opts.views
        return (
            f"{self.opts.out}: {self.rendered} models rendered, {self.skipped} skipped, "
            f"{self.already} already there; {self.elapsed:.1f} s, {self.rendered / max(self.elapsed, 1e-9):.2f} "
            f"models/s, {views / max(self.elapsed, 1e-9):.1f} views/s"
        )
