"""The paired model: one grayscale rendering -> a 32^3 occupancy grid, trained on aligned (image, grid) pairs.

    voxlift train paired --data DATASET --out RUN [--steps N | --max-minutes M] [--batch-size B]
                         [--device auto|cpu|cuda] [--resume]
    torchrun --nproc-per-node N -m voxlift.backend.train paired ...      (DDP; --batch-size is per process)

Model: networks.ImageEncoder (2D convolutions to a latent vector) + networks.VoxelDecoder (3D transposed
convolutions), logits out. Loss: weighted BCE by default (see losses.py). AdamW, linear warm-up then cosine
decay, gradient clipping; bf16 autocast and channels-last on CUDA. Every --val-every steps: IoU on (a fixed
subset of) the val split, in the training frame; best.safetensors keeps the best IoU@0.3, last.safetensors
everything needed to resume exactly (step, optimiser, scheduler, elapsed time; the data order and the
augmentation are functions of the step). TensorBoard logs go to RUN/tb.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..dataset_tools.dataset import open_dataset
from ..dataset_tools.errors import VoxliftError
from . import checkpoint as ckpt
from .data import Augment, AugmentConfig, ViewDataset, dataset_statistics, make_loader
from .losses import LOSSES, positive_weight, voxel_loss
from .metrics import iou
from .networks import NORMS, ImageEncoder, VoxelDecoder, add_decoder_head_argument, decoder_head
from .train import add_bf16_argument, use_bf16

KIND = "paired"


class PairedNet(nn.Module):
    """[B, 1, S, S] images in [-1, 1] -> logits [B, R, R, R].

    With `lift` (viewer-centred runs' default), the encoder's 8x8 feature map is also lifted into the 3D
    decoder's 8^3 block: a 1x1 convolution gives every image cell a column of features along the viewing
    direction, added to the decoder's own (image columns -> x, rows -> z flipped, depth -> y: the viewer
    frame seen from azimuth 0, camera on -Y). Where a leg or a rod is in the image survives this path,
    while the latent vector alone blurs it."""

    LIFT = 8  # the lifted block's side (image cells and 3D cells)

    def __init__(
        self,
        image_size: int,
        resolution: int,
        latent_dim: int,
        encoder_width: int,
        decoder_width: int,
        norm: str,
        decoder_head: str = "deconv",
        lift: bool = False,
    ):
        super().__init__()
        self.encoder = ImageEncoder(image_size, latent_dim, encoder_width, norm)
        self.decoder = VoxelDecoder(resolution, latent_dim, decoder_width, norm, head=decoder_head)
        self.lift = None
        if lift:
            if image_size < 2 * self.LIFT or resolution < 2 * self.LIFT:
                raise ValueError(
                    f"lift needs images and grids of at least {2 * self.LIFT} (got {image_size}, "
                    f"{resolution})"
                )
            # encoder blocks are (conv, norm, activation): the map is 8x8 after log2(S / 8) of them
            self.enc_cut = 3 * round(math.log2(image_size / self.LIFT))
            enc_ch = self.encoder.features[self.enc_cut - 3].out_channels
            # decoder: (norm, relu), then (deconv, norm, relu) blocks from 4^3: 8^3 after the first block
            self.dec_cut = 5
            self.dec_ch = self.decoder.net[2].out_channels
            self.lift = nn.Conv2d(enc_ch, self.dec_ch * self.LIFT, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.decoder
        if self.lift is None:
            z = self.encoder(x)
            # channels-last 3D activations: on the CPU the 3D convolutions run several times faster so
            # (a Conv3d to one channel in the default layout takes a slow path: 8x slower measured here).
            return d.finish(d.features(z).contiguous(memory_format=torch.channels_last_3d)).squeeze(1)
        e = self.encoder
        f8 = e.features[: self.enc_cut](x)
        z = e.fc(torch.flatten(e.features[self.enc_cut :](f8), 1))
        h = d.net[: self.dec_cut](d.features(z).contiguous(memory_format=torch.channels_last_3d))
        h = h + lift_to_grid(self.lift(f8), self.dec_ch).contiguous(memory_format=torch.channels_last_3d)
        return d.shuffle(d.net[self.dec_cut :](h)).squeeze(1)


def lift_to_grid(columns: torch.Tensor, channels: int) -> torch.Tensor:
    """[B, C*D, n, n] image-aligned feature columns -> [B, C, n, D, n] in the viewer frame's [x, y, z]:
    image column -> x, depth -> y (away from the camera), image row -> z flipped (row 0 is the top)."""
    b, cd, n, _ = columns.shape
    return columns.view(b, channels, cd // channels, n, n).permute(0, 1, 4, 2, 3).flip(-1)


def build_model(config: dict) -> PairedNet:
    # Runs from before these options: "deconv" head (decoder_head), no lift.
    model = PairedNet(
        config["input_size"],
        config["resolution"],
        config["latent_dim"],
        config["encoder_width"],
        config["decoder_width"],
        config["norm"],
        decoder_head(config),
        config.get("lift", False),
    )
    model.decoder.to(memory_format=torch.channels_last_3d)
    return model


def resize_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """Network input [B, 1, S, S] -> [B, 1, size, size] (area averaging when shrinking)."""
    if x.shape[-1] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    return torch.nn.functional.interpolate(x, size=(size, size), mode=mode)


# ---------------------------------------------------------------------------------------------- arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    ckpt.add_run_arguments(
        p,
        "training steps (default 2000 unless --max-minutes)",
        "train for this long (the schedule is fitted to it)",
    )
    p.add_argument("--batch-size", type=int, help="per process (default 16 on the CPU, 64 on CUDA)")
    p.add_argument("--categories", nargs="+", help="train on these categories only (e.g. chair)")
    p.add_argument(
        "--object-frame",
        action="store_true",
        help="predict grids in the object frame (default: viewer-centred, rotated by the azimuth)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        help="resize images to this (default: the dataset's size, at most 64: the 3D decoder, not the "
        "image, limits a 32^3 grid, and 64 px quarters the encoder's cost)",
    )
    p.add_argument("--latent-dim", type=int, default=256)
    p.add_argument("--encoder-width", type=int, default=16)
    p.add_argument("--decoder-width", type=int, default=16)
    add_decoder_head_argument(p)
    p.add_argument(
        "--no-lift",
        action="store_true",
        help="the latent vector alone joins encoder and decoder (default: the image's 8x8 features "
        "are also lifted into the decoder's 8^3 block, in viewer-centred runs)",
    )
    p.add_argument("--norm", default="batch", choices=NORMS)
    p.add_argument("--loss", default="weighted-bce", choices=LOSSES)
    p.add_argument(
        "--pos-weight",
        type=float,
        help="weight of occupied voxels (default: from their share in the training set)",
    )
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping")
    p.add_argument("--no-augment", action="store_true", help="no random backgrounds, shifts or scales")
    p.add_argument("--val-every", type=int, default=250, help="steps between validations and checkpoints")
    p.add_argument("--val-samples", type=int, default=512, help="val views used (a fixed, spread subset)")
    p.add_argument("--workers", type=int, help="DataLoader workers (default: 1 on the CPU, 4 on CUDA)")
    add_bf16_argument(p, "bf16 autocast + channels-last (auto: on CUDA only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args, ds, train_models: np.ndarray) -> dict:
    stats = dataset_statistics(ds, train_models)
    input_size = args.input_size or min(ds.image_size, 64)
    return {
        "kind": KIND,
        "version": 1,
        "data": str(Path(args.data).resolve()),
        "image_size": ds.image_size,
        "input_size": input_size,
        "resolution": ds.resolution,
        "latent_dim": args.latent_dim,
        "encoder_width": args.encoder_width,
        "decoder_width": args.decoder_width,
        "decoder_head": args.decoder_head,
        "lift": not args.no_lift and not args.object_frame,
        "norm": args.norm,
        "viewer_centred": not args.object_frame,
        "categories": args.categories,
        "loss": args.loss,
        "pos_weight": args.pos_weight or positive_weight(stats["occupancy"]),
        "occupancy": stats["occupancy"],
        "background": stats["background"],
        "fill": stats["fill"],
        "augment": not args.no_augment,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "warmup": args.warmup,
        "clip": args.clip,
        "seed": args.seed,
        "batch_size": args.batch_size or (64 if pick_device(args.device).type == "cuda" else 16),
    }


# ---------------------------------------------------------------------------------------------- training


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise VoxliftError("--device cuda: no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


class _Schedule:
    """LambdaLR's multiplier; `total` is the step budget (--steps, or fitted to --max-minutes as it goes)."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.warmup, self.total)


