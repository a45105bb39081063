"""The unpaired model: a CycleGAN between renderings and voxel grids of *different* models.

    voxlift train cyclegan --data DATASET --out RUN [--gan wgan-gp|lsgan|hinge] [--spectral critics|all|none]
                           [--pairing disjoint|shuffled] [--init-from AUTOENCODER_RUN] [--steps N | --max-minutes M]
                           [--resume] [--device auto|cpu|cuda] [--bf16 auto|on|off]
    torchrun --nproc-per-node N -m voxlift.backend.train cyclegan ...   (N processes; --batch-size is per process)

Networks (--generators; critics from networks.py):
    projective (the default where the dataset's views share one camera up to azimuth; projective.py):
        G_2D->3D = ImageToCode + CodeToVoxels  (image cells back-projected into the grid along their rays)
        G_3D->2D = VoxelToCode + CodeToImage   (the grid sampled along each image cell's ray; tanh)
    latent (networks.py, the paired model's parts; older runs, and data without one camera):
        G_2D->3D = ImageEncoder + VoxelDecoder, G_3D->2D = VoxelEncoder + ImageDecoder, through one vector
    D_2D, D_3D = Critic2D, Critic3D           (PatchGAN, no batch norm, spectral norm on every layer by default)

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
(pytorch-CycleGAN), measured in steps or, with --max-minutes, in time.

Every loss is checked before its update: a NaN, an infinity or a loss above --explode stops the run with a
message that names the step and the loss, and last.safetensors is left as it was (the last good state).
Checkpoints are those of the paired model (checkpoint.py): last.safetensors resumes exactly (the batches,
the pool's randomness and the gradient-penalty mixing are functions of the seed and step), best.safetensors
keeps the best validation MMD: an unpaired criterion, so selection never looks at a pair.

Several processes (torchrun): each draws its own batches, and the gradients are averaged over the processes
by hand after every backward (`train.average_gradients`) rather than through DistributedDataParallel, whose hooks
do not go with the gradient penalty's double backward; buffers (spectral norm's power-iteration vectors, batch
norm statistics) follow process 0 after every step, as DDP's do. Process 0 alone writes the run folder.
On CUDA the forward passes run under bf16 autocast (`--bf16`), the losses in float32.
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
from ..dataset_tools.errors import VoxliftError
from . import checkpoint as ckpt
from .distribution_metrics import distribution_scores
from .gan_losses import (
    GAN_KINDS,
    GP_WEIGHT,
    critic_loss,
    generator_loss,
    gradient_penalty,
    init_occupancy,
    straight_through,
)
from .losses import positive_weight, voxel_loss
from .metrics import iou
from .networks import (
    NORMS,
    Critic2D,
    Critic3D,
    ImageDecoder,
    ImageEncoder,
    VoxelDecoder,
    VoxelEncoder,
    add_decoder_head_argument,
    decoder_head,
)
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

KIND = "cyclegan"
SPECTRAL = ("critics", "all", "none")
GENERATOR_PARTS = ("enc2d", "dec3d", "enc3d", "dec2d")


class TrainingDiverged(VoxliftError):
    """A loss became NaN, infinite or exploded; the run stopped and kept its last good checkpoint."""


# ---------------------------------------------------------------------------------------------- model


def _critic_layers(size: int, most: int) -> int:
    """Stride-2 layers leaving patches of at least 4 (2 for tiny inputs) on a side."""
    return max(1, min(most, int(math.log2(size)) - 2))


GENERATORS = ("auto", "projective", "latent")


def generators(config: dict) -> str:
    """A run's generator halves; runs from before the option had the latent ones."""
    return config.get("generators", "latent")


