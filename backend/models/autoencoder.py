"""Cross-autoencoder pre-training for the CycleGAN's generators.

    voxlift train autoencoder --data DATASET --out RUN [--steps N | --max-minutes M]
    voxlift train cyclegan --data DATASET --out RUN2 --init-from RUN
    torchrun --nproc-per-node N -m voxlift.backend.train autoencoder ...   (as train cyclegan: gradients averaged)

Each generator of the CycleGAN is an encoder of one domain and a decoder of the other. Crossed over, the
halves make two ordinary autoencoders: the 2D encoder of G_2D->3D with the 2D decoder of G_3D->2D on
renderings (L1), and the 3D encoder of G_3D->2D with the 3D decoder of G_2D->3D on grids (weighted BCE).
Training them teaches every half to read or draw its own domain before the CycleGAN joins them. They see
the same two disjoint domains the CycleGAN will (same seed and --pairing): still no pair, ever.

But the CycleGAN joins halves that never met: the 3D decoder then reads the image encoder's codes, which two
independent autoencoders put anywhere (measured: the crossed G_2D->3D then draws nearly empty grids,
validation IoU 0.006, and the CycleGAN did not recover in 200 steps). So both encoders' codes are also pulled
towards one distribution (--align, `code_gap`: batch means and standard deviations per code entry, compared
between the two domains' batches, which come from different models): the crossed generator then starts from
plausible grids (validation reports it as crossed_iou@0.3, read on pairs for the report only).
The checkpoint names its tensors as the CycleGAN does (model.enc2d.*, ...), so --init-from loads them as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import sized
from ..device import average_gradients, broadcast_state
from ..generators import UnpairedConfig, add_network_arguments, generator_halves, network_fields
from ..losses import voxel_loss
from ..metrics import iou
from ..unpaired_data import load_pairs, unpaired_sampler
from .base import BaseModel, Validation

VAL_BATCH = 64


@dataclass(kw_only=True)
class AutoencoderConfig(UnpairedConfig):
    kind: str = "autoencoder"
    align: float = sized(0.0, 0.0, 1e6)  # runs from before --align: two independent autoencoders
    lr: float = sized(1e-3, 0.0, 10.0)


def add_arguments(p) -> None:
    add_network_arguments(p)
    p.add_argument(
        "--align",
        type=float,
        default=10.0,
        help="weight of the code gap: pulls the two encoders' codes towards one distribution, so that "
        "each decoder can read the other domain's codes when the CycleGAN crosses them "
        "(default 10; 0: two independent autoencoders)",
    )
    p.add_argument("--lr", type=float, default=1e-3)


class CrossAutoencoders(nn.Module):
    def __init__(self, config: UnpairedConfig):
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


def _float(code):
    return tuple(c.float() for c in code) if isinstance(code, tuple) else code.float()


@torch.no_grad()
def validate_autoencoders(model: CrossAutoencoders, ds, split: str, config, device, limit: int) -> dict:
    images, grids, _ = load_pairs(ds, split, config.input_size, limit, config.views, config.categories)
    model.eval()
    l1, probs, crossed = [], [], []
    for i in range(0, len(images), VAL_BATCH):
        x, y = images[i : i + VAL_BATCH].to(device), grids[i : i + VAL_BATCH].to(device)
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


class AutoencoderModel(BaseModel):
    kind = "autoencoder"
    Config = AutoencoderConfig
    default_steps = 1000
    next_step = "start a CycleGAN from it: voxlift train cyclegan ... --init-from {out}"
    add_arguments = staticmethod(add_arguments)

    @classmethod
    def config_from_args(cls, args, ds) -> AutoencoderConfig:
        return AutoencoderConfig(**network_fields(args, ds), align=args.align, lr=args.lr)

    def __init__(self, config: AutoencoderConfig, ds, ctx):
        super().__init__(config, ds, ctx)
        _, self.sampler, self.prefetcher = unpaired_sampler(config, ds, ctx)
        self.val_split = "val" if len(ds.indices("val", config.categories)) >= 2 else "train"
        self.model = CrossAutoencoders(config).to(ctx.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.val_samples = 256

    def configure(self, args) -> None:
        self.val_samples = args.val_samples

    def lr(self) -> float:
        return self.config.lr

    def train_step(self, step: int, progress: float) -> dict:
        cfg, ctx, model = self.config, self.ctx, self.model
        x, _, y, _ = (self.prefetcher or self.sampler).draw(step * ctx.world + ctx.rank)
        x, y = x.to(ctx.device), y.to(ctx.device)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=ctx.amp):
            code_x, code_y = model.enc2d(x), model.enc3d(y)
            image, grid = torch.tanh(model.dec2d(code_x)), model.dec3d(code_y)
        losses = {
            "image_l1": F.l1_loss(image.float(), x),
            "voxel_bce": voxel_loss(grid.float(), y, "weighted-bce", cfg.pos_weight),
        }
        total = losses["image_l1"] + losses["voxel_bce"]
        if cfg.align > 0:
            losses["code_gap"] = code_gap(_float(code_x), _float(code_y))
            total = total + cfg.align * losses["code_gap"]
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(list(model.parameters()), ctx.world)
        self.opt.step()
        broadcast_state(model, ctx.world, buffers_only=True)
        return {**{k: v.detach() for k, v in losses.items()}, "loss": total.detach()}

    def validate(self) -> Validation:
        s = validate_autoencoders(
            self.model, self.ds, self.val_split, self.config, self.ctx.device, self.val_samples
        )
        # One number to pick the best by: both reconstructions' errors, each on its own 0..1 scale.
        return Validation(s, -(s["image_l1"] / 2 + (1 - s["voxel_iou@0.5"])))

    def optimizers(self) -> dict:
        return {"optimizer": self.opt}

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()


MODEL = AutoencoderModel
