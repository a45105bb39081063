"""Benchmark: dataset rendering end to end (list, load, voxelise, render, write) against a per-model script.

Prints a markdown section for BENCHMARKS.md (`python build.py bench render`). All figures come from this
one run on this machine, so their ratios are comparable; absolute numbers move with the machine's load.
VOXLIFT_BENCH_QUICK=1 shrinks every part (for trying the script, not for the record).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
SH3F = Path("/usr/share/sweethome3d/furniture")
# BlendSwap-CC-BY is the held-out external test set: never used here.
LIBRARIES = [str(SH3F / f"{n}.sh3f") for n in ("KatorLegaz", "Scopia", "BlendSwap-CC-0")]
QUICK = os.environ.get("VOXLIFT_BENCH_QUICK") == "1"
VIEWS, SIZE = 8, 128
BASELINE_MODELS = 4 if QUICK else 16
MEMORY_MODELS = 60 if QUICK else 1000
LIMIT = 16 if QUICK else None


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def render_cmd(out: Path, workers: int, sources=LIBRARIES, extra=()) -> list[str]:
    cmd = [
        PY,
        "-m",
        "voxlift",
        "render",
        *sources,
        "--categories",
        "chair,table",
        "--out",
        str(out),
        "--views",
        str(VIEWS),
        "--image-size",
        str(SIZE),
        "--workers",
        str(workers),
        "--no-progress",
        *extra,
    ]
    if LIMIT:
        cmd += ["--limit", str(LIMIT)]
    return cmd


def render_call_only() -> float:
    """ms per view of the bare render call (8 views in one call) in a warm process, for reference."""
    code = f"""
import json, time, bpy
from voxlift.render import Renderer, RenderSettings
from voxlift.render_worker import list_records
from voxlift.dataset_tools.camera import fixed_views
recs = list_records({LIBRARIES!r}, ["chair", "table"], 12)
r = Renderer(RenderSettings(views=fixed_views({VIEWS}, size={SIZE}), image_size={SIZE}))
meshes = [x.load() for x in recs]
r.render(meshes[0].vertices, meshes[0].faces)
total = 0.0
for m in meshes:
    obj = r._add_mesh(m.vertices, m.faces)
    t0 = time.perf_counter(); bpy.ops.render.render(animation=True); total += time.perf_counter() - t0
    bpy.data.objects.remove(obj); bpy.data.meshes.remove(bpy.data.meshes["voxlift-model"])
print(json.dumps(1000 * total / (len(meshes) * {VIEWS})))
"""
    out = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def memory_run(tmp: Path) -> tuple[int, int, int]:
    """Peak RSS (kB) of one worker after 10 and after MEMORY_MODELS models, never restarted."""
    from voxlift.render_job import RenderJob, RenderOptions

    job = RenderJob(
        RenderOptions(
            sources=[f"synthetic:{MEMORY_MODELS}"],
            out=str(tmp / "memory"),
            views=VIEWS,
            image_size=SIZE,
            workers=1,
            restart_every=10**9,
            durable=False,
        )
    )
    job.start()
    at10 = None
    while job.poll(0.5):
        if at10 is None and job.done >= 10 and job.workers:
            job.workers[0].sample_memory()
            at10 = job.workers[0].peak_rss_kb
    end = job.peak_rss_kb
    job.close()
    return at10 or 0, end, job.rendered


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="voxlift-bench-render-"))
    try:
        from voxlift.dataset_tools.mesh import Y_UP_FRONT_PLUS_Z, Mesh
        from voxlift.dataset_tools.obj import write_obj
        from voxlift.render_worker import list_records

        records = list_records(LIBRARIES, ["chair", "table"], LIMIT)
        n = len(records)
        # voxlift, 1 and 2 workers, the whole set each (a fresh dataset each time).
        ours = {w: timed(render_cmd(tmp / f"w{w}", w)) for w in (1, 2)}
        # The per-model script on the first models, written as Y-up OBJ files first (not timed).
        objs = tmp / "objs"
        objs.mkdir()
        for k, rec in enumerate(records[:BASELINE_MODELS]):
            m = rec.load()
            write_obj(objs / f"m{k:03d}.obj", Mesh(m.vertices @ Y_UP_FRONT_PLUS_Z, m.faces))
        t0 = time.perf_counter()
        for path in sorted(objs.glob("*.obj")):
            subprocess.run(
                [
                    PY,
                    str(HERE / "render_baseline.py"),
                    str(path),
                    str(tmp / "baseline"),
                    str(VIEWS),
                    str(SIZE),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        base = time.perf_counter() - t0
        call_ms = render_call_only()
        mem10, mem_end, mem_n = memory_run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base_mps = BASELINE_MODELS / base
    rows = [
        ("per-model script (render only, 1 process per model)", BASELINE_MODELS, base, base_mps),
        ("voxlift render, 1 worker", n, ours[1], n / ours[1]),
        ("voxlift render, 2 workers", n, ours[2], n / ours[2]),
    ]
    print("## Dataset rendering (Blender, Workbench)\n")
    print(
        f"Sweet Home 3D chairs and tables (KatorLegaz, Scopia, BlendSwap-CC-0; {n} models), {VIEWS} views "
        f"of {SIZE} px each, 32^3 voxels. voxlift's figures are end to end: listing, mesh loading, "
        f"voxelisation, rendering (Workbench at 2x, box-filtered), writing the dataset. The per-model "
        f"script renders only (its OBJ files are written beforehand, untimed; no voxels, no dataset) with "
        f"the same engine and settings, one `python render_baseline.py model.obj` process per model.\n"
    )
    print("| pipeline | models | seconds | models/s | views/s | vs script |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, count, sec, mps in rows:
        print(f"| {name} | {count} | {sec:.1f} | {mps:.2f} | {mps * VIEWS:.1f} | {mps / base_mps:.1f}x |")
    print(
        f"\nBare render call (all {VIEWS} views in one `render(animation=True)`, warm process): "
        f"{call_ms:.1f} ms a view.\n"
    )
    print(
        f"Memory: peak RSS of one render worker (never restarted) after 10 models: {mem10 / 1024:.0f} MiB; "
        f"after {mem_n} models: {mem_end / 1024:.0f} MiB (synthetic models, {VIEWS} views of {SIZE} px). "
        f"Workers are restarted every 500 models by default anyway (`--restart-every`).\n"
    )
    print("Commands:\n")
    print("```sh")
    srcs = " ".join(LIBRARIES)
    limit = f" --limit {LIMIT}" if LIMIT else ""
    for w in (1, 2):
        print(
            f"voxlift render {srcs} --categories chair,table --out OUT --views {VIEWS} --image-size {SIZE} "
            f"--workers {w}{limit}"
        )
    print(
        f"for f in objs/*.obj; do python tests/benchmarks/render_baseline.py $f out {VIEWS} {SIZE}; done"
        f"   # first {BASELINE_MODELS} models"
    )
    print(
        f'python -c \'RenderJob(RenderOptions(["synthetic:{MEMORY_MODELS}"], workers=1, '
        f"restart_every=10**9))'   # memory, see tests/benchmarks/bench_render.py"
    )
    print("```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
