"""Where training runs: the device, several processes (torchrun), and bf16 autocast.

torch is imported inside the functions, so `voxlift train --help` and the add-on's panel need none.

    pick_device("auto")                      CUDA when present, else the CPU
    with distributed_context("auto") as (rank, world, device): ...
                                             under torchrun (WORLD_SIZE > 1) it joins the process group

The unpaired models (cyclegan, autoencoder) average their gradients by hand (`average_gradients`): DDP's hooks
do not go with the WGAN gradient penalty's double backward. Each helper is a no-op for one process.
"""

from __future__ import annotations

import argparse
import contextlib
import os

DEVICES = ("auto", "cpu", "cuda")  # what --device takes, everywhere


def pick_device(name: str):
    """torch.device for --device (auto: CUDA when present); asking for a CUDA that is not there is an error."""
    import torch

    from ..dataset_tools.errors import VoxliftError

    if name == "cuda" and not torch.cuda.is_available():
        raise VoxliftError("--device cuda: no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def add_device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="where to run (auto: CUDA when present, else the CPU)",
    )


@contextlib.contextmanager
def distributed_context(device_name: str = "auto"):
    """Yields (rank, world_size, device). Under torchrun (WORLD_SIZE > 1) it joins the process group:
    NCCL with one GPU per process when CUDA is there, gloo on the CPU otherwise."""
    import torch

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
    """Every process must hold the same parameters (averaged gradients, one update): a VoxliftError when not."""
    if world == 1:
        return
    import torch

    from ..dataset_tools.errors import VoxliftError

    # parameters only: DDP's batch-norm statistics follow process 0 at the start of each forward, so after
    # the last step each process holds its own (process 0 alone writes them)
    flat = torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])
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