def main(args) -> int:
    from .train import distributed_context

    with distributed_context(args.device) as (rank, world, device):
        return _train(args, rank, world, device)


def _train(args, rank: int, world: int, device: torch.device) -> int:
    torch.manual_seed(args.seed)
    out = Path(args.out)
    last_path, resuming = ckpt.resume_state(out, args.resume)
    ds = open_dataset(args.data)
    if resuming:
        tensors, meta = ckpt.load_checkpoint(last_path, kinds=(KIND,))
        config = meta["config"]
        check_config(config, last_path)
    else:
        tensors, meta = None, None
        train_models = ds.indices("train", args.categories)
        if len(train_models) == 0:
            raise VoxliftError(
                f"{args.data}: no training models"
                + (f" of categories {args.categories}" if args.categories else "")
            )
        config = config_from_args(args, ds, train_models)
    train_models = ds.indices("train", config["categories"])
    val_models = ds.indices("val", config["categories"])
    if len(val_models) == 0:
        val_models = train_models[: max(1, len(train_models) // 10)]  # tiny datasets: watch training IoU

    model = build_model(config).to(device)
    cuda = device.type == "cuda"
    # bf16 autocast and channels-last images: on CUDA by default; `--bf16 on` tries them on the CPU too.
    amp = use_bf16(args.bf16, device)
    if amp:
        model.encoder.to(memory_format=torch.channels_last)  # the decoder is channels-last 3D already
    optim = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    if args.steps is None and args.max_minutes is None:
        args.steps = 2000
    schedule = _Schedule(config["warmup"], args.steps or 10**9)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, schedule)
    step, elapsed, best = 0, 0.0, -1.0
    if resuming:
        ckpt.load_module_state(model, tensors, "model.", last_path)
        try:
            optim.load_state_dict(ckpt.unflatten_optimizer(tensors, meta["optimizer"]))
            sched.load_state_dict(meta["scheduler"])
            schedule.total = int(meta["schedule_total"])
            step, elapsed, best = int(meta["step"]), float(meta["elapsed"]), float(meta["best"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise VoxliftError(
                f"{last_path}: not a resumable checkpoint (its training state is damaged: "
                f"{exc!r}); train into another --out"
            ) from None
    elif rank == 0:
        ckpt.write_config(out, config)
    timed = args.max_minutes is not None
    budget_s = args.max_minutes * 60 if timed else None
    total = args.steps if not timed else (schedule.total if resuming else None)
    if total is not None:
        schedule.total = total

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    workers = args.workers if args.workers is not None else (4 if cuda else 1)
    train_set = ViewDataset(args.data, train_models)
    loader = make_loader(
        train_set,
        config["batch_size"],
        seed=config["seed"],
        start_step=step,
        rank=rank,
        world=world,
        workers=workers,
        pin_memory=cuda,
    )
    aug_cfg = AugmentConfig(viewer_centred=config["viewer_centred"], background=config["background"])
    if not config["augment"]:
        aug_cfg.random_background = aug_cfg.shift = aug_cfg.scale = 0.0
    augment = Augment(aug_cfg, seed=config["seed"] * 1000 + rank)
    val_set = ViewDataset(args.data, val_models)
    val_items = np.unique(np.linspace(0, len(val_set) - 1, min(args.val_samples, len(val_set))).astype(int))

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=step if resuming else None)
    bar = None
    if rank == 0 and not args.quiet:
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            initial=step,
            unit="step",
            dynamic_ncols=True,
            desc=f"train paired ({device.type}, {world} proc)",
        )

    def save_last():
        t_opt, info = ckpt.flatten_optimizer(optim.state_dict())
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        ckpt.save_checkpoint(
            last_path,
            {**state, **t_opt},
            {
                "config": config,
                "step": step,
                "elapsed": elapsed,
                "best": best,
                "processes": world,
                "optimizer": info,
                "scheduler": sched.state_dict(),
                "schedule_total": schedule.total,
            },
        )

    def validate():
        nonlocal best
        probs, scores = None, []
        model.eval()
        with torch.no_grad():
            for lo in range(0, len(val_items), 64):
                items = [val_set[int(i)] for i in val_items[lo : lo + 64]]
                batch = torch.utils.data.default_collate(items)
                x, target = augment(batch, device, train=False)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = model(resize_input(x, config["input_size"]))
                probs = torch.sigmoid(logits.float())
                scores.append(iou(probs, target, (0.3, 0.5)))
                if lo == 0:
                    first = (x[:4], probs[:4], target[:4])
        model.train()
        s = np.concatenate(scores).mean(0)
        writer.add_scalar("val/iou@0.3", s[0], step)
        writer.add_scalar("val/iou@0.5", s[1], step)
        writer.add_image("val/input|predicted|true", preview(*first), step, dataformats="HW")
        if s[0] > best:
            best = float(s[0])
            state = {f"model.{k}": v for k, v in model.state_dict().items()}
            ckpt.save_checkpoint(
                out / ckpt.BEST, state, {"config": config, "step": step, "val_iou@0.3": best}
            )
        return s

    model.train()
    t_start = time.time() - elapsed
    timing_from = None
    first_step = step
    last_val = None
    it = iter(loader)
    try:
        while True:
            if timed and world == 1:
                if time.time() - t_start >= budget_s:
                    break  # one process stops on the clock (past the fitted total the lr stays at its floor)
            elif total is not None and step >= total:
                break  # a step budget, or several processes: they stop together at the fitted total
            batch = next(it)
            x, target = augment(batch, device, step=step, size=config["input_size"])
            x = resize_input(x, config["input_size"])
            if amp:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = net(x)
            loss = voxel_loss(logits, target, config["loss"], config["pos_weight"])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
            optim.step()
            sched.step()
            step += 1
            elapsed = time.time() - t_start
            if timed:
                # Fit the schedule to the time left, from the speed measured since this process's 5th step,
                # every 20 steps (a shared machine's speed changes). The steps, not the clock, decide when,
                # so that every DDP process refits at the same step.
                if timing_from is None and step >= first_step + 5:
                    timing_from = (step, time.time())
                elif timing_from and (step - timing_from[0]) % 20 == 0:
                    rate = (step - timing_from[0]) / max(time.time() - timing_from[1], 1e-6)
                    total = max(step + 1, int(step + rate * (budget_s - elapsed) * 0.97))
                    if world > 1:  # every rank must run the same number of steps
                        t = torch.tensor([total], device=device)
                        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
                        total = int(t)
                    schedule.total = total
                    if bar is not None:
                        bar.total = total
            if rank == 0:
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.4f}", val=last_val or "-")
                if step % 10 == 0 or step == 1:
                    writer.add_scalar("train/loss", loss.item(), step)
                    writer.add_scalar("train/grad_norm", float(gnorm), step)
                    writer.add_scalar("train/lr", sched.get_last_lr()[0], step)
                    writer.add_scalar(
                        "train/samples_per_s", step * config["batch_size"] * world / max(elapsed, 1e-6), step
                    )
                if step % args.val_every == 0:
                    s = validate()
                    last_val = f"{s[0]:.3f}"
                    save_last()
        if rank == 0 and step % args.val_every != 0:
            validate()
            save_last()
    except KeyboardInterrupt:
        if rank == 0:
            save_last()  # `--resume` continues from here
        raise
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    if rank == 0:
        print(
            f"trained {step} steps in {elapsed / 60:.1f} min; best val IoU@0.3 {best:.3f}; "
            f"checkpoints in {out}"
        )
    return 0


