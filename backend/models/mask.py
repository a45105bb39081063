"""The mask model: where the object is in a picture without alpha (a user's photo), so it can be cut out and
framed before a reconstructing model sees it (framing.py). One model serves every reconstructing model.

    voxlift train mask --data DATASET --out RUN [--steps N | --max-minutes M] [--size 64]

Network: mask_net.MaskNet, a small U-Net. Data: the dataset's renderings turned into photos before framing
(data.Augment.mask_pictures: the object anywhere and at any size, on photographs from the background bank,
noise, shapes, gradients, with another exposure, blur and noise) against their alpha; loss BCE + Dice.
Validation: the found mask's IoU and its bounding box's error (what framing uses) on a fixed draw of val
pictures; the best IoU is kept. voxlift ships one (assets/mask.safetensors, `python build.py starter`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import RunConfig, sized
from ..data import Augment, AugmentConfig, ViewDataset, run_fields, step_batches
from ..device import average_gradients, broadcast_state
from ..mask_net import MaskNet, mask_loss
from ..metrics import iou
from .base import BaseModel, Validation

VAL_BATCH = 64


@dataclass(kw_only=True)
class MaskConfig(RunConfig):
    kind: str = "mask"
    size: int = sized(64, 16, 512, power_of_two=True)  # the network's input side
    width: int = sized(24, 1, 256)
    # the first shipped mask model's shape (what a config without these fields means); new runs: 2 and True
    stage_convs: int = sized(1, 1, 4)
    full_res_head: bool = False
    lr: float = sized(2e-3, 0.0, 10.0)


def add_arguments(p) -> None:
    p.add_argument("--size", type=int, default=64, help="the pictures' side in px (default 64)")
    p.add_argument("--width", type=int, default=24, help="channels of the U-Net's first stage")
    p.add_argument("--stage-convs", type=int, default=2, help="3x3 convolutions per downward stage")
    p.add_argument(
        "--half-res-head",
        dest="full_res_head",
        action="store_false",
        help="logits at half size, doubled (the first shipped model); default: a last layer at full size",
    )
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--val-samples", type=int, default=256, help="val pictures (a fixed, spread subset)")


def mask_network(config: MaskConfig) -> MaskNet:
    return MaskNet(config.width, config.stage_convs, config.full_res_head)


def box_error(found: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """Per picture, the largest distance between the two masks' bounding-box sides, as a share of the side."""
    out = []
    s = found.shape[-1]
    for f, t in zip(found > 0.5, truth > 0.5, strict=True):
        if not f.any() or not t.any():
            out.append(1.0)
            continue
        box = [torch.nonzero(m.any(axis)).flatten()[[0, -1]] for m in (f, t) for axis in (0, 1)]
        out.append(float(max((box[0] - box[2]).abs().max(), (box[1] - box[3]).abs().max())) / s)
    return np.array(out)


class MaskModel(BaseModel):
    kind = "mask"
    Config = MaskConfig
    default_steps = 4000
    add_arguments = staticmethod(add_arguments)

    @classmethod
    def config_from_args(cls, args, ds) -> MaskConfig:
        return MaskConfig(
            **run_fields(args, ds),
            input_size=args.size,
            size=args.size,
            width=args.width,
            stage_convs=args.stage_convs,
            full_res_head=args.full_res_head,
            lr=args.lr,
            batch_size=args.batch_size,
        )

    def __init__(self, config: MaskConfig, ds, ctx):
        super().__init__(config, ds, ctx)
        self.model = mask_network(config).to(ctx.device)
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=1e-4)
        val = ds.indices("val")
        self.train_set = ViewDataset(ds.path, ds.indices("train"))
        self.val_set = ViewDataset(ds.path, val if len(val) else ds.indices("train")[:8])
        self.augment = Augment(
            AugmentConfig(background=config.background), seed=config.seed * 1000 + ctx.rank
        )
        self.batches, self.val_samples, self._lr = None, 256, config.lr

    def configure(self, args) -> None:
        self.val_samples = args.val_samples

    def lr(self) -> float:
        return self._lr

    def train_step(self, step: int, progress: float) -> dict:
        cfg, ctx = self.config, self.ctx
        if self.batches is None:
            self.batches = step_batches(self.train_set, cfg.batch_size, cfg.seed, step, ctx)
        pictures, alpha = self.augment.mask_pictures(next(self.batches), ctx.device, step, cfg.size)
        self._lr = cfg.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))
        for group in self.optim.param_groups:
            group["lr"] = self._lr
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=ctx.amp):
            logits = self.model(pictures)
        loss = mask_loss(logits, alpha)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        # under torchrun each process holds its own copy: gradients averaged, buffers (batch norm) as process 0's
        average_gradients(list(self.model.parameters()), ctx.world)
        self.optim.step()
        broadcast_state(self.model, ctx.world, buffers_only=True)
        return {"loss": loss.detach()}

    @torch.no_grad()
    def validate(self) -> Validation:
        n = len(self.val_set)
        items = np.unique(np.linspace(0, n - 1, min(self.val_samples, n)).astype(int))
        self.model.eval()
        ious, boxes = [], []
        for lo in range(0, len(items), VAL_BATCH):
            batch = torch.utils.data.default_collate(
                [self.val_set[int(i)] for i in items[lo : lo + VAL_BATCH]]
            )
            pictures, alpha = self.augment.mask_pictures(batch, self.ctx.device, -1 - lo, self.config.size)
            found = torch.sigmoid(self.model(pictures).float())
            ious.append(iou(found[:, 0], alpha[:, 0], (0.5,))[:, 0])
            boxes.append(box_error(found[:, 0], alpha[:, 0]))
        self.model.train()
        m_iou, box = float(np.concatenate(ious).mean()), float(np.median(np.concatenate(boxes)))
        return Validation({"mask_iou": m_iou, "box_error": box}, m_iou)

    def optimizers(self) -> dict:
        return {"optimizer": self.optim}

    def close(self) -> None:
        self.batches = None


MODEL = MaskModel
