"""The starter model, from scratch: render its data, train it with a fixed seed, ship it, measure it.

    python build.py starter [--steps N] [--synthetic N] [--work DIR] [--skip-figures]

1. data     voxlift render of everything voxlift may train on: the chairs and tables of KatorLegaz, Scopia and
            BlendSwap-CC-0 with two shape variants each (augment:2), and synthetic:N procedural ones, with
            randomised appearance (never BlendSwap-CC-BY, the external test set);
2. train    voxlift train mask --data DATA --out MASK --steps M --seed 0 (the mask model that finds the object
            in pictures without alpha), then voxlift train paired --data DATA --out RUN --steps N --seed 0, the
            defaults otherwise (step budgets, not time budgets, so that the same command gives the same weights);
3. ship     both best checkpoints in half precision to backend/assets/mask.safetensors and starter.safetensors
            (python -m voxlift.backend.export), after checking that half precision loses nothing on the test split;
4. measure  on the data's test split (never trained on): IoU beside retrieval and the mean shape; the test
            views as pictures as users have them (user_pictures.py) through `voxlift reconstruct`; the
            Sweet Home 3D catalog icons of the test split's models; and the demo's own test split;
5. card     backend/assets/starter.md: the command, data, budget, machine and these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_wild import (
    CATEGORIES,
    SH3F,
    baseline,
    evaluate,
    icon_scores,
    log,
    overall,
    robustness,
    voxlift,
)
from user_pictures import PERTURBATIONS

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "backend" / "assets"
LIBRARIES = ("KatorLegaz", "Scopia", "BlendSwap-CC-0")
DEMO_MODELS = 160  # the demo's procedural set (addon/demo.py)


def render_data(work: Path, synthetic: int) -> Path:
    data = work / "data"
    if not (data / ".done").exists():
        sources = [f"augment:2:{SH3F / f'{lib}.sh3f'}" for lib in LIBRARIES] + [f"synthetic:{synthetic}"]
        voxlift(
            "render",
            *sources,
            "--categories",
            CATEGORIES,
            "--appearance",
            "random",
            "--out",
            data,
            "--no-progress",
        )
        (data / ".done").touch()
    return data


def train(kind: str, data: Path, run: Path, steps: int) -> dict:
    """Train `run` to `steps` (an interrupted one resumes; a finished one is kept: the command can be run again
    to redo only what is missing)."""
    t = time.time()
    if _finished(run) != steps:
        voxlift(
            "train", kind, "--data", data, "--out", run, "--steps", steps, "--seed", 0, "--progress", "none"
        )
    rows = [json.loads(r) for r in (run / "log.jsonl").read_text().splitlines()]
    end = [r for r in rows if r["event"] == "end"][-1]
    return {
        "steps": end["step"],
        "minutes": end["elapsed"] / 60,
        "wall_minutes": (time.time() - t) / 60,
        "val": end.get("val"),
    }


def _finished(run: Path) -> int | None:
    """The step a finished run ended at, None when it has not finished."""
    log_file = run / "log.jsonl"
    rows = [json.loads(r) for r in log_file.read_text().splitlines()] if log_file.exists() else []
    done = [r for r in rows if r.get("event") == "end" and r.get("reason") == "done"]
    return done[-1]["step"] if done else None


def ship(run: Path, out: Path, data: Path) -> dict:
    """Half precision if it scores as float32 does on the test split (within 0.002 IoU), else float32."""
    full = out.with_name("starter-full.safetensors")
    _export(run, full, half=False)
    _export(run, out, half=True)
    a, b = overall(evaluate(full, data, "test"), "iou"), overall(evaluate(out, data, "test"), "iou")
    if a - b > 0.002:
        shutil.copy(full, out)
    full.unlink()
    return {"float32": a, "float16": b, "shipped": "float16" if a - b <= 0.002 else "float32"}


def _export(run: Path, out: Path, half: bool, card: Path | None = None) -> None:
    import subprocess

    cmd = [sys.executable, "-m", "voxlift.backend.export", str(run), "--out", str(out)]
    cmd += ([] if half else ["--full"]) + (["--card", str(card)] if card else [])
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def demo_split(work: Path, model: Path) -> dict:
    """The demo's data (addon/demo.py renders synthetic:160 with the defaults): the starter on its test split."""
    demo = work / "demo-data"
    if not (demo / ".done").exists():
        voxlift(
            "render", f"synthetic:{DEMO_MODELS}", "--categories", CATEGORIES, "--out", demo, "--no-progress"
        )
        (demo / ".done").touch()
    return {"model": evaluate(model, demo, "test"), "mean-shape": baseline("mean-shape", demo, "test")}


