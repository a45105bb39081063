"""Cross-autoencoder pre-training for the CycleGAN's generators.

    voxlift train autoencoder --data DATASET --out RUN [--steps N | --max-minutes M] [--resume]
    voxlift train cyclegan --data DATASET --out RUN2 --init-from RUN
    torchrun --nproc-per-node N -m voxlift.backend.train autoencoder ...   (as train cyclegan: gradients averaged)

Each generator of the CycleGAN is an encoder of one domain and a decoder of the other. Crossed over, the
halves make two ordinary autoencoders: the 2D encoder of G_2D->3D with the 2D decoder of G_3D->2D on
renderings (L1), and the 3D encoder of G_3D->2D with the 3D decoder of G_2D->3D on grids (weighted BCE).
Training them teaches every half to read or draw its own domain before the CycleGAN joins them. They see
the same two disjoint domains the CycleGAN will (same seed and --pairing): still no pair, ever.

But the CycleGAN joins halves that never met: the 3D decoder then reads the image encoder's codes, which two
independent autoencoders put anywhere (measured: the crossed G_2D->3D then draws nearly empty grids,
validation IoU 0.006, and the CycleGAN did not recover in 200 steps). So both encoders' codes are also pulled towards
one distribution (--align, `code_gap`: batch means and standard deviations per code entry, compared between
the two domains' batches, which come from different models): the crossed generator then starts from
plausible grids (validation reports it as crossed_iou@0.3, read on pairs for the report only).
The checkpoint names its tensors as the CycleGAN does (model.enc2d.*, ...), so --init-from loads them as is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..dataset_tools.dataset import open_dataset
from . import checkpoint as ckpt
from .cyclegan import SPECTRAL, _check, add_generators_argument, generator_halves, resolve_generators
from .losses import positive_weight, voxel_loss
from .metrics import iou
from .networks import NORMS, add_decoder_head_argument
from .train import (
    add_bf16_argument,
    average_gradients,
    broadcast_state,
    check_in_step,
    distributed_context,
    mean_over_processes,
    slowest,
    use_bf16,
)
from .unpaired_data import PAIRINGS, Prefetcher, UnpairedSampler, load_pairs, split_domains

KIND = "autoencoder"


class CrossAutoencoders(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        for name, module in generator_halves(config).items():
            setattr(self, name, module)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dec2d(self.enc2d(x)))

    def voxels(self, y: torch.Tensor) -> torch.Tensor:
        return self.dec3d(self.enc3d(y))


def code_gap(a, b) -> torch.Tensor:
    """How far apart two batches of codes lie as distributions (no pairing between them): the squared
    differences of their means and standard deviations over the batch, per code entry, averaged. Codes are
    tensors or tuples of tensors (projective generators: (F, z)); they come from disjoint models."""
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    gaps = [
        ((u.mean(0) - v.mean(0)) ** 2).mean()
        + ((u.std(0, correction=0) - v.std(0, correction=0)) ** 2).mean()
        for u, v in zip(a, b)
    ]  # correction 0: a batch of one has spread 0, not NaN
    return sum(gaps) / len(gaps)


def add_arguments(p: argparse.ArgumentParser) -> None:
    ckpt.add_run_arguments(p, "training steps (default 1000 unless --max-minutes)")
    p.add_argument("--pairing", default="disjoint", choices=PAIRINGS, help="as for train cyclegan")
    p.add_argument("--views", type=int, nargs="+", help="only these views' renderings (default: every view)")
    p.add_argument("--categories", nargs="+", help="train on these categories only")
    p.add_argument(
        "--input-size", type=int, help="resize images to this (default: the dataset's size, at most 64)"
    )
    p.add_argument("--latent-dim", type=int, default=256)
    p.add_argument("--encoder-width", type=int, default=16)
    p.add_argument("--decoder-width", type=int, default=8)
    add_decoder_head_argument(p)
    add_generators_argument(p)
    p.add_argument("--norm", default="batch", choices=NORMS)
    p.add_argument(
        "--spectral",
        default="critics",
        choices=SPECTRAL,
        help="as for train cyclegan: only 'all' changes the generators",
    )
    p.add_argument("--pos-weight", type=float, help="occupied voxels' weight (default: from their share)")
    p.add_argument(
        "--align",
        type=float,
        default=10.0,
        help="weight of the code gap: pulls the two encoders' codes towards one distribution, so that "
        "each decoder can read the other domain's codes when the CycleGAN crosses them "
        "(default 10; 0: two independent autoencoders)",
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--explode", type=float, default=1e4)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--val-samples", type=int, default=256)
    add_bf16_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")


def config_from_args(args, ds) -> dict:
    kind, camera = resolve_generators(args.generators, ds, args.input_size or min(ds.image_size, 64))
    return {
        "kind": KIND,
        "version": 1,
        "data": str(Path(args.data).resolve()),
        "image_size": ds.image_size,
        "generators": kind,
        "camera": camera,
        "input_size": args.input_size or min(ds.image_size, 64),
        "resolution": ds.resolution,
        "viewer_centred": True,
        "views": args.views,
        "categories": args.categories,
        "latent_dim": args.latent_dim,
        "encoder_width": args.encoder_width,
        "decoder_width": args.decoder_width,
        "decoder_head": args.decoder_head,
        "norm": args.norm,
        "spectral": args.spectral,
        "pairing": args.pairing,
        "pos_weight": args.pos_weight,
        "align": args.align,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "explode": args.explode,
        "seed": args.seed,
    }


def main(args) -> int:
    with distributed_context(args.device) as (rank, world, device):
        return train(args, device, rank=rank, world=world)


@torch.no_grad()
def validate(model: CrossAutoencoders, ds, split: str, config: dict, device, limit: int) -> dict:
    images, grids, _ = load_pairs(
        ds, split, config["input_size"], limit, config["views"], config["categories"]
    )
    model.eval()
    l1, probs, crossed = [], [], []
    for i in range(0, len(images), 64):
        x, y = images[i : i + 64].to(device), grids[i : i + 64].to(device)
        l1.append(float((model.images(x) - x).abs().mean()) * len(x))
        probs.append(torch.sigmoid(model.voxels(y)).cpu())
        crossed.append(torch.sigmoid(model.dec3d(model.enc2d(x))).cpu())
    model.train()
    # crossed: G_2D->3D as the CycleGAN starts it (read on pairs here, for the report only; training never is)
    return {
        "image_l1": sum(l1) / len(images),
        "voxel_iou@0.5": float(iou(torch.cat(probs), grids, (0.5,)).mean()),
        "crossed_iou@0.3": float(iou(torch.cat(crossed), grids, (0.3,)).mean()),
    }


def train(args, device: torch.device, stop_after: int | None = None, rank: int = 0, world: int = 1) -> int:
    out = Path(args.out)
    main_process = rank == 0
    last_path, resuming = ckpt.resume_state(out, args.resume)
    ds = open_dataset(args.data)
    tensors, meta = ckpt.load_checkpoint(last_path, kinds=(KIND,)) if resuming else (None, None)
    config = meta["config"] if resuming else config_from_args(args, ds)
    seed = config["seed"]
    torch.manual_seed(seed)
    domains = split_domains(ds, "train", config["pairing"], seed, config["categories"])
    sampler = UnpairedSampler(ds, domains, config["batch_size"], seed, config["input_size"], config["views"])
    if config["pos_weight"] is None:
        config["pos_weight"] = positive_weight(sampler.voxel_occupancy())
    if device.type == "cuda":  # the CPU draws the next batches while the GPU trains (same batches either way)
        sampler = Prefetcher(sampler, stride=world)
    val_split = "val" if len(ds.indices("val", config["categories"])) >= 2 else "train"
    model = CrossAutoencoders(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    step, elapsed, best = 0, 0.0, math.inf
    steps_total = args.steps if args.steps is not None else (None if args.max_minutes else 1000)
    budget_s = args.max_minutes * 60 if args.max_minutes is not None else None
    if resuming:
        ckpt.load_module_state(model, tensors, "model.", last_path)
        opt.load_state_dict(ckpt.unflatten_optimizer(tensors, meta["optimizer"]))
        step, elapsed, best = meta["step"], meta["elapsed"], meta["best"]
        if args.steps is None and args.max_minutes is None:
            steps_total, budget_s = meta["steps_total"], meta["budget_s"]
    elif main_process:
        ckpt.write_config(out, config)
    broadcast_state(model, world)
    amp = use_bf16(args.bf16, device)
    log = open(out / "log.jsonl", "a") if main_process else open(os.devnull, "w")  # noqa: SIM115 (closed below)

    def save_last():
        if not main_process:
            return
        t_opt, info = ckpt.flatten_optimizer(opt.state_dict())
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        ckpt.save_checkpoint(
            last_path,
            {**state, **t_opt},
            {
                "config": config,
                "step": step,
                "elapsed": elapsed,
                "best": best,
                "optimizer": info,
                "steps_total": steps_total,
                "budget_s": budget_s,
            },
        )

    def val():
        nonlocal best
        if not main_process:
            return None
        s = validate(model, ds, val_split, config, device, args.val_samples)
        # One number to pick the best by: both reconstructions' errors, each on its own 0..1 scale.
        score = s["image_l1"] / 2 + (1 - s["voxel_iou@0.5"])
        if score < best:
            best = score
            state = {f"model.{k}": v for k, v in model.state_dict().items()}
            ckpt.save_checkpoint(out / ckpt.BEST, state, {"config": config, "step": step, "val": s})
        log.write(json.dumps({"step": step, "val": s}) + "\n")
        log.flush()
        return s

    bar = None
    if not args.quiet and main_process:
        from tqdm import tqdm

        bar = tqdm(total=steps_total, initial=step, unit="step", dynamic_ncols=True, desc="train autoencoder")
    model.train()
    t_start = time.time() - elapsed
    try:
        while True:
            progress = max(
                step / steps_total if steps_total else 0.0,
                (time.time() - t_start) / budget_s if budget_s else 0.0,
            )
            if budget_s:
                progress = slowest(progress, world, device)
            if progress >= 1.0:
                break
            x, _, y, _ = sampler.draw(step * world + rank)
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                code_x, code_y = model.enc2d(x), model.enc3d(y)
                image, grid = torch.tanh(model.dec2d(code_x)), model.dec3d(code_y)
            code_x = tuple(c.float() for c in code_x) if isinstance(code_x, tuple) else code_x.float()
            code_y = tuple(c.float() for c in code_y) if isinstance(code_y, tuple) else code_y.float()
            losses = {
                "image_l1": F.l1_loss(image.float(), x),
                "voxel_bce": voxel_loss(grid.float(), y, "weighted-bce", config["pos_weight"]),
            }
            if config.get("align", 0) > 0:
                losses["code_gap"] = code_gap(code_x, code_y)
            # runs from before --align had none
            total = (
                losses["image_l1"] + losses["voxel_bce"] + config.get("align", 0) * losses.get("code_gap", 0)
            )
            losses = mean_over_processes({**losses, "loss": total}, world)
            _check(losses, step, config["explode"], out)
            del losses["loss"]
            opt.zero_grad(set_to_none=True)
            total.backward()
            average_gradients(list(model.parameters()), world)
            opt.step()
            broadcast_state(model, world, buffers_only=True)
            step += 1
            elapsed = time.time() - t_start
            if step % 10 == 0 or step == 1:
                log.write(
                    json.dumps({"step": step, **{k: round(float(v.detach()), 5) for k, v in losses.items()}})
                    + "\n"
                )
                log.flush()
            if bar is not None:
                bar.update(1)
            if step % args.val_every == 0:
                val()
                save_last()
            if stop_after is not None and step >= stop_after:
                if step % args.val_every != 0:
                    save_last()
                return 0
        check_in_step(model, world, out)
        if step % args.val_every != 0 or step == 0:
            val()
            save_last()
    except KeyboardInterrupt:
        save_last()
        raise
    finally:
        if isinstance(sampler, Prefetcher):
            sampler.close()
        if bar is not None:
            bar.close()
        log.close()
    if not main_process:
        return 0
    print(
        f"trained {step} steps in {elapsed / 60:.1f} min; checkpoints in {out} "
        f"(start a CycleGAN from them: voxlift train cyclegan ... --init-from {out})"
    )
    return 0