def generator_halves(config: dict, parts=GENERATOR_PARTS) -> dict[str, nn.Module]:
    """The generators' halves named in `parts` (enc2d, dec3d, enc3d, dec2d), latent or projective
    (projective.py) as the config says; the CycleGAN, the cross autoencoders and prediction build them here."""
    s, r, z = config["input_size"], config["resolution"], config["latent_dim"]
    ew, dw, norm = config["encoder_width"], config["decoder_width"], config["norm"]
    sn = config["spectral"] == "all"
    if generators(config) == "projective":
        from . import projective as pj

        camera = pj.camera_from_config(config)
        make = {
            "enc2d": lambda: pj.ImageToCode(s, r, z, ew, norm, sn),
            "dec3d": lambda: pj.CodeToVoxels(r, z, dw, norm, sn, camera, ew),
            "enc3d": lambda: pj.VoxelToCode(r, z, ew, norm, sn, camera),
            "dec2d": lambda: pj.CodeToImage(s, r, z, dw, norm, sn, ew),
        }
    else:
        head = decoder_head(config)
        make = {
            "enc2d": lambda: ImageEncoder(s, z, ew, norm, sn),
            "dec3d": lambda: VoxelDecoder(r, z, dw, norm, sn, head),
            "enc3d": lambda: VoxelEncoder(r, z, ew, norm, sn),
            "dec2d": lambda: ImageDecoder(s, z, dw, norm, sn, head),
        }
    return {name: make[name]() for name in parts}


