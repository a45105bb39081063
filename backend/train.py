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


# -- several processes without DDP -------------------------------------------------------------------------
# The unpaired models (cyclegan, autoencoder) average their gradients by hand: DDP's hooks do not go with the
# WGAN gradient penalty's double backward. Each is a no-op for one process; torch is imported inside, as in
# distributed_context, so that `voxlift train --help` needs none.


def average_gradients(params, world: int) -> None:
    """All-reduce the gradients of `params` (one flat buffer) and divide by the number of processes."""
    if world == 1:
        return
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_state(module, world: int, buffers_only: bool = False) -> None:
    """Every process takes process 0's buffers (and parameters unless `buffers_only`)."""
    if world == 1:
        return
    import torch

    for t in list(module.buffers()) if buffers_only else list(module.state_dict().values()):
        torch.distributed.broadcast(t, 0)


def mean_over_processes(values: dict, world: int) -> dict:
    """The processes' mean of each loss (for the checks and the log): a NaN in any process stops every one."""
    if world == 1:
        return values
    import torch

    keys = list(values)
    t = torch.stack([values[k].detach().float() for k in keys])
    torch.distributed.all_reduce(t)
    return dict(zip(keys, t / world))


def slowest(progress: float, world: int, device) -> float:
    """The largest `progress` (share of a clock budget) over the processes, so that all stop at one step."""
    if world == 1:
        return progress
    import torch

    t = torch.tensor([progress], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t)


def check_in_step(model, world: int, out) -> None:
    """Every process must hold the same weights (averaged gradients, one Adam update): a VoxliftError when not."""
    if world == 1:
        return
    import torch

    from ..dataset_tools.errors import VoxliftError

    flat = torch.cat(
        [t.detach().reshape(-1).double() for t in model.state_dict().values() if t.is_floating_point()]
    )
    mine = torch.stack([flat.sum(), (flat * flat).sum()])
    first = mine.clone()
    torch.distributed.broadcast(first, 0)
    apart = torch.tensor(
        [0.0 if torch.allclose(mine, first, rtol=1e-9, atol=0.0) else 1.0], device=mine.device
    )
    torch.distributed.all_reduce(apart, op=torch.distributed.ReduceOp.MAX)
    if float(apart):
        raise VoxliftError(f"{out}: the {world} training processes no longer hold the same weights")


def add_bf16_argument(
    p: argparse.ArgumentParser, help: str = "bf16 autocast of the forward passes (auto: on CUDA only)"
) -> None:
    p.add_argument("--bf16", default="auto", choices=("auto", "on", "off"), help=help)


def use_bf16(choice: str, device) -> bool:
    """--bf16: auto turns it on for CUDA only; on tries it on the CPU too."""
    return device.type == "cuda" if choice == "auto" else choice == "on"


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
