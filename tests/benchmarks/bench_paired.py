"""The paired model: loader and training speed, and reconstruction quality beside the baselines.

    python tests/benchmarks/bench_paired.py [--data DATASET] [--minutes 30] [--chair-minutes M]
                                            [--speed-only | --quality-only] [--synthetic 600]

(`python build.py bench paired` runs it with no arguments; VOXLIFT_BENCH_PAIRED_DATA,
VOXLIFT_BENCH_PAIRED_MINUTES and VOXLIFT_BENCH_PAIRED_CHAIR_MINUTES set the dataset and the budgets there.
With the defaults it takes about 65 minutes: two 30-minute trainings, rendering and evaluation.) Without --data the dataset is rendered
first (voxlift render: the chairs and tables of KatorLegaz, Scopia and BlendSwap-CC-0, never BlendSwap-CC-BY,
plus --synthetic procedural models), into /tmp/voxlift-bench-paired/data (kept and resumed between runs).

speed    loader samples/s alone (no training) against the training step's samples/s, in the same run, on
         the CPU; CPU seconds per sample too (process time: comparable on a shared machine).
quality  `voxlift train paired` for --minutes on the CPU, then `voxlift evaluate` on the test split beside
         `voxlift baseline mean-shape` and `voxlift baseline retrieval`; a second model trained on chairs only
         (--chair-minutes) evaluated on tables; and the ceiling the viewer-centred frame allows (the true grid
         turned into each view's frame and back, scored against itself).
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
import torch

ROOT = Path(__file__).resolve().parents[2]
SH3F = "/usr/share/sweethome3d/furniture"
LIBRARIES = ["KatorLegaz", "Scopia", "BlendSwap-CC-0"]  # BlendSwap-CC-BY is the external test set
WORK = Path("/tmp/voxlift-bench-paired")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def voxlift(*args, capture=True) -> str:
    cmd = [sys.executable, "-m", "voxlift.cli", *map(str, args)]
    log("+ voxlift", " ".join(map(str, args)))
    res = subprocess.run(
        cmd, check=False, cwd=ROOT, stdout=subprocess.PIPE if capture else sys.stderr, text=True
    )
    if res.returncode != 0:
        sys.exit(f"voxlift {' '.join(map(str, args))} failed ({res.returncode})")
    return res.stdout if capture else ""


def render_dataset(out: Path, synthetic: int) -> list[str]:
    args = [
        "render",
        *[f"{SH3F}/{lib}.sh3f" for lib in LIBRARIES],
        f"synthetic:{synthetic}",
        "--categories",
        "chair,table",
        "--out",
        out,
        "--workers",
        "1",
        "--no-progress",
    ]
    voxlift(*args, capture=False)
    return args


# ---------------------------------------------------------------------------------------------- speed


def speed(data: str, batch: int = 16, input_size: int | None = None) -> str:
    """The training defaults on the CPU: batch 16, input min(S, 64) px."""
    from voxlift.backend.data import Augment, AugmentConfig, ViewDataset, make_loader, resize_input
    from voxlift.backend.losses import voxel_loss
    from voxlift.dataset_tools import open_dataset

    ds = open_dataset(data)
    train = ds.indices("train")
    items = ViewDataset(data, train)
    size = input_size or min(ds.image_size, 64)

    def loader_rate(workers: int, batches: int = 60):
        loader = make_loader(items, batch, seed=1, workers=workers)
        it = iter(loader)
        next(it)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(it)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        del it, loader
        return batches * batch / wall, cpu / (batches * batch)

    rate0, cpu0 = loader_rate(0)
    rate1, _ = loader_rate(1)
    # Augmentation runs in the training step (on the GPU when there is one); timed on its own here too.
    aug = Augment(AugmentConfig(background=1.0))
    batch0 = next(iter(make_loader(items, batch, seed=2, workers=0)))
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(10):
        aug(batch0, torch.device("cpu"), step=s, size=size)
    aug_cpu = (time.process_time() - c0) / (10 * batch)

    # the model `voxlift train paired` builds with its defaults, one training step timed
    model, d = default_model(data)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = make_loader(items, batch, seed=3, workers=1)
    it = iter(loader)
    steps, warm = 12, 2
    for s in range(steps + warm):
        if s == warm:
            t0, c0 = time.perf_counter(), time.process_time()
        x, target = aug(next(it), torch.device("cpu"), step=s, size=size)
        loss = voxel_loss(model(resize_input(x, size)), target, "weighted-bce", 3.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_rate = steps * batch / (time.perf_counter() - t0)
    train_cpu = (time.process_time() - c0) / (steps * batch)
    threads = torch.get_num_threads()
    lines = [
        "### Speed (CPU)",
        "",
        (
            f"Dataset `{data}`: {len(train)} training models x {ds.views_per_model} views, "
            f"{ds.image_size} px images (network input {size} px), {ds.resolution}^3 grids; batch {batch}; "
            f"torch {torch.__version__}, {threads} threads. Default model: latent {d.latent_dim}, encoder width "
            f"{d.encoder_width}, decoder width {d.decoder_width}, {d.decoder_head} head, "
            f"{'lifted image features, ' if d.lift else ''}{d.norm} norm; augmentation on (the trainer's default)."
        ),
        "",
        "| what | samples/s (wall) | CPU ms / sample | vs training step |",
        "|---|---:|---:|---:|",
        f"| loader alone, in-process (0 workers) | {rate0:,.0f} | {cpu0 * 1e3:.3f} | {rate0 / train_rate:,.0f}x |",
        f"| loader alone, 1 worker process | {rate1:,.0f} | - | {rate1 / train_rate:,.0f}x |",
        f"| augmentation (in the training step) | - | {aug_cpu * 1e3:.3f} | - |",
        f"| training step (augment + forward + backward + AdamW) | {train_rate:,.1f} | {train_cpu * 1e3:.1f} | 1x |",
        "",
        (
            f"Target: loader >= 10x what the CPU training step consumes: {rate0 / train_rate:,.0f}x in-process, "
            f"{rate1 / train_rate:,.0f}x with one worker; by CPU time the loader costs "
            f"{100 * cpu0 / train_cpu:.2f}% of a training step."
        ),
        "",
        f"Command: `python tests/benchmarks/bench_paired.py --speed-only --data {data}` (function `speed()`).",
    ]
    return "\n".join(lines)


def default_model(data: str):
    """The network `voxlift train paired --data DATA` builds with its defaults, and its config."""
    import argparse as _argparse

    from voxlift.backend import loop
    from voxlift.backend.models.paired import PairedModel, build_network
    from voxlift.dataset_tools import open_dataset

    p = _argparse.ArgumentParser()
    loop.add_run_arguments(p, PairedModel)
    PairedModel.add_arguments(p)
    config = PairedModel.config_from_args(p.parse_args(["--data", data, "--out", "-"]), open_dataset(data))
    return build_network(config), config


def cpu_choices(data: str, batch: int = 16, rounds: int = 3) -> str:
    """What pays on the CPU for the default model's training step: threads, batch size, channels-last images,
    torch.compile. Every variant times the same steps, interleaved round by round (a shared machine's speed
    drifts); the median of the rounds, as samples/s and relative to the default."""
    from voxlift.backend.losses import voxel_loss

    model0, config = default_model(data)
    s, r = config.input_size, config.resolution
    gen = torch.Generator().manual_seed(0)

    def variant(name, b=batch, threads=None, channels_last=False, compile_=False):
        torch.manual_seed(0)
        model = default_model(data)[0]
        if channels_last:
            model.encoder.to(memory_format=torch.channels_last)
        fwd = torch.compile(model) if compile_ else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.rand(b, 1, s, s, generator=gen) * 2 - 1
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        y = (torch.rand(b, r, r, r, generator=gen) < 0.1).float()

        def step():
            before = torch.get_num_threads()
            if threads:
                torch.set_num_threads(threads)
            loss = voxel_loss(fwd(x), y, "weighted-bce", 3.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            torch.set_num_threads(before)

        return name, b, step

    variants = [
        variant("default (eager, all threads)"),
        variant("1 thread", threads=1),
        variant("batch 8", b=8),
        variant("batch 32", b=32),
        variant("channels-last images", channels_last=True),
        variant("torch.compile", compile_=True),
    ]
    compile_s = {}
    for name, _, step in variants:  # warm-up (torch.compile compiles here)
        t = time.perf_counter()
        step()
        step()
        compile_s[name] = time.perf_counter() - t
    rates: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for _ in range(rounds):
        for name, b, step in variants:
            t = time.perf_counter()
            for _ in range(4):
                step()
            rates[name].append(4 * b / (time.perf_counter() - t))
    base = float(np.median(rates[variants[0][0]]))
    lines = [
        "### CPU training speed: what pays",
        "",
        (
            f"The default model's training step (forward, weighted BCE, backward, AdamW; {s} px in, {r}^3 out) on "
            f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads by default; "
            f"{rounds} interleaved rounds of 4 steps, median."
        ),
        "",
        "| variant | samples/s | vs default | first two steps (s) |",
        "|---|---:|---:|---:|",
    ]
    for name, _, _ in variants:
        med = float(np.median(rates[name]))
        lines.append(f"| {name} | {med:.1f} | {med / base:.2f}x | {compile_s[name]:.1f} |")
    del model0
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- quality


def ceiling(data: str) -> dict:
    """IoU@0.5 of the true grids turned into each view's frame and back: what a viewer-centred model can reach."""
    from voxlift.backend.data import to_object_frame_torch, to_viewer_frame
    from voxlift.backend.metrics import iou
    from voxlift.dataset_tools import open_dataset

    ds = open_dataset(data)
    out: dict[str, list] = {}
    for m in ds.indices("test"):
        g = torch.from_numpy(np.asarray(ds.voxels[m], dtype=np.float32))[None]
        az = [v.azimuth for v in ds.views_of(int(m))]
        back = to_object_frame_torch(to_viewer_frame(g.expand(len(az), -1, -1, -1), az), az)
        out.setdefault(ds.models[m].category, []).extend(iou(back, g.expand_as(back), (0.3,))[:, 0])
    return {c: float(np.mean(v)) for c, v in out.items()}


