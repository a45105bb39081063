"""Benchmark: dataset rendering end to end (list, load, voxelise, render, write) against a per-model script.

Prints a markdown section for BENCHMARKS.md (`python build.py bench render`). All figures come from this
one run on this machine, so their ratios are comparable; absolute numbers move with the machine's load.
VOXLIFT_BENCH_QUICK=1 shrinks every part (for trying the script, not for the record).
"""

from __future__ import annotations

import os
import resource
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
# Synthetic models rendered plain and random, alternately: a short run, where each worker's first Workbench
# shader compilations (one per lighting combination it meets) weigh, and a longer one.
APPEARANCE_MODELS = (10,) if QUICK else (40, 200)
APPEARANCE_ROUNDS = 2  # each appearance is timed this many times, alternating; the best time counts


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def render_cmd(out: Path, workers: int, sources=LIBRARIES, extra=(), categories="chair,table") -> list[str]:
    cmd = [
        PY,
        "-m",
        "voxlift",
        "render",
        *sources,
        *(["--categories", categories] if categories else []),
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
from voxlift.blender.render import Renderer, RenderSettings
from voxlift.render_protocol import list_records
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


def timed_cpu(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and every process under it): the CPU time moves much less
    than the wall time when others share the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def appearance_runs(tmp: Path, models: int) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of the same synthetic models rendered plain, random, and random with camera jitter
    (2 workers), alternating so that a change in the machine's load hits every appearance alike; the best
    of each."""
    variants = {
        "plain": [],
        "random": ["--appearance", "random"],
        "random, camera jitter": ["--appearance", "random", "--camera-jitter"],
    }
    best = dict.fromkeys(variants, (float("inf"), float("inf")))
    for k in range(APPEARANCE_ROUNDS):
        for name, extra in variants.items():
            out = tmp / f"appearance-{k}-{len(extra)}"
            wall, cpu = timed_cpu(render_cmd(out, 2, [f"synthetic:{models}"], extra, categories=None))
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
            shutil.rmtree(out, ignore_errors=True)
    return best


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
        from voxlift.render_protocol import list_records

        records = list_records(LIBRARIES, ["chair", "table"], LIMIT)
        n = len(records)
        # voxlift, 1 and 2 workers, the whole set each (a fresh dataset each time); random appearance on 2.
        ours = {w: timed(render_cmd(tmp / f"w{w}", w)) for w in (1, 2)}
        ours_random = timed(render_cmd(tmp / "random", 2, extra=["--appearance", "random"]))  # after ours[2]
        appearance = {n: appearance_runs(tmp, n) for n in APPEARANCE_MODELS}
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
        ("voxlift render, 2 workers, --appearance random", n, ours_random, n / ours_random),
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
        f"\nAppearance: the same procedural models (`synthetic:N`), {VIEWS} views of {SIZE} px, 2 workers, "
        f"end to end; best of {APPEARANCE_ROUNDS} alternating runs each. `--appearance random` sets each "
        f"view's lighting as the animation render reaches it (still one render call per model); a fresh "
        f"worker compiles Workbench's shaders for each lighting combination it meets, once.\n"
    )
    print("| models | appearance | seconds | views/s | vs plain | CPU s | views per CPU s | vs plain |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n, runs in appearance.items():
        wall0, cpu0 = runs["plain"]
        for name, (wall, cpu) in runs.items():
            views = n * VIEWS
            print(
                f"| {n} | {name} | {wall:.1f} | {views / wall:.1f} | {wall0 / wall:.2f}x | {cpu:.1f} | "
                f"{views / cpu:.1f} | {cpu0 / cpu:.2f}x |"
            )
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
    for w, extra in ((1, ""), (2, ""), (2, " --appearance random")):
        print(
            f"voxlift render {srcs} --categories chair,table --out OUT --views {VIEWS} --image-size {SIZE} "
            f"--workers {w}{limit}{extra}"
        )
    for extra in ("", " --appearance random", " --appearance random --camera-jitter"):
        print(
            f"voxlift render synthetic:N --out OUT --views {VIEWS} --image-size {SIZE} --workers 2{extra}"
            f"   # N = {', '.join(map(str, APPEARANCE_MODELS))}"
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
