"""A render worker: one Blender process that loads, voxelises and renders the models the parent asks for.

The parent (../render_job.py) starts it with render_protocol.worker_command(); what they say to each other
(job lines, answer frames, the frames folder) is in ../render_protocol.py. Needs bpy (through render.py).
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from ..dataset_tools.camera import View
from ..dataset_tools.errors import VoxliftError
from ..dataset_tools.voxelize import voxelize
from ..render_appearance import model_look
from ..render_protocol import (
    DONE,
    FATAL,
    READY,
    SKIP,
    JobLines,
    encode_result,
    list_records,
    parse_job_line,
    send_frame,
)

QUEUED = 2  # jobs taken ahead: the next model loads in a helper thread while this one renders


def _start(config: dict):
    """(renderer, records) for the config."""
    from .render import Renderer, RenderSettings

    settings = RenderSettings(
        views=[View.from_json(v) for v in config["views"]],
        image_size=config["image_size"],
        supersample=config["supersample"],
        engine=config["engine"],
        cycles_samples=config.get("cycles_samples", 16),
        threads=int(config.get("threads", 0)),
        appearance=config.get("appearance", "plain"),
        per_model_views=bool(config.get("per_model_views", False)),
    )
    records = list_records(config["sources"], config.get("categories"), config.get("limit"))
    return Renderer(settings), records


def main(config: dict) -> int:
    fd = int(config["result_fd"])
    try:
        renderer, records = _start(config)
    except Exception as exc:  # noqa: BLE001  the parent shows this and stops: every model would fail the same way
        send_frame(fd, {"type": FATAL, "reason": f"{type(exc).__name__}: {exc}"})
        return 1
    resolution = int(config["resolution"])
    with_materials = renderer.settings.appearance != "plain"

    def prepare(pos: int, model_id: str):
        """Load and voxelise (numpy) in a helper thread while the main thread renders the previous model:
        Blender releases the GIL while it renders, so on a 2-core machine one worker does both at once."""
        if not 0 <= pos < len(records) or records[pos].id != model_id:
            raise VoxliftError(f"model {model_id!r}: the source listing changed under the render")
        mesh = records[pos].load()
        mesh.check(model_id)
        materials = mesh.load_materials() if with_materials else None
        return mesh, materials, voxelize(mesh.vertices, mesh.faces, resolution)

    send_frame(fd, {"type": READY, "pid": os.getpid()})
    try:
        with ThreadPoolExecutor(1) as pool:
            _serve(fd, renderer, pool, prepare)
        return 0
    except BrokenPipeError:  # the parent is gone (killed or cancelled): nothing left to do
        return 0
    finally:
        renderer.close()


def _serve(fd: int, renderer, pool, prepare) -> None:
    """Answer jobs until stdin closes."""
    # Fault injection for the tests: "ID:MARKER" makes rendering model ID fail once (while MARKER does not
    # exist) as a lost frame file in /dev/shm once did (RELIABILITY.md, J).
    fault_id, _, fault_marker = os.environ.get("VOXLIFT_RENDER_FAULT", "").rpartition(":")
    lines = JobLines(sys.stdin.fileno())
    pending: deque = deque()
    while True:
        while len(pending) < QUEUED:  # take the next job if it is there; wait only when idle
            line = lines.get(block=not pending)
            if line is None:
                break
            job = parse_job_line(line)
            pending.append((job, time.perf_counter(), pool.submit(prepare, job.pos, job.id)))
        if not pending:
            return
        job, t0, future = pending.popleft()
        answer = {"pos": job.pos, "id": job.id}
        try:
            mesh, materials, voxels = future.result()
        except Exception as exc:  # noqa: BLE001  one bad model is skipped, the run goes on
            send_frame(fd, {"type": SKIP, **answer, "reason": _reason(exc)})
            continue
        try:
            if job.id == fault_id and fault_marker and not os.path.exists(fault_marker):
                open(fault_marker, "w").close()
                raise FileNotFoundError(f"{renderer.tmp}/v_0001.tga (injected)")
            look = _look(renderer, job.id, materials, len(mesh.faces))
            gray, alpha = renderer.render(mesh.vertices, mesh.faces, look, materials, job.views)
        except Exception as exc:  # noqa: BLE001
            # The model loaded and voxelised, so a failure here is the renderer's or the file system's (an
            # OSError: a frame file gone): the parent tries it once more, elsewhere.
            send_frame(
                fd, {"type": SKIP, **answer, "reason": _reason(exc), "transient": isinstance(exc, OSError)}
            )
            continue
        seconds = time.perf_counter() - t0
        send_frame(fd, {"type": DONE, **answer, "seconds": seconds}, encode_result(gray, alpha, voxels))


def _look(renderer, model_id: str, materials, faces: int):
    """The model's random look (None for plain), from its id and its materials' colours."""
    if renderer.settings.appearance == "plain":
        return None
    colors = [m.color for m in materials.materials] if materials is not None else None
    textured = materials is not None and materials.uv is not None and bool(materials.textures)
    return model_look(model_id, len(renderer.settings.views), colors, textured, faces)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, VoxliftError) else f"{type(exc).__name__}: {text}"
