"""Training throughput on a CUDA GPU, fp32 against bf16 autocast, for the three trainable models.

    python tests/benchmarks/gpu_throughput.py [--out DIR] [--cpu]

Not a `bench_*.py` (CPU machines, which `python build.py bench` runs on, have no GPU): run it by hand on a
machine with one and paste its table into BENCHMARKS.md. It needs `voxlift` importable (pip install -e . or
PYTHONPATH at a copy of the add-on zip's layout) and no Blender: the dataset is the unpaired tests' numpy one
(tests/_cyclegan_util.py: box chairs and tables splatted at 64 px, 32^3 grids, 2 views of one elevation, so
the CycleGAN gets its default projective generators), since throughput does not depend on what is drawn.

A step's time is (wall time of a run of N2 steps - that of N1 steps) / (N2 - N1), each run a fresh
`voxlift train` in this process: start-up, cuDNN's autotuning, the first and the last validation cancel
out. It includes drawing the batches on the CPU, as training does. --cpu adds CPU rows (all cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for _cyclegan_util

from _cyclegan_util import make_dataset

from voxlift.backend.train import main as train_main

N1, N2 = 20, 220

KINDS = {
    # the unpaired benchmark's (b)/(c) setting, and the paired model, at their defaults otherwise
    "cyclegan": ["--gan", "wgan-gp", "--spectral", "critics", "--n-critic", "2"],
    "autoencoder": [],
    "paired": ["--no-augment"],
}


def timed_run(kind: str, data: Path, out: Path, steps: int, device: str, bf16: str, batch: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        kind,
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--device",
        device,
        "--bf16",
        bf16,
        "--batch-size",
        str(batch),
        "--val-every",
        "100000",
        "--val-samples",
        "16",
        "--quiet",
        *KINDS[kind],
    ]
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    if train_main(argv) != 0:
        raise SystemExit(f"{kind} {device} bf16={bf16} failed")
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def step_time(kind, data, work, device, bf16, batch) -> float:
    out = work / f"{kind}-{device}-{bf16}-{batch}"
    t1 = timed_run(kind, data, out, N1, device, bf16, batch)
    t2 = timed_run(kind, data, out, N2, device, bf16, batch)
    return (t2 - t1) / (N2 - N1)


def _draw_ms(data: Path) -> dict[int, float]:
    """CPU time to draw one unpaired batch (images + grids turned to the view), which every CycleGAN step
    does n_critic + 1 times: the floor under its step time on any GPU."""
    from voxlift.backend.unpaired_data import UnpairedSampler, split_domains
    from voxlift.dataset_tools.dataset import open_dataset

    ds = open_dataset(data)
    out = {}
    for batch in (16, 64):
        s = UnpairedSampler(ds, split_domains(ds, "train", "disjoint", 0, None), batch, 0, 64, None)
        s.draw(0)
        t = time.perf_counter()
        for i in range(1, 21):
            s.draw(i)
        out[batch] = (time.perf_counter() - t) / 20 * 1000
    return out


def profile_counts(kind: str, data: Path, work: Path, batch: int) -> dict:
    """Kernels launched and GPU busy time per step (profiles of N1 and N1 + 20 steps, differenced), to tell
    a GPU-bound step from one bound by the CPU launching kernels."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    totals = []
    for steps in (N1, N1 + 20):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            wall = timed_run(kind, data, work / f"profile-{kind}", steps, "cuda", "off", batch)
        ka = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
        totals.append((sum(e.count for e in ka), sum(e.self_device_time_total for e in ka) / 1000, wall))
    (k1, g1, w1), (k2, g2, w2) = totals
    return {
        "kind": kind,
        "batch": batch,
        "kernels_per_step": round((k2 - k1) / 20),
        "gpu_busy_ms_per_step": round((g2 - g1) / 20, 1),
        "profiled_ms_per_step": round((w2 - w1) / 20 * 1000, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="/tmp/voxlift-gpu-throughput")
    p.add_argument("--cpu", action="store_true", help="also time the CPU (fp32) for a ratio")
    p.add_argument("--only", nargs="+", help="only these KIND:BATCH rows (e.g. cyclegan:256)")
    p.add_argument(
        "--profile",
        nargs="*",
        metavar="KIND:BATCH",
        help="count kernels and GPU busy time per step of these (e.g. cyclegan:64)",
    )
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 1
    work = Path(args.out)
    data = work / "data"
    if not (data / "manifest.json").is_file():
        make_dataset(data, n_per_category=40, image_size=64, resolution=32)
    rows = []
    for device in (
        ("cuda", "cpu") if args.cpu else ("cuda",)
    ):  # CUDA's start-up and the first imports: untimed
        timed_run("paired", data, work / "warm-up", 2, device, "off", 16)
    draw_ms = _draw_ms(data)
    plan = [(k, "cuda", b, batch) for k in KINDS for batch in (16, 64, 256) for b in ("off", "on")]
    if args.cpu:
        plan += [(k, "cpu", "off", 16) for k in KINDS]
    if args.only:
        plan = [p for p in plan if f"{p[0]}:{p[3]}" in args.only]
    profiles = [profile_counts(k, data, work, int(b)) for k, b in (x.split(":") for x in args.profile or [])]
    for r in profiles:
        print(json.dumps(r), file=sys.stderr, flush=True)
    for kind, device, bf16, batch in plan:
        s = step_time(kind, data, work, device, bf16, batch)
        row = {
            "kind": kind,
            "device": device,
            "bf16": bf16,
            "batch": batch,
            "step_ms": round(s * 1000, 1),
            "samples_per_s": round(batch / s, 1),
        }
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; CUDA {torch.version.cuda}\n")
    print(
        "Drawing one unpaired batch on the CPU (the CycleGAN draws n_critic + 1 = 3 a step): "
        + ", ".join(f"{v:.1f} ms at batch {b}" for b, v in draw_ms.items())
        + "\n"
    )
    print("| model | device | batch | bf16 | ms / step | samples / s | bf16 speed-up |")
    print("|---|---|---:|---|---:|---:|---:|")
    for r in rows:
        base = next(
            (
                q
                for q in rows
                if q["kind"] == r["kind"]
                and q["device"] == r["device"]
                and q["batch"] == r["batch"]
                and q["bf16"] == "off"
            ),
            None,
        )
        up = f"{base['step_ms'] / r['step_ms']:.2f}x" if base and r["bf16"] == "on" else ""
        print(
            f"| {r['kind']} | {r['device']} | {r['batch']} | {r['bf16']} | {r['step_ms']} | "
            f"{r['samples_per_s']} | {up} |"
        )
    if profiles:
        print("\n| model | batch | kernels / step | GPU busy ms / step | wall ms / step (profiled) |")
        print("|---|---:|---:|---:|---:|")
        for r in profiles:
            print(
                f"| {r['kind']} | {r['batch']} | {r['kernels_per_step']} | {r['gpu_busy_ms_per_step']} | "
                f"{r['profiled_ms_per_step']} |"
            )
    (work / "throughput.json").write_text(json.dumps({"rows": rows, "profiles": profiles}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
