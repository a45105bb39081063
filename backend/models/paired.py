"""The paired model: one grayscale rendering -> a 32^3 occupancy grid, trained on aligned (image, grid) pairs.

    voxlift train paired --data DATASET --out RUN [--steps N | --max-minutes M] [--batch-size B] ...
    torchrun --nproc-per-node N -m voxlift.backend.train paired ...      (DDP; --batch-size is per process)

Network: paired_net.PairedNet (image encoder + 3D decoder, the image's features lifted into the grid), logits
out. Loss: weighted BCE by default (losses.py). AdamW; the learning rate warms up over --warmup steps (or the
first 5% of the budget, whichever ends first), then follows a cosine of the share of the budget spent;
gradient clipping; bf16 autocast and channels-last on CUDA. Training pictures: compositing.py puts the
renderings on new backgrounds (photographs among them) and changes exposure, blur and noise, so the model
meets pictures as users have them, cut out as inference cuts them out (with the mask model's errors). Validation: IoU on a fixed, spread subset of the val split's
views, in the training frame, at every candidate threshold; the best is the model's threshold, and the best
IoU at it picks best.safetensors. The data order and the augmentation are
functions of the seed and the step, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...dataset_tools.errors import VoxliftError
from .. import checkpoint as ckpt
from ..config import DECODER_HEADS, NORMS, RunConfig, check, one_of, sized
from ..data import Augment, AugmentConfig, ViewDataset, resize_input, run_fields, step_batches
from ..losses import LOSSES, positive_weight, voxel_loss
from ..metrics import iou
from ..networks import add_decoder_head_argument
from ..paired_net import PairedNet
from ..previews import preview
from .base import BaseModel, Validation

# candidate decision thresholds: validation picks the model's own (stored with its checkpoint)
THRESHOLDS = tuple(round(0.2 + 0.05 * k, 2) for k in range(11))
REPORTED = (0.3, 0.4, 0.5)
# pictures are framed by their object's bounding box, its longest side this share of the side (framing.py)
FRAME_FILL = 0.75
WARMUP_SHARE = 0.05  # the warm-up ends after --warmup steps or this share of the budget, whichever is first
LR_FLOOR = 0.02  # the cosine ends at this share of the learning rate
VAL_BATCH = 64


@dataclass(kw_only=True)
class PairedConfig(RunConfig):
    kind: str = "paired"
    latent_dim: int = field(metadata=check(1, 8192))
    encoder_width: int = field(metadata=check(1, 512))
    decoder_width: int = field(metadata=check(1, 512))
    norm: str = field(metadata=check(choices=NORMS))
    decoder_head: str = one_of("deconv", DECODER_HEADS)  # runs from before the option: transposed convs
    lift: bool = False  # runs from before the option: the latent vector alone
    loss: str = one_of("weighted-bce", LOSSES)
    pos_weight: float = sized(1.0, 0.0, 1e4)
    augment: bool = True  # training pictures (compositing.py), shifts and scales
    framing: str = one_of("render", ("render", "bbox"))  # runs from before: as the renderer framed them
    lr: float = sized(2e-3, 0.0, 10.0)
    weight_decay: float = sized(1e-4, 0.0, 10.0)
    warmup: int = sized(100, 0, 10**9)
    clip: float = sized(1.0, 0.0, 1e9)

    def check(self, source) -> None:
        super().check(source)
        if self.lift and (self.input_size < 16 or self.resolution < 16):
            raise VoxliftError(f"{source}: config lift needs images and grids of at least 16")


def add_arguments(p) -> None:
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
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps (at most 5%% of the budget)")
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping")
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="train on the renderings as they are: no new backgrounds, exposure, blur, shifts or scales",
    )
    p.add_argument("--val-samples", type=int, default=512, help="val views used (a fixed, spread subset)")
    p.add_argument(
        "--workers",
        type=int,
        help="DataLoader worker processes (default: none on the CPU, where reading a view costs next to nothing "
        "beside a training step, and a worker could hang a Ctrl-C; 4 on CUDA)",
    )


def lr_factor(step: int, progress: float, warmup: int) -> float:
    """The learning rate's share at `step`, `progress` of the budget spent: warm-up, then a cosine."""
    warm = 1.0 if warmup <= 0 else min(1.0, max((step + 1) / warmup, progress / WARMUP_SHARE))
    return warm * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def build_network(config: PairedConfig) -> PairedNet:
    return PairedNet(
        config.input_size,
        config.resolution,
        config.latent_dim,
        config.encoder_width,
        config.decoder_width,
        config.norm,
        config.decoder_head,
        config.lift,
    )


