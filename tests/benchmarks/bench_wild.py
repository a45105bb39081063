"""Train for the wild: real furniture never seen, and pictures as users have them, with the defaults.

    python tests/benchmarks/bench_wild.py [--minutes 12 30] [--jobs 2] [--synthetic 600] [--work DIR]

(`python build.py bench wild`; VOXLIFT_BENCH_WILD_MINUTES="12 30", VOXLIFT_BENCH_WILD_JOBS and
VOXLIFT_BENCH_WILD_WORK set those there.) Every model is `voxlift train paired` with its defaults and a
--max-minutes budget on the CPU (--jobs runs at once, one thread each). Never BlendSwap-CC-BY.

Datasets (voxlift render with its defaults, kept in --work and resumed between runs):
  lolo     augment:2 of KatorLegaz and Scopia + synthetic:N, chairs and tables        (train, leave one out)
  cc0      augment:2 of BlendSwap-CC-0, chairs and tables                             (joins lolo into mix)
  mix      lolo + cc0 (voxlift merge): the benchmark mix
  heldout  BlendSwap-CC-0's chairs and tables, plain renderings                       (test, leave one out)

Benchmarks, for each budget:
  leave one library out   the lolo model on heldout (every model), beside retrieval and mean shape fitted
                          on lolo's training split;
  mix                     the mix model on mix's test split, beside its baselines;
  chairs -> tables        a model trained on mix's chairs only, on mix's test tables, beside the tables'
                          mean shape and retrieval from chairs;
  robustness              heldout's views turned into pictures as users have them (user_pictures.py),
                          reconstructed by `voxlift reconstruct` (its own framing and threshold), IoU in the
                          object frame and its ratio to the clean RGBA rendering;
  catalog icons           the icons Sweet Home 3D rendered of heldout's models (their view found from their
                          silhouettes), as RGBA, on white and on a photograph, through `voxlift reconstruct`,
                          beside the same model's IoU on heldout's renderings.
Prints a markdown section on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from user_pictures import PERTURBATIONS, photo_crop, user_picture

ROOT = Path(__file__).resolve().parents[2]
SH3F = Path("/usr/share/sweethome3d/furniture")
CATEGORIES = "chair,table"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def voxlift(*args, threads: int | None = None, check: bool = True) -> str:
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log("+ voxlift", " ".join(map(str, args)))
    res = subprocess.run(
        [sys.executable, "-m", "voxlift.cli", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    if res.returncode != 0:
        if check:
            sys.exit(f"voxlift {' '.join(map(str, args))} failed ({res.returncode})")
        return None
    return res.stdout


# ---------------------------------------------------------------------------------------------- data


def datasets(work: Path, synthetic: int) -> dict[str, Path]:
    d = {name: work / "data" / name for name in ("lolo", "cc0", "mix", "heldout")}
    lib = {name: SH3F / f"{name}.sh3f" for name in ("KatorLegaz", "Scopia", "BlendSwap-CC-0")}
    common = ["--categories", CATEGORIES, "--no-progress"]
    train = [*common, "--appearance", "random"]
    if not (d["lolo"] / ".done").exists():
        voxlift(
            "render",
            f"augment:2:{lib['KatorLegaz']}",
            f"augment:2:{lib['Scopia']}",
            f"synthetic:{synthetic}",
            "--out",
            d["lolo"],
            *train,
        )
        (d["lolo"] / ".done").touch()
    if not (d["cc0"] / ".done").exists():
        voxlift("render", f"augment:2:{lib['BlendSwap-CC-0']}", "--out", d["cc0"], *train)
        (d["cc0"] / ".done").touch()
    if not (d["mix"] / ".done").exists():
        voxlift("merge", d["lolo"], d["cc0"], "--out", d["mix"])
        (d["mix"] / ".done").touch()
    if not (d["heldout"] / ".done").exists():
        voxlift("render", lib["BlendSwap-CC-0"], "--out", d["heldout"], "--appearance", "plain", *common)
        (d["heldout"] / ".done").touch()
    return d


# ---------------------------------------------------------------------------------------------- training


MASK_MINUTES = 20  # the mask model that cuts out the held-out library's pictures, trained on lolo alone


def runs(d: dict[str, Path], minutes: list[float]) -> dict[str, tuple[list, Path]]:
    """name -> (voxlift train arguments, run folder)."""
    mask = d["lolo"].parents[1] / "runs" / "mask-lolo"
    out = {
        "mask-lolo": (
            ["train", "mask", "--data", d["lolo"], "--out", mask, "--max-minutes", MASK_MINUTES],
            mask,
        )
    }
    for m in minutes:
        for name, data, extra in (
            ("lolo", d["lolo"], []),
            ("mix", d["mix"], []),
            ("chairs", d["mix"], ["--categories", "chair"]),
        ):
            run = d["lolo"].parents[1] / "runs" / f"{name}-{m:g}"
            out[f"{name}-{m:g}"] = (
                ["train", "paired", "--data", data, "--out", run, "--max-minutes", m, *extra],
                run,
            )
    return out


def train_all(plan: dict, jobs: int) -> None:
    todo = {k: v for k, v in plan.items() if not (v[1] / "best.safetensors").exists() or _unfinished(v[1])}

    def one(item):
        name, (args, _run) = item
        t = time.time()
        voxlift(*args, "--progress", "none", threads=1 if jobs > 1 else None)
        log(f"trained {name} in {(time.time() - t) / 60:.1f} min")

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, sorted(todo.items(), key=lambda kv: -_minutes(kv[1][0]))))


def _minutes(args: list) -> float:
    return float(args[args.index("--max-minutes") + 1])


def _unfinished(run: Path) -> bool:
    rows = (run / "log.jsonl").read_text().splitlines() if (run / "log.jsonl").exists() else []
    return not any(
        json.loads(r).get("event") == "end" and json.loads(r).get("reason") == "done" for r in rows
    )


# ---------------------------------------------------------------------------------------------- scoring


def evaluate(run: Path, data: Path, split: str, categories: str | None = None) -> dict:
    extra = ["--categories", categories] if categories else []
    return json.loads(
        voxlift(
            "evaluate", "--checkpoint", run, "--data", data, "--split", split, "--json", "--no-fscore", *extra
        )
    )


def baseline(
    method: str,
    data: Path,
    split: str,
    train_data: Path | None = None,
    categories=None,
    train_categories=None,
) -> dict:
    extra = (["--train-data", train_data] if train_data else []) + (
        ["--categories", categories] if categories else []
    )
    extra += ["--train-categories", train_categories] if train_categories else []
    return json.loads(
        voxlift("baseline", method, "--data", data, "--split", split, "--json", "--no-fscore", *extra)
    )


def overall(result: dict, key: str = "iou@0.3") -> float:
    return float(result["summary"]["overall"][key])


def reconstruct_iou(
    run: Path,
    pictures: list[np.ndarray],
    azimuths: list[float],
    truths: list[np.ndarray],
    folder: Path,
    mask=None,
) -> float:
    """Mean IoU of `voxlift reconstruct` on the pictures (object frame, the model's own threshold)."""
    from voxlift.backend.metrics import iou
    from voxlift.backend.predict import load_predictor, to_object_frame
    from voxlift.dataset_tools.png import write_png

    threshold = load_predictor(run, "cpu").threshold
    folder.mkdir(parents=True, exist_ok=True)
    scores = []
    by_azimuth: dict[float, list[int]] = {}
    for i, az in enumerate(azimuths):
        by_azimuth.setdefault(round(float(az), 3), []).append(i)
    for az, idx in by_azimuth.items():
        paths = []
        for i in idx:
            p = folder / f"{i:05d}.png"
            write_png(p, pictures[i])
            paths.append(p)
        out = folder / f"az{az:g}.npz"
        extra = ["--mask-model", mask] if mask else []
        done = (
            voxlift("reconstruct", *paths, "--checkpoint", run, "--out", out, *extra, check=False) is not None
        )
        if not done:  # one picture was refused (no object found): the others one by one, as the command would
            scores += _one_by_one(run, pictures, idx, az, truths, threshold, mask)
            continue
        with np.load(out) as z:  # the model's frame, turned into the object frame as reconstruct does
            probs = to_object_frame(z["probs"], az) if bool(z["viewer_centred"]) else z["probs"]
        scores += list(iou(probs, np.stack([truths[i] for i in idx]), (threshold,))[:, 0])
    return float(np.mean(scores))


def _one_by_one(run, pictures, idx, az, truths, threshold, mask) -> list[float]:
    """IoU of each picture through what `voxlift reconstruct` runs (reconstruct.predict_here), in this process
    (a process per picture would take hours); a refused picture scores 0: the user gets nothing."""
    from voxlift import reconstruct
    from voxlift.backend.metrics import iou
    from voxlift.backend.predict import to_object_frame
    from voxlift.dataset_tools import VoxliftError

    scores = []
    for i in idx:
        try:
            result = reconstruct.predict_here(
                [pictures[i]], run, "cpu", mask_model=str(mask) if mask else None
            )
        except VoxliftError:
            scores.append(0.0)
            continue
        probs = to_object_frame(result.probs, az) if result.viewer_centred else result.probs
        scores.append(float(iou(probs, truths[i][None], (threshold,))[0, 0]))
    return scores


def robustness(
    run: Path, data: Path, work: Path, models=None, views=None, kinds=PERTURBATIONS, mask=None
) -> dict[str, float]:
    """IoU of each picture kind made from `data`'s views (every model and view unless given)."""
    from voxlift.dataset_tools import open_dataset

    ds = open_dataset(data)
    pics = {k: [] for k in kinds}
    azimuths, truths = [], []
    for m in range(len(ds)) if models is None else models:
        for v, view in enumerate(ds.views_of(int(m))):
            if views is not None and v not in views:
                continue
            for k in kinds:
                pics[k].append(
                    user_picture(np.asarray(ds.images[m, v]), np.asarray(ds.alpha[m, v]), k, seed=m * 97 + v)
                )
            azimuths.append(view.azimuth)
            truths.append(np.asarray(ds.voxels[m]))
    return {k: reconstruct_iou(run, pics[k], azimuths, truths, work / run.name / k, mask) for k in kinds}


# ---------------------------------------------------------------------------------------------- icons


def icons(data: Path, models=None) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """library -> (catalog icons RGBA uint8, true grids) of `data`'s Sweet Home 3D models (every model unless
    `models` names some; augmented variants, whose shape is not the icon's, left out)."""
    from voxlift.dataset_tools import open_dataset
    from voxlift.dataset_tools.png import read_png
    from voxlift.dataset_tools.sh3f import CATALOG, Sh3fArchive, parse_properties, read_catalog

    ds = open_dataset(data)
    out: dict[str, tuple[list, list]] = {}
    catalogs = {}
    for m in range(len(ds)) if models is None else models:
        mid = ds.models[int(m)].id
        if not mid.startswith("sh3f:") or "#" in mid:
            continue
        library, entry = mid[len("sh3f:") :].split("/", 1)
        if library not in catalogs:
            archive = Sh3fArchive(SH3F / f"{library}.sh3f")
            props = parse_properties(archive.read(CATALOG).decode("latin-1"))
            catalogs[library] = (archive, props, _local_ids(read_catalog(archive)))
        archive, props, by_id = catalogs[library]
        icon = read_png(archive.read(props[f"icon#{by_id[entry]}"].lstrip("/")))
        if icon.ndim == 3 and icon.shape[2] == 3:
            icon = np.dstack([icon, np.full(icon.shape[:2], 255, np.uint8)])
        images, grids = out.setdefault(library, ([], []))
        images.append(icon)
        grids.append(np.asarray(ds.voxels[int(m)]))
    return out


def _local_ids(entries) -> dict[str, int]:
    """The model ids' entry part -> catalog number, named as dataset_tools/sources.py names them."""
    seen: dict[str, int] = {}
    for e in entries:
        local = (e.id.split("#", 1)[-1] if "#" in e.id else e.id).strip("/") or f"entry{e.index}"
        seen[f"{local}~{e.index}" if local in seen else local] = e.index
    return seen


def icon_view(images: list[np.ndarray], grids: list[np.ndarray]) -> tuple[float, float]:
    """(azimuth, elevation) of the library's icons: the camera whose projected true grids best match the
    icons' alpha silhouettes (each framed to its bounding box), searched on a grid of views."""
    from voxlift.dataset_tools.camera import make_view

    def framed(mask: np.ndarray, side: int = 32) -> np.ndarray:
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return np.zeros((side, side))
        s = max(np.ptp(xs), np.ptp(ys)) + 1
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        yy, xx = np.mgrid[0:side, 0:side]
        sy = np.clip(np.round(cy + (yy + 0.5 - side / 2) * s / side).astype(int), 0, mask.shape[0] - 1)
        sx = np.clip(np.round(cx + (xx + 0.5 - side / 2) * s / side).astype(int), 0, mask.shape[1] - 1)
        return mask[sy, sx]

    targets = [framed(im[..., 3] > 127) for im in images]
    points = []
    for g in grids:
        idx = np.argwhere(g).astype(np.float64)
        points.append(np.c_[(idx + 0.5) / g.shape[0] - 0.5, np.ones(len(idx))])
    best = (-1.0, 0.0, 0.0)
    for az in range(0, 360, 10):
        for el in range(0, 61, 5):
            # small enough that neighbouring voxel centres land on neighbouring pixels: no holes
            p = make_view(float(az), float(el), 2.5, 35.0, 40).world_to_pixel
            score = []
            for pts, t in zip(points, targets):
                h = pts @ np.asarray(p).T
                u, v = (h[:, 0] / h[:, 2]).astype(int), (h[:, 1] / h[:, 2]).astype(int)
                sil = np.zeros((72, 72), bool)
                ok = (u >= -16) & (u < 56) & (v >= -16) & (v < 56)
                sil[v[ok] + 16, u[ok] + 16] = True
                f = framed(sil)
                score.append((f & t).sum() / max((f | t).sum(), 1))
            if np.mean(score) > best[0]:
                best = (float(np.mean(score)), float(az), float(el))
    log(f"icons: view azimuth {best[1]:g}, elevation {best[2]:g} (silhouette IoU {best[0]:.2f})")
    return best[1], best[2]


def icon_scores(run: Path, data: Path, work: Path, models=None, mask=None) -> dict[str, float]:
    """IoU of the icons of `data`'s Sweet Home 3D models through `voxlift reconstruct`: as RGBA, on white, and
    on a held-out photograph; each library's icon view found from its silhouettes."""
    rng = np.random.default_rng(0)
    pics: dict[str, list] = {"rgba": [], "white": [], "photo": []}
    azs, truths = [], []
    for images, grids in icons(data, models).values():
        az, _ = icon_view(images, grids)
        for im in images:
            a = im[..., 3:] / 255.0
            pics["rgba"].append(im)
            pics["white"].append(np.round(im[..., :3] * a + 255 * (1 - a)).astype(np.uint8))
            bg = photo_crop(im.shape[0], rng) * 255
            pics["photo"].append(np.round(im[..., :3] * a + bg * (1 - a)).astype(np.uint8))
        azs += [az] * len(images)
        truths += grids
    return {
        name: reconstruct_iou(run, p, azs, truths, work / run.name / f"icons-{name}", mask)
        for name, p in pics.items()
    }


# ---------------------------------------------------------------------------------------------- report


def score_budget(m: float, d: dict[str, Path], plan: dict, work: Path) -> dict:
    run = {k: plan[f"{k}-{m:g}"][1] for k in ("lolo", "mix", "chairs")}
    r = {
        "lolo": evaluate(run["lolo"], d["heldout"], "all"),
        "mix": evaluate(run["mix"], d["mix"], "test"),
        "chairs": evaluate(run["chairs"], d["mix"], "test", "table"),
    }
    mask = plan["mask-lolo"][1]  # never saw the held-out library
    r["robustness"] = robustness(run["lolo"], d["heldout"], work / "pictures", mask=mask)
    r["icons"] = icon_scores(run["lolo"], d["heldout"], work / "pictures", mask=mask)
    r["steps"] = {
        k: json.loads((v / "log.jsonl").read_text().splitlines()[-1])["step"] for k, v in run.items()
    }
    return r


def baselines(d: dict[str, Path]) -> dict:
    return {
        "lolo": {
            b: baseline(b, d["heldout"], "all", train_data=d["lolo"]) for b in ("retrieval", "mean-shape")
        },
        "mix": {b: baseline(b, d["mix"], "test") for b in ("retrieval", "mean-shape")},
        "chairs": {
            "retrieval": baseline(
                "retrieval", d["mix"], "test", categories="table", train_categories="chair"
            ),
            "mean-shape": baseline("mean-shape", d["mix"], "test", categories="table"),
        },
    }


def table(results: dict, base: dict) -> list[str]:
    minutes = sorted(results)
    lines = [
        "| benchmark (IoU@0.3) | "
        + " | ".join(f"defaults, {m:g} min" for m in minutes)
        + " | retrieval | mean shape | target |",
        "|---|" + "---:|" * (len(minutes) + 3),
    ]
    for key, name, target in (
        ("lolo", "leave one library out (BlendSwap-CC-0)", ">= 0.50 and >= retrieval + 0.05"),
        ("mix", "benchmark mix, test split", ">= retrieval + 0.05 (12 min)"),
        ("chairs", "chairs only -> tables", ">= 0.40"),
    ):
        row = [f"{overall(results[m][key]):.3f}" for m in minutes]
        lines.append(
            f"| {name} | " + " | ".join(row) + f" | {overall(base[key]['retrieval']):.3f} | "
            f"{overall(base[key]['mean-shape']):.3f} | {target} |"
        )
    lines += [
        "",
        (
            "Robustness: heldout's views as pictures, through `voxlift reconstruct` (IoU at the model's own "
            "threshold, object frame; ratio to the clean RGBA rendering; target >= 0.85x):"
        ),
        "",
        "| picture | " + " | ".join(f"{m:g} min" for m in minutes) + " |",
        "|---|" + "---:|" * len(minutes),
    ]
    for k in PERTURBATIONS:
        cells = []
        for m in minutes:
            rb = results[m]["robustness"]
            cells.append(f"{rb[k]:.3f} ({rb[k] / rb['clean']:.2f}x)")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            "Catalog icons of the held-out library (Sweet Home 3D's own renderings, another view), against its "
            "renderings' IoU at the same threshold (target >= 0.9x):"
        ),
        "",
        "| icons | " + " | ".join(f"{m:g} min" for m in minutes) + " |",
        "|---|" + "---:|" * len(minutes),
    ]
    for k in ("rgba", "white", "photo"):
        cells = [
            f"{results[m]['icons'][k]:.3f} ({results[m]['icons'][k] / results[m]['robustness']['clean']:.2f}x)"
            for m in minutes
        ]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    steps = "; ".join(
        f"{m:g} min: " + ", ".join(f"{k} {v}" for k, v in results[m]["steps"].items()) for m in minutes
    )
    lines += ["", f"Training steps reached: {steps}."]
    return lines