class CycleGAN(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        s, r = config["input_size"], config["resolution"]
        for name, module in generator_halves(config).items():
            setattr(self, name, module)
        c_sn = config["spectral"] in ("critics", "all")
        cw, cn = config["critic_width"], config["critic_norm"]
        self.critic2d = Critic2D(_critic_layers(s, 4), cw, 1, cn, c_sn)
        self.critic3d = Critic3D(_critic_layers(r, 3), cw, 1, cn, c_sn)

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


class ImageToVoxels(nn.Module):
    """G_2D->3D alone, for prediction: [B, 1, S, S] -> logits, like the paired model."""

    def __init__(self, config: dict):
        super().__init__()
        for name, module in generator_halves(config, ("enc2d", "dec3d")).items():
            setattr(self, name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec3d(self.enc2d(x))


def predictor_network(config: dict, tensors: dict, path) -> ImageToVoxels:
    """G_2D->3D from a cyclegan checkpoint's tensors (predict.py's PREDICTOR_KINDS entry point)."""
    net = ImageToVoxels(config)
    wanted = {k: v for k, v in tensors.items() if k.startswith(("model.enc2d.", "model.dec3d."))}
    ckpt.load_module_state(net, wanted, "model.", path)
    return net.eval()


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


# ---------------------------------------------------------------------------------------------- arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    ckpt.add_run_arguments(
        p,
        "generator steps (default 2000 unless --max-minutes)",
        "train for this long (the lr decay follows the clock)",
    )
    p.add_argument("--gan", default="wgan-gp", choices=GAN_KINDS, help="adversarial loss (default wgan-gp)")
    p.add_argument(
        "--spectral",
        default="critics",
        choices=SPECTRAL,
        help="spectral normalisation on every layer of the critics (default), of all networks, or none",
    )
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
        "--lr", type=float, help="generators' learning rate (default 2e-4; with --resume: a new one)"
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
        help="weight of the outline term (projective generators only): the outline of G_2D->3D's grid "
        "seen through the dataset's camera against the rendering's own alpha mask (default 30; "
        "0: none; measured in BENCHMARKS.md)",
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
        "--pairing",
        default="disjoint",
        choices=PAIRINGS,
        help="disjoint: renderings and grids from two disjoint halves of the models (default)",
    )
    p.add_argument("--views", type=int, nargs="+", help="only these views' renderings (default: every view)")
    p.add_argument("--categories", nargs="+", help="train on these categories only")
    p.add_argument(
        "--init-from", help="autoencoder run (voxlift train autoencoder) whose weights start the generators"
    )
    p.add_argument(
        "--input-size", type=int, help="resize images to this (default: the dataset's size, at most 64)"
    )
    p.add_argument("--latent-dim", type=int, default=256)
    p.add_argument("--encoder-width", type=int, default=16)
    p.add_argument("--decoder-width", type=int, default=8)
    add_decoder_head_argument(p)
    add_generators_argument(p)
    p.add_argument("--critic-width", type=int, default=16)
    p.add_argument("--norm", default="batch", choices=NORMS, help="generators' normalisation")
    p.add_argument("--critic-norm", default="none", choices=tuple(n for n in NORMS if n != "batch"))
    p.add_argument(
        "--pos-weight",
        type=float,
        help="occupied voxels' weight in the voxel cycle loss (default: from their share in the grid domain)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--explode", type=float, help="a loss above this stops the run as diverged (default 1e4)")
    p.add_argument("--val-every", type=int, default=250, help="steps between validations and checkpoints")
    p.add_argument("--val-samples", type=int, default=256, help="val models used for validation")
    add_bf16_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args, ds) -> dict:
    from .data import dataset_statistics

    gan = args.gan
    kind, camera = resolve_generators(args.generators, ds, args.input_size or min(ds.image_size, 64))
    stats = dataset_statistics(ds, ds.indices("train", args.categories))
    return {
        "kind": KIND,
        "version": 1,
        "data": str(Path(args.data).resolve()),
        "image_size": ds.image_size,
        "input_size": args.input_size or min(ds.image_size, 64),
        "resolution": ds.resolution,
        "viewer_centred": True,
        "views": args.views,
        "categories": args.categories,
        "background": stats["background"],
        "fill": stats["fill"],
        "occupancy": stats["occupancy"],
        "latent_dim": args.latent_dim,
        "encoder_width": args.encoder_width,
        "decoder_width": args.decoder_width,
        "decoder_head": args.decoder_head,
        "generators": kind,
        "camera": camera,
        "critic_width": args.critic_width,
        "norm": args.norm,
        "critic_norm": args.critic_norm,
        "spectral": args.spectral,
        "gan": gan,
        "n_critic": args.n_critic or (5 if gan == "wgan-gp" else 1),
        "gp_weight": args.gp_weight,
        "beta1": args.beta1 if args.beta1 is not None else (0.0 if gan == "wgan-gp" else 0.5),
        "lr": args.lr or 2e-4,
        "lr_critic": args.lr_critic or args.lr or 2e-4,
        "lambda_cycle": args.lambda_cycle,
        "lambda_silhouette": args.lambda_silhouette if kind == "projective" else 0.0,
        "straight_through": not args.soft_fakes,
        "pool_size": args.pool_size,
        "decay_from": args.decay_from,
        "pairing": args.pairing,
        "pos_weight": args.pos_weight,
        "batch_size": args.batch_size,
        "explode": args.explode or 1e4,
        "init_from": str(Path(args.init_from).resolve()) if args.init_from else None,
        "seed": args.seed,
    }


def add_generators_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--generators",
        default="auto",
        choices=GENERATORS,
        help="projective: the halves meet in an image-aligned code, moved between image and grid "
        "with the dataset's camera (projective.py); latent: in one vector. auto (default): "
        "projective when the dataset's views share one camera up to azimuth",
    )


def resolve_generators(choice: str, ds, input_size: int) -> tuple[str, dict | None]:
    """(generators, camera) for a new run's config: "auto" is projective where the data allow it."""
    from . import projective as pj

    if choice == "latent":
        return "latent", None
    try:
        pj.check_sizes(input_size, ds.resolution)
        return "projective", pj.viewer_camera(
            ds
        )  # a VoxliftError naming the dataset when it has no one camera
    except ValueError as exc:
        if choice == "projective":
            raise VoxliftError(f"{ds.path}: --generators projective: {exc}") from None
    except VoxliftError:
        if choice == "projective":
            raise
    return "latent", None


def lr_factor(progress: float, decay_from: float) -> float:
    """1 until `decay_from` of the run, then linearly down to 0 at its end."""
    if progress <= decay_from:
        return 1.0
    return max(0.0, (1 - progress) / max(1e-9, 1 - decay_from))