def preview(images: torch.Tensor, probs: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Rows of [input | predicted grid | true grid], grids drawn as depth-shaded views from the front."""
    s = images.shape[-1]
    rows = []
    for img, p, t in zip(images, probs, target):
        tiles = [((img[0].float().cpu() + 1) / 2).numpy()]
        for g in (p, t):
            tiles.append(render_grid(g.float().cpu().numpy() > 0.5, s))
        rows.append(np.concatenate(tiles, 1))
    return np.concatenate(rows, 0).clip(0, 1)


def render_grid(grid: np.ndarray, size: int) -> np.ndarray:
    """A [size, size] depth-shaded orthographic view of a boolean grid [x, y, z] seen from the front (-Y)."""
    r = grid.shape[0]
    hit = grid.any(1)  # [x, z]
    first = np.argmax(grid, axis=1)  # nearest occupied y for each (x, z)
    shade = np.where(hit, 1.0 - 0.7 * first / r, 0.0)
    img = shade.T[::-1]  # rows top first: z up
    reps = max(1, size // r)
    img = np.kron(img, np.ones((reps, reps)))
    out = np.zeros((size, size))
    out[: img.shape[0], : img.shape[1]] = img[:size, :size]
    return out


def check_config(config: dict, path) -> None:
    """Refuse sizes no trained model has before allocating anything (a hostile config could ask for TBs)."""

    def power_size(key, lo, hi):
        v = config.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi or v & (v - 1):
            raise VoxliftError(f"{path}: config {key} {v!r} is not a power of two in [{lo}, {hi}]")

    def count(key, lo, hi):
        v = config.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise VoxliftError(f"{path}: config {key} {v!r} is not an integer in [{lo}, {hi}]")

    power_size("input_size", 8, 1024)
    power_size("resolution", 8, 128)
    count("image_size", 1, 4096)
    count("latent_dim", 1, 8192)
    count("encoder_width", 1, 512)
    count("decoder_width", 1, 512)
    if config.get("norm") not in NORMS:
        raise VoxliftError(f"{path}: config norm {config.get('norm')!r} is not one of {NORMS}")


def predictor_network(config: dict, tensors: dict, path) -> nn.Module:
    """The trained network for predict.load_predictor (weights under "model.")."""
    check_config(config, path)
    model = build_model(config)
    ckpt.load_module_state(model, tensors, "model.", path)
    return model