def figures(model: Path, data: Path, work: Path) -> dict:
    from voxlift.dataset_tools import open_dataset

    ds = open_dataset(data)
    test = ds.indices("test")
    views = [1, 3, 5, 7]  # half of each test model's views: the pictures are many
    return {
        "test": evaluate(model, data, "test"),
        "retrieval": baseline("retrieval", data, "test"),
        "mean-shape": baseline("mean-shape", data, "test"),
        "robustness": robustness(model, data, work / "pictures", models=test, views=views),
        "icons": icon_scores(model, data, work / "pictures", models=test),
        "demo": demo_split(work, model),
    }


def card(args, data: Path, trained: dict, shipped: dict, fig: dict | None) -> str:
    from voxlift.backend.predict import load_predictor
    from voxlift.backend.starter import REACH
    from voxlift.dataset_tools import open_dataset

    ds = open_dataset(data)
    p = load_predictor(ASSETS / "starter.safetensors", "cpu")
    counts = {c: int(sum(1 for m in ds.models if m.category == c)) for c in ("chair", "table")}
    lines = [
        "# The voxlift starter model",
        "",
        (
            "What `voxlift reconstruct`, `voxlift evaluate` and the add-on's Reconstruct panel use when no checkpoint "
            "is chosen. A paired image-to-voxel model (`voxlift train paired` with its defaults): one picture of any "
            "size, colour or gray, with or without alpha, in; a 32^3 occupancy grid out, as seen from the picture "
            "(turned back by the picture's azimuth). Its mask model finds the object in pictures without alpha."
        ),
        "",
        f"- **Reach**: {REACH}.",
        (
            f"- **Trained on** {len(ds)} models ({counts['chair']} chairs, {counts['table']} tables; train split "
            f"{len(ds.indices('train'))}): KatorLegaz, Scopia and BlendSwap-CC-0 (Sweet Home 3D, Debian's "
            f"sweethome3d-furniture) with two shape variants each, and {args.synthetic} procedural models "
            "(dataset_tools/synthetic.py); rendered by `voxlift render --appearance random` (their own colours and "
            f"textures or random ones, random Workbench lighting), {ds.views_per_model} views 45 degrees apart at "
            f"{ds.views[0].elevation:g} degrees elevation, {ds.image_size} px; never BlendSwap-CC-BY (voxlift's "
            "external test set). Training pictures: new backgrounds (photographs from the background bank "
            "backend/assets/backgrounds.png, noise, shapes), exposure, blur, noise, masks as inference finds them."
        ),
        (
            f"- **Budget**: {trained['steps']} steps, batch {p.config.batch_size}, seed 0: {trained['minutes']:.0f} min "
            f"on {platform.machine()} with {os.cpu_count()} CPUs ({platform.platform()}), torch {_torch_version()}."
        ),
        (
            f"- **Weights**: {shipped['shipped']}, {(ASSETS / 'starter.safetensors').stat().st_size / 1e6:.1f} MB; "
            f"test-split IoU {shipped['float32']:.3f} in float32, {shipped['float16']:.3f} in float16. Decision "
            f"threshold {p.threshold:g} (chosen on the validation split)."
        ),
        (
            f"- **Mask model** (backend/assets/mask.safetensors, {(ASSETS / 'mask.safetensors').stat().st_size / 1e6:.1f} "
            f"MB: finds the object in pictures without alpha, for every model): `voxlift train mask`, "
            f"{trained['mask']['steps']} steps, seed 0, {trained['mask']['minutes']:.0f} min, the same data; "
            f"mask IoU {(trained['mask'].get('val') or {}).get('mask_iou', float('nan')):.3f} on its validation "
            "pictures (the object anywhere, at any size, on new backgrounds)."
        ),
        "- **Command**: `python build.py starter "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in (
                ("steps", args.steps),
                ("mask_steps", args.mask_steps),
                ("synthetic", args.synthetic),
            )
        )
        + "`.",
    ]
    if fig:
        lines += figure_lines(fig)
    return "\n".join(lines) + "\n"


