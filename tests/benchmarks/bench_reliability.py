"""Long runs: does a render worker's memory stay flat over thousands of models?

    .venv/bin/python tests/benchmarks/bench_reliability.py [--models 5000] [--workers 1] [--restart-every 1000000]

Renders `--models` procedural models in one run through RenderJob (what `voxlift render` and the Dataset
panel drive) and samples every worker's resident memory (VmRSS from /proc) each time a model comes back.
By default one worker renders them all and is never restarted, so a leak in Blender or in voxlift's worker
shows up undamped by `--restart-every` (voxlift restarts workers every 500 models by default as a safety
net). Prints a markdown section: worker and parent RSS at 100, 1000, 2500 and 5000 models.
Small renders (2 views of 32 px) keep 5,000 models to a few minutes on 2 cores; what leaks per model (meshes,
images, Python objects) does not depend on the image size.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

from voxlift.render_job import RenderJob, RenderOptions


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=int, default=5000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--restart-every", type=int, default=1_000_000)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--image-size", type=int, default=32)
    args = p.parse_args(argv)
    marks = [m for m in (100, 1000, 2500, 5000, args.models) if m <= args.models]
    marks = sorted(set(marks))
    rows = {}
    worker_peak: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="voxlift-bench-rel-") as tmp:
        opts = RenderOptions(
            sources=[f"synthetic:{args.models}"],
            out=os.path.join(tmp, "ds"),
            views=args.views,
            image_size=args.image_size,
            workers=args.workers,
            restart_every=args.restart_every,
            durable=False,
        )
        job = RenderJob(opts)
        t0 = time.monotonic()
        job.start()
        pending = list(marks)
        latest: dict[int, int] = {}  # pid -> its last RSS sample (a worker that just exited keeps its last)

        def record_marks():
            while pending and job.done >= pending[0]:
                live = [latest[w.proc.pid] for w in job.workers if latest.get(w.proc.pid)]
                rows[pending.pop(0)] = (
                    max(live or list(latest.values()) or [0]),
                    rss_kb(os.getpid()),
                    time.monotonic() - t0,
                    len(worker_peak),
                )

        while job.poll(0.2):
            for w in job.workers:
                r = rss_kb(w.proc.pid)
                if r:
                    latest[w.proc.pid] = r
                    worker_peak[w.proc.pid] = max(worker_peak.get(w.proc.pid, 0), r)
            record_marks()
        record_marks()
        while pending:
            rows[pending.pop(0)] = (0, rss_kb(os.getpid()), time.monotonic() - t0, len(worker_peak))
        job.close()
        done, skipped, elapsed = job.done, job.skipped, time.monotonic() - t0
    cmd = (
        f".venv/bin/python tests/benchmarks/bench_reliability.py --models {args.models} --workers {args.workers} "
        f"--restart-every {args.restart_every} --views {args.views} --image-size {args.image_size}"
    )
    print("## Reliability: memory over a long render\n")
    print(
        f"{done} synthetic models ({skipped} skipped) rendered in one run, {args.views} views of "
        f"{args.image_size} px, {args.workers} worker(s), worker restarted every {args.restart_every} models; "
        f"{elapsed:.0f} s in all, {os.cpu_count()} CPU cores shared with other jobs.\n"
    )
    print("| models done | largest worker RSS (MB) | parent RSS (MB) | seconds | worker processes so far |")
    print("|---:|---:|---:|---:|---:|")
    for m in marks:
        w, parent, t, n = rows[m]
        print(f"| {m} | {w / 1024:.0f} | {parent / 1024:.0f} | {t:.0f} | {n} |")
    first, last = rows[marks[0]][0], rows[marks[-1]][0]
    if first and last:
        print(
            f"\nWorker RSS at {marks[-1]} models / at {marks[0]} models: {last / first:.2f}; peak worker RSS "
            f"{max(worker_peak.values()) / 1024:.0f} MB; parent peak RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB."
        )
    print(f"\nCommand: `{cmd}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
