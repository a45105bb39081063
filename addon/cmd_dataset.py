"""Dataset commands that need neither bpy nor torch: sources, voxelize, inspect, import-r2n2.

    voxlift sources SOURCE... [--categories chair,table] [--limit N]
    voxlift voxelize SOURCE... --out DIR [--resolution R] [--categories ...] [--limit N]
    voxlift inspect DATASET
    voxlift import-r2n2 R2N2_ROOT --out DATASET [--categories ...] [--limit N]

SOURCE is anything dataset_tools.sources.iter_models takes: a .sh3f file or a folder of them, a ShapeNetCore
v1/v2 root or synset folder, a folder of .obj files, or synthetic:N[:SEED].
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from pathlib import Path

from .dataset_tools.errors import VoxliftError


def add_arguments(command: str, parser) -> None:
    if command in ("sources", "voxelize"):
        parser.add_argument(
            "sources",
            nargs="+",
            metavar="SOURCE",
            help="a .sh3f file or folder of them, a ShapeNet root or synset folder, a folder of "
            ".obj files, or synthetic:N[:SEED]",
        )
    if command == "voxelize":
        parser.add_argument("--out", required=True, help="folder for the .binvox files (created)")
        parser.add_argument("--resolution", type=int, default=32, help="grid size R (default 32)")
    if command == "inspect":
        parser.add_argument("dataset", help="a voxlift dataset folder")
    if command == "import-r2n2":
        parser.add_argument(
            "root", metavar="R2N2_ROOT", help="folder holding ShapeNetRendering/ and ShapeNetVox32/"
        )
        parser.add_argument("--out", required=True, help="dataset folder to create or resume")
    if command in ("sources", "voxelize", "import-r2n2"):
        parser.add_argument(
            "--categories",
            default=None,
            help="comma-separated ShapeNet names or synset ids, e.g. chair,table",
        )
        parser.add_argument("--limit", type=int, default=None, help="at most N models")


def run(args) -> int:
    return {"sources": _sources, "voxelize": _voxelize, "inspect": _inspect, "import-r2n2": _import_r2n2}[
        args.command
    ](args)


def _check_limit(limit):
    if limit is not None and limit < 0:
        raise VoxliftError(f"--limit must be 0 or more, not {limit}")


def _sources(args) -> int:
    from .dataset_tools.sources import iter_sources, normalize_categories

    categories = normalize_categories(args.categories)
    _check_limit(args.limit)
    counts = Counter()
    for r in iter_sources(args.sources, categories, args.limit):
        print(f"{r.id}\t{r.category}\t{r.source}\t{r.name}")
        counts[r.category] += 1
    total = sum(counts.values())
    print(f"# {total} models: " + (", ".join(f"{c} {n}" for c, n in sorted(counts.items())) or "none"))
    return 0


def binvox_path(out: Path, model_id: str) -> Path:
    """One file per model id: its ':' and '/' parts become folders, other odd characters '_'
    (sh3f:Scopia/chair -> OUT/sh3f/Scopia/chair.binvox, 03001627/abc -> OUT/03001627/abc.binvox)."""
    parts = [re.sub(r"[^A-Za-z0-9._~-]", "_", p) for p in re.split(r"[:/]", model_id) if p]
    parts = [p if p not in (".", "..") else p.replace(".", "_") for p in parts]
    return out.joinpath(*parts).with_suffix(".binvox") if parts else out / "_.binvox"


class _Progress:
    """tqdm when importable, else a one-line counter on stderr."""

    def __init__(self, total, desc):
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="model", file=sys.stderr)
        except ImportError:
            self.bar = None
        self.n, self.total, self.desc = 0, total, desc

    def update(self):
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.n == self.total or self.n % 10 == 0:
            print(f"\r{self.desc}: {self.n}/{self.total}", end="", file=sys.stderr, flush=True)

    def write(self, line):
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(f"\n{line}", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.total:
            print(file=sys.stderr)


def _voxelize(args) -> int:
    import numpy as np

    from .dataset_tools.binvox import write_binvox
    from .dataset_tools.sources import iter_sources, normalize_categories
    from .dataset_tools.voxelize import voxelize

    if not 1 <= args.resolution <= 1024:
        raise VoxliftError(f"--resolution must be between 1 and 1024, not {args.resolution}")
    _check_limit(args.limit)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise VoxliftError(f"{out}: exists and is not a folder")
    records = list(iter_sources(args.sources, normalize_categories(args.categories), args.limit))
    counts = Counter()
    bar = _Progress(len(records), "voxelize")
    for r in records:
        target = binvox_path(out, r.id)
        if target.exists():  # resume: a file only ever appears complete (os.replace)
            counts["existing"] += 1
            bar.update()
            continue
        try:
            mesh = r.load()
            grid = np.asarray(voxelize(mesh.vertices, mesh.faces, args.resolution), bool)
            if not grid.any():
                raise VoxliftError(f"{r.id}: the voxel grid is empty")
        except VoxliftError as exc:
            bar.write(f"voxlift: skipped {r.id}: {exc}")
            counts["skipped"] += 1
            bar.update()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # The canonical cube [-0.5, 0.5]^3: translate its corner, scale its side.
        write_binvox(target, grid, (-0.5, -0.5, -0.5), 1.0)  # atomic: temp file, then os.replace
        counts["written"] += 1
        bar.update()
    bar.close()
    print(
        f"{out}: {counts['written']} written, {counts['existing']} already there, {counts['skipped']} skipped"
    )
    return 0


def _inspect(args) -> int:
    from .dataset_tools.dataset import open_dataset

    print(open_dataset(args.dataset).summary())
    return 0


def _import_r2n2(args) -> int:
    from .dataset_tools.r2n2 import import_r2n2
    from .dataset_tools.sources import normalize_categories

    _check_limit(args.limit)
    messages = []

    def progress(models):
        bar = _Progress(len(models), "import-r2n2")
        messages.append(bar)
        for m in models:
            yield m
            bar.update()
        bar.close()

    def log(line):
        (messages[0].write if messages else lambda s: print(s, file=sys.stderr))(f"voxlift: {line}")

    counts = import_r2n2(
        args.root, args.out, normalize_categories(args.categories), args.limit, log, progress
    )
    print(
        f"{os.fspath(args.out)}: {counts['added']} added, {counts['existing']} already there, "
        f"{counts['skipped']} skipped"
    )
    return 0
