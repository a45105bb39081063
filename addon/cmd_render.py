"""`voxlift render`, `voxlift merge` and `voxlift qa`.

    voxlift render SOURCE... --out DATASET [--categories chair,table] [--limit N] [--views V]
                   [--image-size S] [--resolution R] [--engine workbench|cycles] [--workers N] [--shard i/N]
                   [--appearance plain|random] [--camera-jitter]
    voxlift merge SHARD... --out DATASET
    voxlift qa DATASET [--json] [--sheet FILE.png] [--worst K]

The same arguments work as `blender -b -c voxlift render ...` in a Blender binary. Rendering runs in child
processes (render_job.py, blender/render_worker.py); this process only lists models, writes the dataset and
shows progress.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .dataset_tools.errors import VoxliftError
from .render_appearance import APPEARANCES


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    if command == "render":
        p.add_argument(
            "sources",
            nargs="+",
            metavar="SOURCE",
            help=".sh3f file or folder, ShapeNet root, OBJ folder, or synthetic:N[:seed]",
        )
        p.add_argument("--out", required=True, help="dataset folder (created, or resumed if it exists)")
        p.add_argument("--categories", help="comma-separated categories to keep, e.g. chair,table")
        p.add_argument("--limit", type=_positive, help="at most N models (before sharding)")
        p.add_argument("--views", type=_positive, default=8, help="views per model (default 8)")
        p.add_argument("--elevation", type=float, default=20.0, help="camera elevation in degrees (20)")
        p.add_argument("--distance", type=float, default=2.5, help="camera distance (2.5)")
        p.add_argument("--fov", type=float, default=40.0, help="field of view in degrees (40)")
        p.add_argument("--image-size", type=_positive, default=128, help="image size in pixels (128)")
        p.add_argument("--resolution", type=_positive, default=32, help="voxel grid resolution (32)")
        p.add_argument("--engine", choices=("workbench", "cycles"), default="workbench")
        p.add_argument(
            "--appearance",
            choices=APPEARANCES,
            default="plain",
            help="plain: one gray, one light (default); random: the source's own colours and textures or "
            "random ones, and per view a random Workbench lighting (studio light, matcap or flat, "
            "specular, cavity, shadows, exposure), seeded by the model id; stored in the manifest",
        )
        p.add_argument(
            "--camera-jitter",
            action="store_true",
            help="each model's views get their own elevation, distance and field of view (per-model "
            "cameras; the projective CycleGAN needs one shared camera, so it is off by default)",
        )
        p.add_argument(
            "--supersample",
            type=_positive,
            default=2,
            help="render at K times the size and box-filter down (2): parts wider than 1/K px show",
        )
        p.add_argument("--cycles-samples", type=_positive, default=16)
        p.add_argument(
            "--workers",
            type=_positive,
            default=os.cpu_count() or 1,
            help="Blender processes in parallel (default: the CPU count)",
        )
        p.add_argument("--shard", default="0/1", help="render only shard i of N (i/N), e.g. in a SLURM array")
        p.add_argument(
            "--restart-every",
            type=_positive,
            default=500,
            help="models per worker process before it is restarted (500)",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
    elif command == "merge":
        p.add_argument("inputs", nargs="+", metavar="SHARD", help="datasets to join (e.g. render shards)")
        p.add_argument("--out", required=True, help="dataset to create or append to")
    elif command == "qa":
        p.add_argument("dataset")
        p.add_argument("--json", action="store_true", help="print the full report as JSON")
        p.add_argument("--sheet", help="write a PNG contact sheet: renderings beside projected grids")
        p.add_argument("--worst", type=_positive, default=10, help="how many worst models to list (10)")
        p.add_argument("--threshold", type=float, default=0.99, help="score below which a model is flagged")


def run(args) -> int:
    return {"render": _render, "merge": _merge, "qa": _qa}[args.command](args)


def options_from_args(args):
    from .dataset_tools.sources import normalize_categories
    from .render_job import RenderOptions, parse_shard

    cats = normalize_categories(args.categories)
    return RenderOptions(
        sources=list(args.sources),
        out=args.out,
        categories=sorted(cats) if cats else None,
        limit=args.limit,
        views=args.views,
        elevation=args.elevation,
        distance=args.distance,
        fov=args.fov,
        image_size=args.image_size,
        resolution=args.resolution,
        engine=args.engine,
        appearance=args.appearance,
        camera_jitter=args.camera_jitter,
        supersample=args.supersample,
        cycles_samples=args.cycles_samples,
        workers=args.workers,
        shard=parse_shard(args.shard),
        restart_every=args.restart_every,
    )


def _render(args) -> int:
    from .render_job import RenderJob

    opts = options_from_args(args)
    bar = None

    def log(msg: str) -> None:
        (bar.write if bar is not None else print)(f"voxlift: {msg}", file=sys.stderr)

    job = RenderJob(opts, log=log)
    job.start()
    try:
        if job.already:
            log(f"{job.already} models already done in {opts.out}, {job.total} to go")
        if not args.no_progress and job.total:
            from tqdm import tqdm

            bar = tqdm(total=job.total, unit="model", desc="render", dynamic_ncols=True, file=sys.stderr)
        shown = 0
        while job.poll(0.5):
            if bar is not None and job.done > shown:
                bar.update(job.done - shown)
                shown = job.done
                bar.set_postfix_str(
                    f"{job.rendered * opts.views / max(job.elapsed, 1e-9):.1f} views/s, {job.skipped} skipped"
                )
        if bar is not None:
            bar.update(job.done - shown)
    except KeyboardInterrupt:
        job.cancel()
        raise
    finally:
        if bar is not None:
            bar.close()
        job.close()
    print(job.summary())
    if job.skipped:
        print(f"{job.skipped} models skipped, reasons in {os.path.join(opts.out, 'skipped.jsonl')}")
    return 0


def _merge(args) -> int:
    import numpy as np

    from .dataset_tools.dataset import merge_datasets, open_dataset

    # Every input is checked before anything is written: shards must share their settings.
    first = open_dataset(args.inputs[0])
    for path in args.inputs[1:]:
        ds = open_dataset(path)
        for key in ("image_size", "views_per_model", "resolution"):
            if getattr(ds, key) != getattr(first, key):
                raise VoxliftError(
                    f"{path}: {key} {getattr(ds, key)} differs from {args.inputs[0]}'s "
                    f"{getattr(first, key)}; only shards of one render can be merged"
                )
        same_views = (ds.views is None) == (first.views is None) and (
            ds.views is None
            or all(np.allclose(a.world_to_pixel, b.world_to_pixel) for a, b in zip(ds.views, first.views))
        )
        if _appearance(ds) != _appearance(first):
            raise VoxliftError(
                f"{path}: appearance {_appearance(ds)} differs from {args.inputs[0]}'s {_appearance(first)}; "
                "only shards of one render can be merged"
            )
        if not same_views:
            raise VoxliftError(
                f"{path}: its cameras differ from {args.inputs[0]}'s; only shards of one render can be merged"
            )
    added = merge_datasets(args.out, args.inputs)
    print(f"{args.out}: {added} models added from {len(args.inputs)} datasets")
    return 0


def _appearance(ds) -> str:
    render = ds.manifest.get("render")
    return render.get("appearance", "plain") if isinstance(render, dict) else "plain"


def _qa(args) -> int:
    from .dataset_tools.qa import format_report, qa_dataset, write_sheet

    report = qa_dataset(args.dataset)
    if args.sheet:
        write_sheet(args.dataset, report, args.sheet)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report, worst=args.worst, threshold=args.threshold))
        if args.sheet:
            print(f"sheet: {args.sheet}")
    return 0
