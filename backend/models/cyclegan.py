"""The unpaired model: a CycleGAN between renderings and voxel grids of *different* models.

    voxlift train cyclegan --data DATASET --out RUN [--gan wgan-gp|lsgan|hinge] [--spectral critics|all|none]
                           [--pairing disjoint|shuffled] [--init-from AUTOENCODER_RUN] [--steps N | --max-minutes M]
    torchrun --nproc-per-node N -m voxlift.backend.train cyclegan ...   (N processes; --batch-size is per process)

Networks: the generator halves of generators.py (projective where the dataset's views share one camera up to
azimuth, else latent); D_2D, D_3D = Critic2D, Critic3D (PatchGAN, no batch norm, spectral norm on every layer
by default).

One step: n_critic critic updates (each on a fresh pair of unpaired batches; fakes come through an image pool),
then one generator update with
    L_G = adv(D_3D(b(G_23(x)))) + adv(D_2D(G_32(y)))
          + lambda_cycle * (|G_32(b(G_23(x))) - x|_1 + wBCE(G_23(G_32(y)), y))
          + lambda_silhouette * BCE(outline(sigmoid(G_23(x))), alpha outline of x)      (projective generators)
where b binarises the grid straight-through (gan_losses.straight_through; --soft-fakes: sigmoid), since a
critic tells soft fakes from 0/1 grids by their softness alone, and no identity loss (a grid is not an image).
The outline term needs no pair either: the image's own alpha mask (max-pooled to the grid's side) against the
soft silhouette 1 - prod(1 - p) of the grid drawn from it along the dataset's camera rays (projective.py), a
fixed renderer that, unlike the learned G_3D->2D of the image cycle, cannot hide a wrong outline.
The learning rate is constant for the first half of the run and falls linearly to 0 over the second
(pytorch-CycleGAN), as a function of the share of the budget spent.

best.safetensors keeps the best validation MMD: an unpaired criterion, so selection never looks at a pair.
Batches, the pool's randomness and the gradient-penalty mixing are functions of the seed and step: exact resume.

Several processes (torchrun): each draws its own batches, and the gradients are averaged over the processes
by hand after every backward (device.average_gradients) rather than through DistributedDataParallel, whose
hooks do not go with the gradient penalty's double backward; buffers (spectral norm's power-iteration vectors)
follow process 0 after every step, as DDP's do.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...dataset_tools.errors import VoxliftError
from ...dataset_tools.fileio import atomic_write_bytes
from .. import checkpoint as ckpt
from ..config import NORMS, one_of, sized
from ..device import average_gradients, broadcast_state
from ..distribution_metrics import distribution_scores
from ..gan_losses import (
    GAN_KINDS,
    GP_WEIGHT,
    critic_loss,
    generator_loss,
    gradient_penalty,
    init_occupancy,
    straight_through,
)
from ..generators import (
    GENERATOR_PARTS,
    ImageToVoxels,
    UnpairedConfig,
    add_network_arguments,
    check_same_halves,
    generator_halves,
    network_fields,
)
from ..losses import voxel_loss
from ..metrics import iou
from ..networks import Critic2D, Critic3D
from ..unpaired_data import load_pairs, unpaired_sampler
from .base import BaseModel, Validation

CRITIC_NORMS = tuple(n for n in NORMS if n != "batch")


@dataclass(kw_only=True)
class CycleGANConfig(UnpairedConfig):
    kind: str = "cyclegan"
    critic_width: int = sized(16, 1, 512)
    critic_norm: str = one_of("none", CRITIC_NORMS)
    gan: str = one_of("wgan-gp", GAN_KINDS)
    n_critic: int = sized(5, 1, 100)
    gp_weight: float = sized(GP_WEIGHT, 0.0, 1e6)
    beta1: float = sized(0.0, 0.0, 0.999)
    lr: float = sized(2e-4, 0.0, 10.0)
    lr_critic: float = sized(2e-4, 0.0, 10.0)
    lambda_cycle: float = sized(10.0, 0.0, 1e6)
    lambda_silhouette: float = sized(0.0, 0.0, 1e6)  # runs from before the outline term had none
    straight_through: bool = True
    pool_size: int = sized(50, 0, 100_000)
    decay_from: float = sized(0.5, 0.0, 1.0)
    init_from: str | None = None


def add_arguments(p) -> None:
    add_network_arguments(p)
    p.add_argument("--gan", default="wgan-gp", choices=GAN_KINDS, help="adversarial loss (default wgan-gp)")
    p.add_argument(
        "--n-critic", type=int, help="critic updates per generator update (default 5 for wgan-gp, else 1)"
    )
    p.add_argument(
        "--gp-weight", type=float, default=GP_WEIGHT, help="gradient penalty weight lambda (wgan-gp)"
    )
    p.add_argument(
        "--beta1",
        type=float,
        choices=(0.0, 0.5),
        help="Adam beta1; beta2 is 0.9 (default 0 for wgan-gp, 0.5 otherwise)",
    )
    p.add_argument(
        "--lr", type=float, help="generators' learning rate (default 2e-4; when resuming: a new one)"
    )
    p.add_argument("--lr-critic", type=float, help="critics' learning rate (default: --lr)")
    p.add_argument(
        "--lambda-cycle",
        type=float,
        default=30.0,
        help="weight of the two cycle losses (default 30: at 10 the adversarial terms pulled the "
        "generators off the correspondence; measured in BENCHMARKS.md)",
    )
    p.add_argument(
        "--lambda-silhouette",
        type=float,
        default=30.0,
        help="weight of the outline term (projective generators only): the outline of G_2D->3D's grid seen "
        "through the dataset's camera against the rendering's own alpha mask (default 30; 0: none)",
    )
    p.add_argument(
        "--soft-fakes",
        action="store_true",
        help="show the 3D critic sigmoid probabilities instead of straight-through binary grids",
    )
    p.add_argument("--pool-size", type=int, default=50, help="image pool of fakes for the critics (0: none)")
    p.add_argument(
        "--decay-from", type=float, default=0.5, help="share of the run before the lr decays linearly"
    )
    p.add_argument(
        "--init-from", help="autoencoder run (voxlift train autoencoder) whose weights start the generators"
    )
    p.add_argument("--critic-width", type=int, default=16)
    p.add_argument("--critic-norm", default="none", choices=CRITIC_NORMS)


def lr_factor(progress: float, decay_from: float) -> float:
    """1 until `decay_from` of the run, then linearly down to 0 at its end."""
    if progress <= decay_from:
        return 1.0
    return max(0.0, (1 - progress) / max(1e-9, 1 - decay_from))


def _critic_layers(size: int, most: int) -> int:
    """Stride-2 layers leaving patches of at least 4 (2 for tiny inputs) on a side."""
    return max(1, min(most, int(math.log2(size)) - 2))


class CycleGAN(nn.Module):
    def __init__(self, config: CycleGANConfig):
        super().__init__()
        for name, module in generator_halves(config).items():
            setattr(self, name, module)
        c_sn = config.spectral in ("critics", "all")
        cw, cn = config.critic_width, config.critic_norm
        self.critic2d = Critic2D(_critic_layers(config.input_size, 4), cw, 1, cn, c_sn)
        self.critic3d = Critic3D(_critic_layers(config.resolution, 3), cw, 1, cn, c_sn)

    def to_voxels(self, images: torch.Tensor) -> torch.Tensor:
        """G_2D->3D: images [B, 1, S, S] in [-1, 1] -> logits [B, R, R, R]."""
        return self.dec3d(self.enc2d(images))

    def to_images(self, voxels: torch.Tensor) -> torch.Tensor:
        """G_3D->2D: occupancy [B, R, R, R] in [0, 1] -> images [B, 1, S, S] in [-1, 1]."""
        return torch.tanh(self.dec2d(self.enc3d(voxels)))

    def image_to_voxels(self) -> nn.Module:
        """G_2D->3D as one module (sharing this model's weights), for evaluation."""
        return nn.Sequential(self.enc2d, self.dec3d)

    def generator_parameters(self):
        return [p for name in GENERATOR_PARTS for p in getattr(self, name).parameters()]

    def critic_parameters(self):
        return [*self.critic2d.parameters(), *self.critic3d.parameters()]


class ImagePool:
    """The last `size` fakes; a query returns each new fake or, half the time, swaps it for an older one
    (Shrivastava et al. 2017, as in pytorch-CycleGAN), so the critic does not chase the latest generator."""

    def __init__(self, size: int):
        self.size = size
        self.items: torch.Tensor | None = None

    def query(self, fakes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.size <= 0:
            return fakes
        out = []
        for f in fakes.detach():
            n = 0 if self.items is None else len(self.items)
            if n < self.size:
                self.items = f[None].clone() if self.items is None else torch.cat([self.items, f[None]])
                out.append(f)
            elif torch.rand(1, generator=gen).item() < 0.5:
                j = int(torch.randint(0, n, (1,), generator=gen))
                out.append(self.items[j].clone())
                self.items[j] = f
            else:
                out.append(f)
        return torch.stack(out)


@torch.no_grad()
def predict_voxels(to_voxels, images: torch.Tensor, device, batch: int = 64) -> torch.Tensor:
    out = [
        torch.sigmoid(to_voxels(images[i : i + batch].to(device)).float()).cpu()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out)


def evaluate_generator(
    to_voxels,
    ds,
    split: str,
    input_size: int,
    device,
    limit=None,
    with_distribution=True,
    views=None,
    categories=None,
) -> dict:
    """G_2D->3D on a split's (model, view) items: IoU against each item's own grid (the paired protocol, in
    the viewer's frame) and MMD / coverage / 1-NNA of the predicted grids against the true ones as a set."""
    images, grids, idx = load_pairs(ds, split, input_size, limit, views, categories)
    was_training = getattr(to_voxels, "training", False)
    if was_training:
        to_voxels.eval()
    probs = predict_voxels(to_voxels, images, device)
    if was_training:
        to_voxels.train()
    per = iou(probs, grids, (0.3, 0.4, 0.5))
    out = {
        "split": split,
        "items": len(idx),
        **{f"iou@{t}": float(per[:, i].mean()) for i, t in enumerate((0.3, 0.4, 0.5))},
    }
    if with_distribution and len(idx) >= 2:
        out.update(distribution_scores(probs > 0.5, grids > 0.5, device=device).to_dict())
    return out


def init_generators_from(model: nn.Module, config: UnpairedConfig, path) -> int:
    """Load the generator halves an autoencoder run trained; returns how many tensors came from it."""
    src = ckpt.resolve_checkpoint(path)
    tensors, meta = ckpt.load_checkpoint(src, kinds=("autoencoder",))
    check_same_halves(config, UnpairedConfig.from_dict(meta["config"], src), src)
    n = 0
    for part in GENERATOR_PARTS:
        prefix = f"model.{part}."
        if not any(k.startswith(prefix) for k in tensors):
            raise VoxliftError(f"{src}: an autoencoder checkpoint without the {part} weights")
        ckpt.load_module_state(getattr(model, part), tensors, prefix, src)
        n += sum(1 for k in tensors if k.startswith(prefix))
    return n


class CycleGANModel(BaseModel):
    kind = "cyclegan"
    Config = CycleGANConfig
    add_arguments = staticmethod(add_arguments)

    @classmethod
    def config_from_args(cls, args, ds) -> CycleGANConfig:
        gan, fields = args.gan, network_fields(args, ds)
        projective = fields["generators"] == "projective"
        return CycleGANConfig(
            **fields,
            critic_width=args.critic_width,
            critic_norm=args.critic_norm,
            gan=gan,
            n_critic=args.n_critic or (5 if gan == "wgan-gp" else 1),
            gp_weight=args.gp_weight,
            beta1=args.beta1 if args.beta1 is not None else (0.0 if gan == "wgan-gp" else 0.5),
            lr=args.lr or 2e-4,
            lr_critic=args.lr_critic or args.lr or 2e-4,
            lambda_cycle=args.lambda_cycle,
            lambda_silhouette=args.lambda_silhouette if projective else 0.0,
            straight_through=not args.soft_fakes,
            pool_size=args.pool_size,
            decay_from=args.decay_from,
            init_from=str(Path(args.init_from).resolve()) if args.init_from else None,
        )

    @classmethod
    def resume_config(cls, config: CycleGANConfig, args) -> CycleGANConfig:
        # After a divergence the way on is the same run with a lower learning rate: it may change.
        if args.lr is not None:
            config = config.replace(lr=args.lr, lr_critic=args.lr_critic or args.lr)
        elif args.lr_critic is not None:
            config = config.replace(lr_critic=args.lr_critic)
        return config

    def __init__(self, config: CycleGANConfig, ds, ctx):
        super().__init__(config, ds, ctx)
        self.domains, self.sampler, self.prefetcher = unpaired_sampler(config, ds, ctx)
        self.val_split = "val" if len(ds.indices("val", config.categories)) >= 2 else "train"
        self.model = CycleGAN(config).to(ctx.device)
        betas = (config.beta1, 0.9)
        self.opt_g = torch.optim.Adam(self.model.generator_parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.model.critic_parameters(), lr=config.lr_critic, betas=betas)
        self.pools = {"img": ImagePool(config.pool_size), "vox": ImagePool(config.pool_size)}
        self.to_grid = straight_through if config.straight_through else torch.sigmoid
        self.outline_rays = None
        if config.lambda_silhouette:
            from .. import projective as pj

            r = config.resolution
            camera = pj.camera_from_config({"camera": config.camera})
            self.outline_rays = pj.ray_samples(camera, r, r, 3 * r).to(ctx.device)
        self.val_samples = 256

    def configure(self, args) -> None:
        self.val_samples = args.val_samples

    def start_fresh(self, out) -> None:
        init_occupancy(self.model.dec3d, self.config.occupancy)
        if self.config.init_from:
            init_generators_from(self.model, self.config, self.config.init_from)
        if self.ctx.rank == 0:
            ds, d = self.ds, self.domains
            atomic_write_bytes(
                Path(out) / "domains.json",
                (
                    json.dumps(
                        {
                            "pairing": d.pairing,
                            "image_models": [ds.models[i].id for i in d.image_models],
                            "voxel_models": [ds.models[i].id for i in d.voxel_models],
                        },
                        indent=0,
                    )
                    + "\n"
                ).encode(),
            )

    def lr(self) -> float:
        return self.opt_g.param_groups[0]["lr"]

    def _draw(self, index: int):
        x, _, y, _ = (self.prefetcher or self.sampler).draw(index)
        return x.to(self.ctx.device), y.to(self.ctx.device)

    def train_step(self, step: int, progress: float) -> dict:
        cfg, ctx = self.config, self.ctx
        for opt, base in ((self.opt_g, cfg.lr), (self.opt_d, cfg.lr_critic)):
            for group in opt.param_groups:
                group["lr"] = base * lr_factor(progress, cfg.decay_from)
        # GP mixing, pool choices: functions of the step (and of the process, for several)
        step_seed = cfg.seed * 1_000_003 + step + (ctx.rank * 7_919_993 if ctx.world > 1 else 0)
        torch.manual_seed(step_seed)
        gen = torch.Generator().manual_seed(step_seed)
        first_draw = step * (cfg.n_critic + 1)
        for k in range(cfg.n_critic):
            critic = self._critic_update((first_draw + k) * ctx.world + ctx.rank, gen)
        losses = self._generator_update((first_draw + cfg.n_critic) * ctx.world + ctx.rank)
        broadcast_state(self.model, ctx.world, buffers_only=True)
        return {**critic, **losses}

    def _critic_update(self, draw: int, gen: torch.Generator) -> dict:
        cfg, model, amp, dev = self.config, self.model, self.ctx.amp, self.ctx.device.type
        for p in model.critic_parameters():
            p.requires_grad_(True)
        x, y = self._draw(draw)
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            fake_vox = self.to_grid(model.to_voxels(x)).float()
            fake_img = model.to_images(y).float()
        # fakes enter the pools as float32, so a run resumes with or without bf16
        fake_vox = self.pools["vox"].query(fake_vox, gen)
        fake_img = self.pools["img"].query(fake_img, gen)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            losses = {
                "critic3d": critic_loss(cfg.gan, model.critic3d(y), model.critic3d(fake_vox)),
                "critic2d": critic_loss(cfg.gan, model.critic2d(x), model.critic2d(fake_img)),
            }
            if cfg.gan == "wgan-gp":
                losses["gp3d"] = gradient_penalty(model.critic3d, y, fake_vox, weight=cfg.gp_weight)
                losses["gp2d"] = gradient_penalty(model.critic2d, x, fake_img, weight=cfg.gp_weight)
        total = sum(losses.values())
        self.opt_d.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(model.critic_parameters(), self.ctx.world)
        self.opt_d.step()
        return {**{k: v.detach() for k, v in losses.items()}, "critic_loss": total.detach()}

    def _generator_update(self, draw: int) -> dict:
        cfg, model, amp, dev = self.config, self.model, self.ctx.amp, self.ctx.device.type
        for p in model.critic_parameters():
            p.requires_grad_(False)
        x, y = self._draw(draw)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            logits = model.to_voxels(x)
            fake_vox = self.to_grid(logits)
            rec_img = model.to_images(fake_vox)
            fake_img = model.to_images(y)
            rec_vox = model.to_voxels(fake_img)
            adv3d, adv2d = model.critic3d(fake_vox), model.critic2d(fake_img)
        losses = {
            "adv3d": generator_loss(cfg.gan, adv3d.float()),
            "adv2d": generator_loss(cfg.gan, adv2d.float()),
            "cycle_image": F.l1_loss(rec_img.float(), x),
            "cycle_voxels": voxel_loss(rec_vox.float(), y, "weighted-bce", cfg.pos_weight),
        }
        total = (
            losses["adv3d"]
            + losses["adv2d"]
            + cfg.lambda_cycle * (losses["cycle_image"] + losses["cycle_voxels"])
        )
        if self.outline_rays is not None:
            from .. import projective as pj

            # No pair: the image's own alpha, the grid drawn from it, and the known camera.
            outline = pj.silhouette(torch.sigmoid(logits.float()), self.outline_rays)
            masks = pj.outline_masks(self.sampler.alpha(draw), outline.shape[-1]).to(x.device)
            losses["silhouette"] = F.binary_cross_entropy(outline.clamp(1e-4, 1 - 1e-4), masks)
            total = total + cfg.lambda_silhouette * losses["silhouette"]
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(model.generator_parameters(), self.ctx.world)
        self.opt_g.step()
        return {**{k: v.detach() for k, v in losses.items()}, "loss": total.detach()}

    def validate(self) -> Validation:
        cfg = self.config
        scores = evaluate_generator(
            self.model.image_to_voxels(),
            self.ds,
            self.val_split,
            cfg.input_size,
            self.ctx.device,
            self.val_samples,
            views=cfg.views,
            categories=cfg.categories,
        )
        return Validation(scores, -scores.get("mmd", math.inf))

    def optimizers(self) -> dict:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def training_state(self) -> tuple[dict, dict]:
        tensors, meta = super().training_state()
        pools = {f"pool.{n}": p.items for n, p in self.pools.items() if p.items is not None}
        return {**tensors, **pools}, meta

    def load_training_state(self, tensors, meta, path) -> None:
        super().load_training_state(tensors, meta, path)
        for name, pool in self.pools.items():
            if f"pool.{name}" in tensors:
                pool.items = tensors[f"pool.{name}"].to(self.ctx.device)

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()

    @classmethod
    def image_to_grid(cls, config: CycleGANConfig, tensors, path) -> nn.Module:
        net = ImageToVoxels(config)
        wanted = {k: v for k, v in tensors.items() if k.startswith(("model.enc2d.", "model.dec3d."))}
        ckpt.load_module_state(net, wanted, "model.", path)
        return net


MODEL = CycleGANModel
