"""Training entry point shared by every model kind, and the multi-process (DDP) set-up.

    voxlift train KIND ...                                   one process
    torchrun --nproc-per-node N -m voxlift.backend.train KIND ...   N processes (DDP, one GPU each, or gloo on CPU)

KINDS maps a model kind to the backend module that trains it; that module defines `add_arguments(parser)`
and `main(args) -> int`, and writes checkpoints whose config carries {"kind": KIND}.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

# kind -> (module in voxlift.backend, one-line help). Other kinds (cyclegan, autoencoder) are added here.
KINDS = {
    "paired": ("paired", "image encoder + 3D decoder trained on aligned (image, grid) pairs"),
    "cyclegan": ("cyclegan", "unpaired CycleGAN between renderings and grids of different models"),
    "autoencoder": ("autoencoder", "cross-autoencoder pre-training of the CycleGAN's generators"),
}


def kind_module(kind: str):
    return importlib.import_module(f"{__package__}.{KINDS[kind][0]}")


def run_kind(args) -> int:
    """Train args.kind into args.out, holding the run folder's lock (rank 0 only: under torchrun the other
    ranks write nothing there), so a second training on the same --out is refused."""
    from ..dataset_tools.fileio import FolderLock

    if int(os.environ.get("RANK", "0")) != 0:
        return int(kind_module(args.kind).main(args) or 0)
    with FolderLock(args.out, "training into this folder"):
        return int(kind_module(args.kind).main(args) or 0)


def add_kind_parsers(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, (_, help_text) in KINDS.items():
        p = sub.add_parser(kind, help=help_text, description=help_text)
        kind_module(kind).add_arguments(p)


@contextlib.contextmanager
def distributed_context(device_name: str = "auto"):
    """Yields (rank, world_size, device). Under torchrun (WORLD_SIZE > 1) it joins the process group:
    NCCL with one GPU per process when CUDA is there, gloo on the CPU otherwise."""
    import torch

    from .paired import pick_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield 0, 1, pick_device(device_name)
        return
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield rank, world, device
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    from ..dataset_tools.errors import VoxliftError

    parser = argparse.ArgumentParser(prog="python -m voxlift.backend.train", description=__doc__.split("\n")[0])
    add_kind_parsers(parser)
    args = parser.parse_args(argv)
    try:
        return run_kind(args)
    except VoxliftError as exc:
        print(f"voxlift: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