def _torch_version() -> str:
    import torch

    return torch.__version__


def figure_lines(fig: dict) -> list[str]:
    t, r = fig["test"], fig["robustness"]
    lines = [
        "",
        "## Figures (measured by the command above, on the data's test split: models never trained on)",
        "",
        "| | IoU (model's threshold) | IoU@0.3 | IoU@0.5 |",
        "|---|---:|---:|---:|",
        f"| starter model | {overall(t, 'iou'):.3f} | {overall(t):.3f} | {overall(t, 'iou@0.5'):.3f} |",
        f"| nearest-image retrieval | - | {overall(fig['retrieval']):.3f} | - |",
        f"| mean shape | - | {overall(fig['mean-shape']):.3f} | - |",
        (
            f"| the demo's test split (`synthetic:{DEMO_MODELS}`, plain renderings) | "
            f"{overall(fig['demo']['model'], 'iou'):.3f} | {overall(fig['demo']['model']):.3f} | "
            f"{overall(fig['demo']['model'], 'iou@0.5'):.3f} |"
        ),
        f"| mean shape on the demo's split | - | {overall(fig['demo']['mean-shape']):.3f} | - |",
        "",
        (
            "Pictures as users have them (tests/benchmarks/user_pictures.py: the test views without alpha, on held-out "
            "photographs, in clutter, darker, smaller...), through `voxlift reconstruct` (IoU at the model's threshold, "
            "object frame; ratio to the clean RGBA rendering):"
        ),
        "",
        "| " + " | ".join(PERTURBATIONS) + " |",
        "|" + "---:|" * len(PERTURBATIONS),
        "| " + " | ".join(f"{r[k]:.3f} ({r[k] / r['clean']:.2f}x)" for k in PERTURBATIONS) + " |",
        "",
        "Sweet Home 3D's own catalog icons of the test split's models (another renderer, another view, their "
        "textures): "
        + ", ".join(f"{k} {v:.3f} ({v / r['clean']:.2f}x)" for k, v in fig["icons"].items())
        + ".",
    ]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--mask-steps", type=int, default=6000)
    p.add_argument("--synthetic", type=int, default=1000)
    p.add_argument(
        "--work", type=Path, default=Path(os.environ.get("VOXLIFT_STARTER_WORK", "/tmp/voxlift-starter"))
    )
    p.add_argument("--skip-figures", action="store_true", help="train and ship only")
    args = p.parse_args()
    data = render_data(args.work, args.synthetic)
    mask_run = args.work / "mask"
    trained_mask = train("mask", data, mask_run, args.mask_steps)
    _export(mask_run, ASSETS / "mask.safetensors", half=True)
    run = args.work / "run"
    trained = train("paired", data, run, args.steps)
    trained["mask"] = trained_mask
    out = ASSETS / "starter.safetensors"
    shipped = ship(run, out, data)
    fig = None if args.skip_figures else figures(out, data, args.work)
    text = card(args, data, trained, shipped, fig)
    (ASSETS / "starter.md").write_text(text)
    _export(run, out, half=shipped["shipped"] == "float16", card=ASSETS / "starter.md")  # the card inside
    (args.work / "figures.json").write_text(
        json.dumps({"trained": trained, "shipped": shipped, "figures": fig}, indent=1)
    )
    log(f"starter model: {out} ({out.stat().st_size / 1e6:.1f} MB); card: {ASSETS / 'starter.md'}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