def quality(
    data: str, minutes: float, chair_minutes: float, commands: list[str], train_args: list[str]
) -> str:
    runs = WORK / f"runs-{int(time.time())}"
    full, chairs = runs / "all", runs / "chairs"
    train_cmd = [
        "train",
        "paired",
        "--data",
        data,
        "--out",
        full,
        "--max-minutes",
        minutes,
        *train_args,
        "--quiet",
    ]
    t0 = time.time()
    voxlift(*train_cmd, capture=False)
    train_s = time.time() - t0
    ev_cmd = ["evaluate", "--checkpoint", full, "--data", data, "--split", "test", "--json"]
    model = json.loads(voxlift(*ev_cmd))
    ms_cmd = ["baseline", "mean-shape", "--data", data, "--split", "test", "--json"]
    mean_shape = json.loads(voxlift(*ms_cmd))
    rt_cmd = ["baseline", "retrieval", "--data", data, "--split", "test", "--json"]
    retrieval = json.loads(voxlift(*rt_cmd))
    ch_cmd = [
        "train",
        "paired",
        "--data",
        data,
        "--out",
        chairs,
        "--categories",
        "chair",
        "--max-minutes",
        chair_minutes,
        *train_args,
        "--quiet",
    ]
    voxlift(*ch_cmd, capture=False)
    ch_ev_cmd = ["evaluate", "--checkpoint", chairs, "--data", data, "--split", "test", "--json"]
    chairs_model = json.loads(voxlift(*ch_ev_cmd))
    ceil = ceiling(data)
    from safetensors import safe_open

    with safe_open(str(full / "last.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["voxlift"])
    with safe_open(str(chairs / "last.safetensors"), "pt") as f:
        meta_ch = json.loads(f.metadata()["voxlift"])

    cats = sorted(model["summary"]["categories"])
    rows = [
        (
            "| category | test views | model IoU@0.3 | @0.4 | @0.5 | F@1% | mean shape IoU | F@1% "
            "| retrieval IoU | F@1% | model - retrieval (IoU@0.3) | chairs-only model IoU@0.3 | "
            "viewer-frame ceiling IoU |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in [*cats, "overall"]:

        def get(res, key, c=c):
            row = res["summary"]["overall"] if c == "overall" else res["summary"]["categories"].get(c)
            return row[key] if row else float("nan")

        ch = get(chairs_model, "iou@0.3")
        rows.append(
            f"| {c} | {get(model, 'samples')} | **{get(model, 'iou@0.3'):.3f}** | "
            f"{get(model, 'iou@0.4'):.3f} | {get(model, 'iou@0.5'):.3f} | {get(model, 'fscore@1%'):.3f} | "
            f"{get(mean_shape, 'iou@0.3'):.3f} | {get(mean_shape, 'fscore@1%'):.3f} | "
            f"{get(retrieval, 'iou@0.3'):.3f} | {get(retrieval, 'fscore@1%'):.3f} | "
            f"{get(model, 'iou@0.3') - get(retrieval, 'iou@0.3'):+.3f} | {ch:.3f} | "
            f"{ceil.get(c, np.mean(list(ceil.values()))):.3f} |"
        )
    cfg = meta["config"]
    lines = [
        "### Quality (CPU)",
        "",
        f"Dataset `{data}` (rendered by `{commands[0]}`)" if commands else f"Dataset `{data}`.",
        "",
        (
            f"Model trained {train_s / 60:.1f} min on the CPU ({meta['step']} steps of {cfg['batch_size']}, "
            f"input {cfg['input_size']} px, latent {cfg['latent_dim']}, widths {cfg['encoder_width']}/"
            f"{cfg['decoder_width']}, {'viewer-centred' if cfg['viewer_centred'] else 'object frame'}, "
            f"{cfg['loss']} with positive weight {cfg['pos_weight']:.1f}, decoder head "
            f"{cfg.get('decoder_head', 'deconv')}{', lifted image features' if cfg.get('lift') else ''}, "
            f"augmentation {'on' if cfg['augment'] else 'off'}); the chairs-only model "
            f"{meta_ch['step']} steps. Scores on the test split, every view, in the object frame (Pix2Vox IoU: "
            "per sample, mean per category, overall = mean over all samples; F-score@1% on 8192 marching-cubes "
            "points, prediction thresholded at 0.3). Baselines predict binary grids: their IoU is the same at every "
            "threshold. The ceiling column: IoU of the true grids turned into the views' frames and back "
            "(corners beyond the inscribed cylinder leave the cube at 45 degrees)."
        ),
        "",
        *rows,
        "",
        (
            "Published anchors (3D-R2N2 renderings, single view, 32^3, IoU@0.3): chair 0.466 (3D-R2N2), "
            "0.567 (Pix2Vox-A); table 0.513, 0.601. Target here: chair IoU@0.3 >= 0.60 and >= 0.05 above retrieval."
        ),
        "",
        "Commands:",
        "",
        "```sh",
        *[
            f"voxlift {' '.join(map(str, c))}"
            for c in ([commands] if commands else []) + [train_cmd, ev_cmd, ms_cmd, rt_cmd, ch_cmd, ch_ev_cmd]
        ],
        "```",
    ]
    return "\n".join(lines)


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("VOXLIFT_BENCH_PAIRED_DATA"))
    ap.add_argument(
        "--minutes", type=float, default=float(os.environ.get("VOXLIFT_BENCH_PAIRED_MINUTES", "30"))
    )
    ap.add_argument(
        "--chair-minutes",
        type=float,
        default=_env_float("VOXLIFT_BENCH_PAIRED_CHAIR_MINUTES"),
        help="budget of the chairs-only model (default: --minutes)",
    )
    ap.add_argument(
        "--synthetic", type=int, default=600, help="procedural models rendered beside Sweet Home 3D"
    )
    ap.add_argument(
        "--train-args",
        default="--no-augment",
        help="options of both `voxlift train paired` runs (default --no-augment: the test images are "
        "rendered as the training ones, and augmentation halves the steps a budget buys)",
    )
    part = ap.add_mutually_exclusive_group()
    part.add_argument("--speed-only", action="store_true")
    part.add_argument("--quality-only", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    commands: list = []
    data = args.data
    if data is None:
        data = str(WORK / "data")
        commands = render_dataset(Path(data), args.synthetic)
    from voxlift.dataset_tools import open_dataset

    summary = open_dataset(data).summary()
    sections = ["## Paired model (image -> 32^3 grid)", "", "```", summary, "```", ""]
    if not args.quality_only:
        sections += [speed(data), "", cpu_choices(data), ""]
    if not args.speed_only:
        sections += [
            quality(
                data, args.minutes, args.chair_minutes or args.minutes, commands, shlex.split(args.train_args)
            ),
            "",
        ]
    print("\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