# ---------------------------------------------------------------------------------------------- evaluation


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
    limit: int | None = None,
    with_distribution: bool = True,
    views: list[int] | None = None,
    categories: list[str] | None = None,
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
        "iou@0.3": float(per[:, 0].mean()),
        "iou@0.4": float(per[:, 1].mean()),
        "iou@0.5": float(per[:, 2].mean()),
    }
    if with_distribution and len(idx) >= 2:
        out.update(distribution_scores(probs > 0.5, grids > 0.5, device=device).to_dict())
    return out


# ---------------------------------------------------------------------------------------------- training


def main(args) -> int:
    with distributed_context(args.device) as (rank, world, device):
        return train(args, device, rank=rank, world=world)


def _check(losses: dict[str, torch.Tensor], step: int, limit: float, out: Path) -> None:
    for name, value in losses.items():
        v = float(value.detach())
        if not math.isfinite(v) or abs(v) > limit:
            what = (
                "NaN"
                if math.isnan(v)
                else ("infinite" if math.isinf(v) else f"{v:.3g}, above --explode {limit:g}")
            )
            last = out / ckpt.LAST
            keep = (
                f"the last good checkpoint {last} is kept"
                if last.is_file()
                else "no checkpoint had been written yet"
            )
            raise TrainingDiverged(
                f"{out}: training diverged at step {step}: {name} is {what}; {keep} "
                "(try a lower --lr, --gan wgan-gp with --spectral critics, or fewer --n-critic)"
            )


def _init_from(model: CycleGAN, path: str) -> int:
    """Load the generator halves an autoencoder run trained; returns how many tensors came from it."""
    tensors, _ = ckpt.load_checkpoint(path, kinds=("autoencoder",))
    src = Path(path)
    n = 0
    for part in GENERATOR_PARTS:
        prefix = f"model.{part}."
        if not any(k.startswith(prefix) for k in tensors):
            raise VoxliftError(f"{src}: an autoencoder checkpoint without the {part} weights")
        ckpt.load_module_state(getattr(model, part), tensors, prefix, src)
        n += sum(1 for k in tensors if k.startswith(prefix))
    return n


def _same_shape(config: dict, other: dict, source) -> None:
    for key in ("input_size", "resolution", "latent_dim", "encoder_width", "decoder_width", "norm"):
        if config[key] != other.get(key):
            raise VoxliftError(
                f"{source}: its networks have {key} {other.get(key)!r}, this run {config[key]!r}; "
                "train the autoencoder with the same network options"
            )
    if generators(config) != generators(other) or config.get("camera") != other.get("camera"):
        raise VoxliftError(
            f"{source}: its generators are {generators(other)!r}, this run's {generators(config)!r} "
            "(or their cameras differ); train the autoencoder on the same data with the same "
            "--generators"
        )
    if decoder_head(config) != decoder_head(other):
        raise VoxliftError(
            f"{source}: its decoders have head {decoder_head(other)!r}, this run "
            f"{decoder_head(config)!r}; train the autoencoder with the same --decoder-head"
        )
    if (config["spectral"] == "all") != (other.get("spectral") == "all"):
        raise VoxliftError(f"{source}: spectral normalisation of the generators differs from this run's")


