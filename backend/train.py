"""`voxlift train KIND ...`: one entry point for every model kind (registry.py lists them).

    voxlift train KIND --data DATASET --out RUN [--steps N | --max-minutes M] [options of KIND]
    torchrun --nproc-per-node N -m voxlift.backend.train KIND ...     N processes (one GPU each, or gloo on CPUs)

The kind supplies its options, config, networks and one training step (models/<kind>.py); loop.py does the
rest for all of them: the run folder, resume, budget, progress, validation and checkpoints.
"""

from __future__ import annotations

import argparse
import os
import sys

from .registry import KINDS, model_class


def add_kind_parsers(parser: argparse.ArgumentParser) -> None:
    """One sub-command per kind, with the run's options (loop.py) and the kind's own."""
    from .loop import add_run_arguments

    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for name, kind in KINDS.items():
        p = sub.add_parser(name, help=kind.description, description=kind.description)
        model = model_class(name)
        add_run_arguments(p, model)
        model.add_arguments(p)


def run_kind(args) -> int:
    """Train args.kind into args.out, holding the run folder's lock (process 0 only: under torchrun the
    others write nothing there), so that a second training into the same folder is refused."""
    from ..dataset_tools.fileio import FolderLock
    from .loop import train

    if int(os.environ.get("RANK", "0")) != 0:
        return train(args.kind, args)
    with FolderLock(args.out, "training into this folder"):
        return train(args.kind, args)


def main(argv: list[str] | None = None) -> int:
    from ..dataset_tools.errors import VoxliftError

    parser = argparse.ArgumentParser(
        prog="python -m voxlift.backend.train", description=__doc__.split("\n")[0]
    )
    add_kind_parsers(parser)
    args = parser.parse_args(argv)
    try:
        return run_kind(args)
    except VoxliftError as exc:
        print(f"voxlift: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