class PairedModel(BaseModel):
    kind = "paired"
    Config = PairedConfig
    default_steps = 2000
    add_arguments = staticmethod(add_arguments)

    @classmethod
    def config_from_args(cls, args, ds) -> PairedConfig:
        from ..device import pick_device

        train_models = ds.indices("train", args.categories)
        if len(train_models) == 0:
            raise VoxliftError(
                f"{args.data}: no training models"
                + (f" of categories {args.categories}" if args.categories else "")
            )
        fields = run_fields(args, ds, args.categories)
        cuda = pick_device(args.device).type == "cuda"
        return PairedConfig(
            **{**fields, "fill": FRAME_FILL},  # pictures are framed so, in training and in use
            input_size=args.input_size or min(ds.image_size, 64),
            latent_dim=args.latent_dim,
            encoder_width=args.encoder_width,
            decoder_width=args.decoder_width,
            decoder_head=args.decoder_head,
            lift=not args.no_lift and not args.object_frame,
            norm=args.norm,
            viewer_centred=not args.object_frame,
            loss=args.loss,
            pos_weight=args.pos_weight or positive_weight(fields["occupancy"]),
            augment=not args.no_augment,
            framing="bbox",
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup=args.warmup,
            clip=args.clip,
            batch_size=args.batch_size or (64 if cuda else 16),
        )

    def __init__(self, config: PairedConfig, ds, ctx):
        super().__init__(config, ds, ctx)
        device, cuda = ctx.device, ctx.device.type == "cuda"
        self.model = build_network(config).to(device)
        if ctx.amp:
            self.model.encoder.to(
                memory_format=torch.channels_last
            )  # the decoder is channels-last 3D already
        self.net = self.model
        if ctx.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if cuda else None
            )
        self.optim = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        train_models = ds.indices("train", config.categories)
        val_models = ds.indices("val", config.categories)
        if len(val_models) == 0:
            val_models = train_models[: max(1, len(train_models) // 10)]  # tiny datasets: watch training IoU
        self.train_set = ViewDataset(ds.path, train_models)
        self.val_set = ViewDataset(ds.path, val_models)
        aug = AugmentConfig(
            viewer_centred=config.viewer_centred,
            background=config.background,
            framing=config.framing,
            fill=config.fill,
        )
        if not config.augment:
            aug.pictures, aug.shift, aug.scale = False, 0.0, 0.0
        self.augment = Augment(aug, seed=config.seed * 1000 + ctx.rank)
        self.workers = 4 if cuda else 0
        self.val_samples = 512
        self._batches = None
        self._lr = config.lr

    def configure(self, args) -> None:
        if args.workers is not None:
            self.workers = args.workers
        self.val_samples = args.val_samples

    def lr(self) -> float:
        return self._lr

    def train_step(self, step: int, progress: float) -> dict:
        cfg, ctx = self.config, self.ctx
        if self._batches is None:  # the loader starts where a resumed run stopped
            self._batches = step_batches(self.train_set, cfg.batch_size, cfg.seed, step, ctx, self.workers)
        x, target = self.augment(next(self._batches), ctx.device, step=step, size=cfg.input_size)
        x = resize_input(x, cfg.input_size)
        if ctx.amp:
            x = x.contiguous(memory_format=torch.channels_last)
        self._lr = cfg.lr * lr_factor(step, progress, cfg.warmup)
        for group in self.optim.param_groups:
            group["lr"] = self._lr
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=ctx.amp):
            logits = self.net(x)
        loss = voxel_loss(logits, target, cfg.loss, cfg.pos_weight)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
        self.optim.step()
        return {"loss": loss.detach(), "grad_norm": grad_norm.detach()}

    @torch.no_grad()
    def validate(self) -> Validation:
        """IoU on the val views at every candidate threshold: the best is the model's own (evaluate and
        reconstruct use it)."""
        cfg, ctx = self.config, self.ctx
        n = len(self.val_set)
        items = np.unique(np.linspace(0, n - 1, min(self.val_samples, n)).astype(int))
        self.model.eval()
        scores, first = [], None
        for lo in range(0, len(items), VAL_BATCH):
            batch = torch.utils.data.default_collate(
                [self.val_set[int(i)] for i in items[lo : lo + VAL_BATCH]]
            )
            x, target = self.augment(batch, ctx.device, train=False)
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=ctx.amp):
                logits = self.model(resize_input(x, cfg.input_size))
            probs = torch.sigmoid(logits.float())
            scores.append(iou(probs, target, THRESHOLDS))
            if first is None:
                first = (x[:4], probs[:4], target[:4])
        self.model.train()
        per = np.concatenate(scores).mean(0)
        best = int(np.argmax(per))
        out = {f"iou@{t:g}": float(per[k]) for k, t in enumerate(THRESHOLDS) if t in REPORTED}
        out.update({"threshold": float(THRESHOLDS[best]), "iou": float(per[best])})
        return Validation(out, float(per[best]), {"input|predicted|true": preview(*first)})

    def optimizers(self) -> dict:
        return {"optimizer": self.optim}

    def close(self) -> None:
        self._batches = None  # stops the loader's workers

    @classmethod
    def image_to_grid(cls, config: PairedConfig, tensors, path) -> nn.Module:
        model = build_network(config)
        ckpt.load_module_state(model, tensors, "model.", path)
        return model


MODEL = PairedModel