def train(
    args, device: torch.device, on_batch=None, stop_after: int | None = None, rank: int = 0, world: int = 1
) -> int:
    """Train (or resume) a run. `on_batch(image_models, voxel_models)` sees the model indices of every batch
    the networks are fed; `stop_after` ends the process after that many steps as if it had been killed
    right after a checkpoint (for resume tests). `rank` of `world` processes (torchrun)."""
    main_process = rank == 0
    out = Path(args.out)
    last_path, resuming = ckpt.resume_state(out, args.resume)
    ds = open_dataset(args.data)
    if resuming:
        tensors, meta = ckpt.load_checkpoint(last_path, kinds=(KIND,))
        config = meta["config"]
        # After a divergence the way on is the same run with a lower learning rate: these may change.
        for key in ("lr", "lr_critic", "explode"):
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        if args.lr is not None and args.lr_critic is None:
            config["lr_critic"] = args.lr
    else:
        tensors, meta = None, None
        config = config_from_args(args, ds)
    if config["resolution"] != ds.resolution:
        raise VoxliftError(
            f"{args.data}: grids of {ds.resolution}^3, the run was made for {config['resolution']}^3"
        )
    seed = config["seed"]
    torch.manual_seed(seed)
    domains = split_domains(ds, "train", config["pairing"], seed, config["categories"])
    sampler = UnpairedSampler(ds, domains, config["batch_size"], seed, config["input_size"], config["views"])
    if config["pos_weight"] is None:
        config["pos_weight"] = positive_weight(sampler.voxel_occupancy())
    if device.type == "cuda":  # the CPU draws the next batches while the GPU trains (same batches either way)
        sampler = Prefetcher(sampler, stride=world)
    val_split = "val" if len(ds.indices("val", config["categories"])) >= 2 else "train"

    model = CycleGAN(config).to(device)
    betas = (config["beta1"], 0.9)
    opt_g = torch.optim.Adam(model.generator_parameters(), lr=config["lr"], betas=betas)
    opt_d = torch.optim.Adam(model.critic_parameters(), lr=config["lr_critic"], betas=betas)
    pools = {"img": ImagePool(config["pool_size"]), "vox": ImagePool(config["pool_size"])}
    step, elapsed, best = 0, 0.0, math.inf
    if resuming:
        ckpt.load_module_state(model, tensors, "model.", last_path)
        opt_g.load_state_dict(ckpt.unflatten_optimizer(tensors, meta["opt_g"], "opt_g."))
        opt_d.load_state_dict(ckpt.unflatten_optimizer(tensors, meta["opt_d"], "opt_d."))
        for name, pool in pools.items():
            if f"pool.{name}" in tensors:
                pool.items = tensors[f"pool.{name}"].to(device)
        step, elapsed, best = meta["step"], meta["elapsed"], meta["best"]
        steps_total, budget_s = meta["steps_total"], meta["budget_s"]
        if args.steps is not None or args.max_minutes is not None:  # a new budget for the resumed run
            steps_total = args.steps
            budget_s = args.max_minutes * 60 if args.max_minutes is not None else None
    else:
        init_occupancy(model.dec3d, config["occupancy"])
        if config["init_from"]:
            src = ckpt.resolve_checkpoint(config["init_from"])
            _same_shape(config, ckpt.load_checkpoint(src, kinds=("autoencoder",))[1]["config"], src)
            _init_from(model, str(src))
        steps_total = args.steps if args.steps is not None else (None if args.max_minutes else 2000)
        budget_s = args.max_minutes * 60 if args.max_minutes is not None else None
        if main_process:
            out.mkdir(parents=True, exist_ok=True)
            ckpt.write_config(out, config)
            (out / "domains.json").write_text(
                json.dumps(
                    {
                        "pairing": domains.pairing,
                        "image_models": [ds.models[i].id for i in domains.image_models],
                        "voxel_models": [ds.models[i].id for i in domains.voxel_models],
                    },
                    indent=0,
                )
                + "\n"
            )
    broadcast_state(model, world)  # one starting point, whatever each process's random state made
    # bf16 autocast on CUDA by default; `--bf16 on` tries it on the CPU too. Fakes enter the pools as float32,
    # so a run resumes with or without it.
    amp = use_bf16(args.bf16, device)

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"), purge_step=step if resuming else None) if main_process else None
    log = open(out / "log.jsonl", "a") if main_process else open(os.devnull, "w")  # noqa: SIM115 (closed below)
    bar = None
    if not args.quiet and main_process:
        from tqdm import tqdm

        bar = tqdm(
            total=steps_total,
            initial=step,
            unit="step",
            dynamic_ncols=True,
            desc=f"train cyclegan {config['gan']} ({device.type}"
            + (f", {world} proc)" if world > 1 else ")"),
        )

    def tensors_now() -> dict:
        return {f"model.{k}": v for k, v in model.state_dict().items()}

    def save_last():
        if not main_process:
            return
        bad = [
            k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()
        ]
        if bad:
            _check({f"weight {bad[0]}": torch.tensor(float("nan"))}, step, config["explode"], out)
        t_g, info_g = ckpt.flatten_optimizer(opt_g.state_dict(), "opt_g.")
        t_d, info_d = ckpt.flatten_optimizer(opt_d.state_dict(), "opt_d.")
        extra = {f"pool.{n}": p.items for n, p in pools.items() if p.items is not None}
        ckpt.save_checkpoint(
            last_path,
            {**tensors_now(), **t_g, **t_d, **extra},
            {
                "config": config,
                "step": step,
                "elapsed": elapsed,
                "best": best,
                "opt_g": info_g,
                "opt_d": info_d,
                "steps_total": steps_total,
                "budget_s": budget_s,
            },
        )

    def validate() -> dict | None:
        nonlocal best
        if not main_process:
            return None
        scores = evaluate_generator(
            model.image_to_voxels(),
            ds,
            val_split,
            config["input_size"],
            device,
            args.val_samples,
            views=config["views"],
            categories=config["categories"],
        )
        for k, v in scores.items():
            if isinstance(v, float):
                writer.add_scalar(f"val/{k}", v, step)
        if scores.get("mmd", math.inf) < best:
            best = scores["mmd"]
            ckpt.save_checkpoint(
                out / ckpt.BEST, tensors_now(), {"config": config, "step": step, "val": scores}
            )
        return scores

    to_grid = straight_through if config["straight_through"] else torch.sigmoid
    lambda_sil = config.get("lambda_silhouette", 0.0)
    if lambda_sil:
        from . import projective as pj

        r = config["resolution"]
        outline_rays = pj.ray_samples(pj.camera_from_config(config), r, r, 3 * r).to(device)
    model.train()
    t_start = time.time() - elapsed
    gan, n_critic = config["gan"], config["n_critic"]
    last_val = None
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
            for opt, base in ((opt_g, config["lr"]), (opt_d, config["lr_critic"])):
                for group in opt.param_groups:
                    group["lr"] = base * lr_factor(progress, config["decay_from"])
            # GP mixing, pool choices: functions of the step (and of the process, for several)
            step_seed = seed * 1_000_003 + step + (rank * 7_919_993 if world > 1 else 0)
            torch.manual_seed(step_seed)
            gen = torch.Generator().manual_seed(step_seed)
            losses = {}
            # --- critics
            for p in model.critic_parameters():
                p.requires_grad_(True)
            for k in range(n_critic):
                x, im_idx, y, vx_idx = sampler.draw((step * (n_critic + 1) + k) * world + rank)
                if on_batch is not None:
                    on_batch(im_idx, vx_idx)
                x, y = x.to(device), y.to(device)
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    fake_vox = to_grid(model.to_voxels(x)).float()
                    fake_img = model.to_images(y).float()
                fake_vox = pools["vox"].query(fake_vox, gen)
                fake_img = pools["img"].query(fake_img, gen)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    d3 = critic_loss(gan, model.critic3d(y), model.critic3d(fake_vox))
                    d2 = critic_loss(gan, model.critic2d(x), model.critic2d(fake_img))
                    losses = {"critic3d": d3, "critic2d": d2}
                    if gan == "wgan-gp":
                        losses["gp3d"] = gradient_penalty(
                            model.critic3d, y, fake_vox, weight=config["gp_weight"]
                        )
                        losses["gp2d"] = gradient_penalty(
                            model.critic2d, x, fake_img, weight=config["gp_weight"]
                        )
                total_d = sum(losses.values())
                losses = mean_over_processes({**losses, "critic loss": total_d}, world)
                _check(losses, step, config["explode"], out)
                del losses["critic loss"]
                opt_d.zero_grad(set_to_none=True)
                total_d.backward()
                average_gradients(model.critic_parameters(), world)
                opt_d.step()
            # --- generators
            for p in model.critic_parameters():
                p.requires_grad_(False)
            g_draw = (step * (n_critic + 1) + n_critic) * world + rank
            x, im_idx, y, vx_idx = sampler.draw(g_draw)
            if on_batch is not None:
                on_batch(im_idx, vx_idx)
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model.to_voxels(x)
                fake_vox = to_grid(logits)
                rec_img = model.to_images(fake_vox)
                fake_img = model.to_images(y)
                rec_vox = model.to_voxels(fake_img)
                adv3d, adv2d = model.critic3d(fake_vox), model.critic2d(fake_img)
            g_losses = {
                "adv3d": generator_loss(gan, adv3d.float()),
                "adv2d": generator_loss(gan, adv2d.float()),
                "cycle_image": F.l1_loss(rec_img.float(), x),
                "cycle_voxels": voxel_loss(rec_vox.float(), y, "weighted-bce", config["pos_weight"]),
            }
            total_g = (
                g_losses["adv3d"]
                + g_losses["adv2d"]
                + config["lambda_cycle"] * (g_losses["cycle_image"] + g_losses["cycle_voxels"])
            )
            if lambda_sil:
                # No pair: the image's own alpha, the grid drawn from it, and the known camera.
                outline = pj.silhouette(torch.sigmoid(logits.float()), outline_rays)
                masks = pj.outline_masks(sampler.alpha(g_draw), outline.shape[-1]).to(device)
                g_losses["silhouette"] = F.binary_cross_entropy(outline.clamp(1e-4, 1 - 1e-4), masks)
                total_g = total_g + lambda_sil * g_losses["silhouette"]
            g_losses = mean_over_processes({**g_losses, "generator loss": total_g}, world)
            _check(g_losses, step, config["explode"], out)
            logged_g = float(g_losses.pop("generator loss").detach())
            opt_g.zero_grad(set_to_none=True)
            total_g.backward()
            average_gradients(model.generator_parameters(), world)
            opt_g.step()
            broadcast_state(model, world, buffers_only=True)
            step += 1
            elapsed = time.time() - t_start
            if step % 10 == 0 or step == 1:
                row = {
                    "step": step,
                    "elapsed": round(elapsed, 2),
                    "lr": opt_g.param_groups[0]["lr"],
                    **{k: round(float(v.detach()), 5) for k, v in {**losses, **g_losses}.items()},
                }
                log.write(json.dumps(row) + "\n")
                log.flush()
                for k, v in row.items():
                    if k != "step" and writer is not None:
                        writer.add_scalar(f"train/{k}", v, step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(g=f"{logged_g:.3f}", d=f"{float(total_d):.3f}", val=last_val or "-")
            if step % args.val_every == 0:
                s = validate()
                if s is not None:
                    last_val = f"iou {s['iou@0.5']:.3f} mmd {s.get('mmd', float('nan')):.3f}"
                    log.write(json.dumps({"step": step, "val": s}) + "\n")
                    log.flush()
                save_last()
            if stop_after is not None and step >= stop_after:
                if step % args.val_every != 0:
                    save_last()
                return 0
        check_in_step(model, world, out)
        if step % args.val_every != 0 or step == 0:
            s = validate()
            if s is not None:
                log.write(json.dumps({"step": step, "val": s}) + "\n")
            save_last()
    except KeyboardInterrupt:
        save_last()  # `--resume` continues from here
        raise
    finally:
        if isinstance(sampler, Prefetcher):
            sampler.close()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        log.close()
    if not main_process:
        return 0
    print(f"trained {step} steps in {elapsed / 60:.1f} min; best val MMD {best:.4f}; checkpoints in {out}")
    return 0
