"""The unpaired CycleGAN beside the paired model and the mean-shape baseline, 3 seeds each, CPU, fixed budget.

    python tests/benchmarks/bench_cyclegan.py [--data DATASET] [--minutes-per-run 10] [--seeds 0 1 2]
                                              [--configs lsgan wgan-sn wgan-sn-ae] [--no-paired]
                                              [--input-size 64] [--ae-share 0.25] [--cyclegan-args "..."]

(`python build.py bench cyclegan` runs it with no arguments; VOXLIFT_BENCH_PAIRED_DATA,
VOXLIFT_BENCH_CYCLEGAN_MINUTES and VOXLIFT_BENCH_CYCLEGAN_JOBS set the dataset, the per-run budget and the runs
at once there.) The dataset is the paired
benchmark's (tests/benchmarks/bench_paired.py: KatorLegaz, Scopia and BlendSwap-CC-0 chairs and tables plus
procedural ones, never BlendSwap-CC-BY), rendered first when missing.

Configurations, each trained for --minutes-per-run on the CPU with seeds --seeds:
    lsgan        CycleGAN, least-squares GAN loss, no spectral norm (the study's first, unstable, set-up)
    wgan-sn      WGAN-GP (lambda 10, n_critic 2, Adam (0, 0.9)) with spectral norm on every critic layer
    wgan-sn-ae   wgan-sn started from cross-autoencoders (trained with their default code alignment); the
                 autoencoders' training time comes out of the same budget (--ae-share of it), so the ablation
                 compares equal compute
Every CycleGAN has the default generators: projective (backend/projective.py) on these fixed-view renderings.
    paired       the paired model (voxlift train paired), same input size and budget
    mean shape   voxlift baseline mean-shape (the per-category mean training grid)
Scores on the test split (every view, object frame): IoU@0.3 / @0.5 from `voxlift evaluate` (the paired
protocol), and MMD / coverage / 1-NNA (distance 1 - IoU, prediction > 0.5) of one prediction per test model
(view i mod V of the i-th model) against the test grids. Mean +- sample standard deviation over seeds.
Prints a markdown section on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WORK = Path("/tmp/voxlift-bench-cyclegan")
CONFIGS = {
    "lsgan": ("(a) CycleGAN, LSGAN", ["--gan", "lsgan", "--spectral", "none"]),
    # n_critic 2, not WGAN-GP's usual 5: at a CPU budget 5 leaves half the generator steps (measured: 147 vs 304
    # steps in 6 min, IoU@0.3 0.15 vs 0.16)
    "wgan-sn": (
        "(b) CycleGAN, WGAN-GP + spectral norm",
        ["--gan", "wgan-gp", "--spectral", "critics", "--n-critic", "2"],
    ),
    "wgan-sn-ae": (
        "(c) (b) + cross-autoencoder pre-training",
        ["--gan", "wgan-gp", "--spectral", "critics", "--n-critic", "2"],
    ),
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


THREADS: dict[str, str] = {}  # OMP_NUM_THREADS for every run, when --jobs shares the cores


def voxlift(*args, capture=True) -> str:
    cmd = [sys.executable, "-m", "voxlift.cli", *map(str, args)]
    log("+ voxlift", " ".join(map(str, args)))
    res = subprocess.run(
        cmd,
        check=False,
        cwd=ROOT,
        stdout=subprocess.PIPE if capture else sys.stderr,
        text=True,
        env={**os.environ, **THREADS},
    )
    if res.returncode != 0:
        raise RuntimeError(f"voxlift {' '.join(map(str, args))} failed ({res.returncode})")
    return res.stdout if capture else ""


def distribution(npz: Path, data: str) -> dict:
    """MMD / coverage / 1-NNA of one object-frame prediction per test model against the test grids."""
    from voxlift.backend.distribution_metrics import prediction_scores
    from voxlift.dataset_tools import open_dataset

    ds = open_dataset(data)
    z = np.load(npz)
    return prediction_scores(z["probs"].astype(np.float32), [np.asarray(ds.voxels[m]) for m in z["indices"]])


def mean_shape_distribution(data: str) -> dict:
    from voxlift.backend.baselines import mean_shapes
    from voxlift.backend.distribution_metrics import distribution_scores
    from voxlift.dataset_tools import open_dataset

    ds = open_dataset(data)
    shapes = mean_shapes(ds, ds.indices("train"))
    test = ds.indices("test")
    pred = np.stack([shapes[ds.models[m].category] for m in test])
    return distribution_scores(pred, np.stack([np.asarray(ds.voxels[m]) for m in test])).to_dict()


def evaluate(run: Path, data: str, commands: list) -> dict:
    cmd = [
        "evaluate",
        "--checkpoint",
        run,
        "--data",
        data,
        "--split",
        "test",
        "--json",
        "--no-fscore",
        "--save-predictions",
        run / "test.npz",
    ]
    commands.append(cmd)
    res = json.loads(voxlift(*cmd))["summary"]["overall"]
    from safetensors import safe_open

    with safe_open(str(run / "last.safetensors"), "pt") as f:
        steps = json.loads(f.metadata()["voxlift"])["step"]
    return {
        "iou@0.3": res["iou@0.3"],
        "iou@0.5": res["iou@0.5"],
        **distribution(run / "test.npz", data),
        "steps": steps,
    }


def train_config(name: str, seed: int, data: str, minutes: float, args, commands: list) -> dict:
    run = WORK / f"{name}-s{seed}-{int(time.time())}"
    size = ["--input-size", args.input_size] if args.input_size else []
    extra = shlex.split(args.cyclegan_args or "")
    gan_minutes = minutes
    cmds = []
    if name == "paired":
        # as in the paired benchmark: test renderings are made like the training ones, and the unpaired
        # models see unaugmented renderings too
        cmds.append(
            [
                "train",
                "paired",
                "--data",
                data,
                "--out",
                run,
                "--max-minutes",
                minutes,
                "--seed",
                seed,
                *size,
                "--no-augment",
                "--quiet",
            ]
        )
    else:
        init = []
        if name == "wgan-sn-ae":
            ae = run.with_name(run.name + "-ae")
            ae_minutes = minutes * args.ae_share
            gan_minutes = minutes - ae_minutes
            cmds.append(
                [
                    "train",
                    "autoencoder",
                    "--data",
                    data,
                    "--out",
                    ae,
                    "--max-minutes",
                    f"{ae_minutes:g}",
                    "--seed",
                    seed,
                    *size,
                    "--quiet",
                ]
            )
            init = ["--init-from", ae]
        # validation (and the best checkpoint, chosen by MMD: no pairs) every 100 steps: a run here makes
        # only a few hundred
        cmds.append(
            [
                "train",
                "cyclegan",
                "--data",
                data,
                "--out",
                run,
                "--max-minutes",
                f"{gan_minutes:g}",
                "--seed",
                seed,
                *CONFIGS[name][1],
                *init,
                *size,
                "--val-every",
                "100",
                *extra,
                "--quiet",
            ]
        )
    t0 = time.time()
    try:
        for c in cmds:
            voxlift(*c, capture=False)
    except RuntimeError as exc:  # a diverged run is a result too: it scores what its best checkpoint holds
        log(f"{name} seed {seed}: {exc}")
        if not (run / "best.safetensors").exists():
            commands.extend(cmds)
            return {"failed": str(exc)}
    commands.extend(cmds)
    out = evaluate(run, data, commands)
    out["minutes"] = (time.time() - t0) / 60
    return out


def fmt(values: list[float], digits: int = 3) -> str:
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("VOXLIFT_BENCH_PAIRED_DATA"))
    ap.add_argument(
        "--minutes-per-run", type=float, default=float(os.environ.get("VOXLIFT_BENCH_CYCLEGAN_MINUTES", "10"))
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--no-paired", action="store_true", help="leave out the paired model's runs")
    ap.add_argument(
        "--input-size", type=int, default=64, help="network input size of every model (0: the dataset's)"
    )
    ap.add_argument(
        "--ae-share", type=float, default=0.25, help="share of (c)'s budget spent on the autoencoders"
    )
    ap.add_argument("--cyclegan-args", help="more options for every `train cyclegan` (quoted)")
    ap.add_argument(
        "--synthetic", type=int, default=600, help="procedural models when the dataset is rendered"
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("VOXLIFT_BENCH_CYCLEGAN_JOBS", "1")),
        help="runs at once, each with cores/jobs threads (every run of one seed shares the machine alike)",
    )
    args = ap.parse_args()
    if args.jobs > 1:
        THREADS["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    WORK.mkdir(parents=True, exist_ok=True)
    render_cmd = []
    data = args.data
    if data is None:
        sys.path.insert(0, str(Path(__file__).parent))
        import bench_paired

        data = str(bench_paired.WORK / "data")
        bench_paired.WORK.mkdir(parents=True, exist_ok=True)
        render_cmd = bench_paired.render_dataset(Path(data), args.synthetic)
    from voxlift.dataset_tools import open_dataset

    summary = open_dataset(data).summary()
    commands: list = []
    names = [*args.configs, *([] if args.no_paired else ["paired"])]
    results: dict[str, list[dict]] = {n: [] for n in names}
    # Seeds outermost: a budget cut short still leaves every configuration compared. Every seed runs the same
    # commands but for --seed and the run folder: the first seed's are listed.
    tasks = [(n, seed) for seed in args.seeds for n in names]
    first: dict[str, list] = {n: [] for n in names}

    def run(task):
        n, seed = task
        r = train_config(n, seed, data, args.minutes_per_run, args, first[n] if seed == args.seeds[0] else [])
        log(n, seed, json.dumps(r))
        return r

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for (n, _), r in zip(tasks, pool.map(run, tasks)):
            results[n].append(r)
    for n in names:
        commands.extend(first[n])
    ms_cmd = ["baseline", "mean-shape", "--data", data, "--split", "test", "--json", "--no-fscore"]
    ms = json.loads(voxlift(*ms_cmd))["summary"]["overall"]
    ms.update(mean_shape_distribution(data))
    commands.append(ms_cmd)

    labels = {**{k: v[0] for k, v in CONFIGS.items()}, "paired": "paired model"}
    rows = [
        (
            "| model | seeds | test IoU@0.3 | IoU@0.5 | MMD (lower better) | coverage | 1-NNA (0.5 best) "
            "| generator steps |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    means = {}
    for n in names:
        ok = [r for r in results[n] if "failed" not in r]
        failed = len(results[n]) - len(ok)
        col = {k: [r[k] for r in ok] for k in ("iou@0.3", "iou@0.5", "mmd", "coverage", "nna", "steps")}
        means[n] = (
            np.mean(col["iou@0.3"]) if ok else float("nan"),
            np.std(col["iou@0.3"], ddof=1) if len(ok) > 1 else 0.0,
        )
        rows.append(
            f"| {labels[n]} | {len(ok)}{f' ({failed} failed)' if failed else ''} | "
            f"**{fmt(col['iou@0.3'])}** | {fmt(col['iou@0.5'])} | {fmt(col['mmd'])} | "
            f"{fmt(col['coverage'])} | {fmt(col['nna'])} | {fmt(col['steps'], 0)} |"
        )
    rows.append(
        f"| mean shape (baseline) | - | **{ms['iou@0.3']:.3f}** | {ms['iou@0.5']:.3f} | {ms['mmd']:.3f} | "
        f"{ms['coverage']:.3f} | {ms['nna']:.3f} | - |"
    )

    verdict = []
    if "wgan-sn-ae" in means:
        c, c_sd = means["wgan-sn-ae"]
        if "paired" in means:
            p = means["paired"][0]
            verdict.append(
                f"- (c) reaches {100 * c / p:.0f}% of the paired model's IoU@0.3 (target >= 60%): "
                f"{'met' if c >= 0.6 * p else 'NOT met'}."
            )
        verdict.append(
            f"- (c) against the mean-shape baseline: {c:.3f} vs {ms['iou@0.3']:.3f}: "
            f"{'beats it' if c > ms['iou@0.3'] else 'does NOT beat it'}."
        )
        if "wgan-sn" in means:
            b, b_sd = means["wgan-sn"]
            d = c - b
            noise = max(c_sd, b_sd)
            plain = (
                "helps"
                if d > noise
                else "hurts"
                if d < -noise
                else "makes no difference beyond the seed spread"
            )
            verdict.append(
                f"- Pre-training {plain}: (c) - (b) = {d:+.3f} IoU@0.3, against a seed spread "
                f"(standard deviation) of {b_sd:.3f} for (b) and {c_sd:.3f} for (c)."
            )
    if "lsgan" in means and "wgan-sn" in means:
        verdict.append(
            f"- WGAN-GP + spectral norm against LSGAN: {means['wgan-sn'][0] - means['lsgan'][0]:+.3f} "
            f"IoU@0.3 (spreads {means['wgan-sn'][1]:.3f} and {means['lsgan'][1]:.3f})."
        )

    lines = [
        "## Unpaired CycleGAN (renderings <-> 32^3 grids of different models)",
        "",
        "```",
        summary,
        "```",
        "",
        (
            f"Every run trained {args.minutes_per_run:g} min on this machine's CPU (wall clock, "
            f"{args.jobs} run(s) at once, {THREADS.get('OMP_NUM_THREADS', 'all')} thread(s) each; (c): "
            f"{100 * args.ae_share:.0f}% autoencoders, then the CycleGAN), input {args.input_size or 'dataset'} px, "
            f"seeds {', '.join(map(str, args.seeds))}. Disjoint pairing: the renderings and the grids come from "
            "two disjoint halves of the training models. Test split, every view; IoU in the object frame "
            "(`voxlift evaluate`); MMD / coverage / 1-NNA: one prediction per test model against the test grids, "
            "distance 1 - IoU. Mean ± sample standard deviation over seeds."
        ),
        "",
        *rows,
        "",
        *verdict,
        "",
        (
            f"Run with `VOXLIFT_BENCH_PAIRED_DATA={data} VOXLIFT_BENCH_CYCLEGAN_MINUTES={args.minutes_per_run:g} "
            f"VOXLIFT_BENCH_CYCLEGAN_JOBS={args.jobs} python build.py bench cyclegan`."
        ),
        "",
        "Commands:",
        "",
        "```sh",
        *([f"voxlift {' '.join(map(str, render_cmd))}"] if render_cmd else []),
        *[f"voxlift {' '.join(map(str, c))}" for c in commands],
        f"# ... and the same for seeds {', '.join(map(str, args.seeds[1:]))} (--seed N, another run folder)"
        if len(args.seeds) > 1
        else "# (one seed)",
        "```",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