def main() -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--minutes",
        type=float,
        nargs="+",
        default=[float(x) for x in env("VOXLIFT_BENCH_WILD_MINUTES", "12 30").split()],
    )
    p.add_argument("--jobs", type=int, default=int(env("VOXLIFT_BENCH_WILD_JOBS", "2")))
    p.add_argument("--synthetic", type=int, default=600)
    p.add_argument(
        "--work", type=Path, default=Path(env("VOXLIFT_BENCH_WILD_WORK", "/tmp/voxlift-bench-wild"))
    )
    args = p.parse_args()
    t0 = time.time()
    d = datasets(args.work, args.synthetic)
    plan = runs(d, args.minutes)
    train_all(plan, args.jobs)
    base = baselines(d)
    results = {m: score_budget(m, d, plan, args.work) for m in args.minutes}
    (args.work / "results.json").write_text(
        json.dumps({"results": results, "baselines": base}, indent=1, default=str)
    )
    from voxlift.dataset_tools import open_dataset

    sizes = {k: len(open_dataset(v)) for k, v in d.items()}
    lines = [
        "## Train for the wild",
        "",
        (
            f"Models: {sizes} (chairs and tables; never BlendSwap-CC-BY). "
            f"Every model is `voxlift train paired --data D --out R --max-minutes M` with nothing else "
            f"({args.jobs} at once, one thread each)."
        ),
        "",
        *table(results, base),
        "",
        (
            f"Command: `python tests/benchmarks/bench_wild.py --minutes {' '.join(f'{m:g}' for m in args.minutes)} "
            f"--jobs {args.jobs} --synthetic {args.synthetic}` ({(time.time() - t0) / 60:.0f} min)."
        ),
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
