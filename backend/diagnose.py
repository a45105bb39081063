"""`voxlift diagnose`: every part of the unpaired model checked on its own, each with a figure and pass/fail.

    voxlift diagnose --data DATASET [--json] [--parts NAME...] [--steps N] [--gan wgan-gp|lsgan|hinge]

A CycleGAN that does not learn can fail in any of its parts; trained alone, on a task that has a known
answer, each part shows whether it can do its share (the study debugged its CycleGAN this way):

    critic2d-classifier    the 2D critic's network, trained as a chair/table/... classifier on renderings:
                           held-out accuracy, passes at >= --min-accuracy (0.8)
    critic3d-classifier    the same for the 3D critic, on grids
    encoder2d-classifier   G_2D->3D's image encoder + a linear layer, as a classifier (the generator parts are
                           those of `train cyclegan --generators`, projective where the data allow)
    encoder3d-classifier   G_3D->2D's voxel encoder + a linear layer, as a classifier
    generator2d3d-paired   G_2D->3D trained on pairs with the weighted BCE: held-out IoU@0.5, passes when
                           above the mean-shape baseline (the training grids' mean, best threshold on train)
    generator3d2d-paired   G_3D->2D trained on pairs with L1: held-out L1, passes when below the mean image's
    gan3d-unconditional    noise -> VoxelDecoder against the 3D critic, alone: MMD / coverage / 1-NNA of its
                           samples against held-out grids (1 - IoU); passes when its MMD falls to --min-gain
                           (0.9) of its untrained start's. Beside it, the figures of two reference sets: the
                           training set itself (a perfect generator) and independent samples (each voxel
                           drawn alone with its training frequency: no structure), to read it against
    gan2d-unconditional    noise -> ImageDecoder against the 2D critic, the same with L1 between images
                           (independent samples: each pixel Gaussian with its training mean and spread)

Held out is the val and test splits together; training uses the train split. Everything is in the viewer's
frame, as the CycleGAN sees it. Exit status 0 when every part passes, 3 when one fails (1 is bad input).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..dataset_tools.dataset import open_dataset
from ..dataset_tools.errors import VoxliftError
from .device import add_device_argument
from .distribution_metrics import distribution_scores, iou_distance, l1_distance
from .gan_losses import (
    GAN_KINDS,
    critic_loss,
    generator_loss,
    gradient_penalty,
    init_occupancy,
    straight_through,
)
from .generators import UnpairedConfig, add_generators_argument, generator_halves, resolve_generators
from .losses import positive_weight, voxel_loss
from .metrics import iou
from .models.cyclegan import _critic_layers
from .networks import Critic2D, Critic3D, ImageDecoder, VoxelDecoder
from .unpaired_data import load_pairs

PARTS = (
    "critic2d-classifier",
    "critic3d-classifier",
    "encoder2d-classifier",
    "encoder3d-classifier",
    "generator2d3d-paired",
    "generator3d2d-paired",
    "gan3d-unconditional",
    "gan2d-unconditional",
)
FAILED = 3


@dataclass
class Result:
    part: str
    passed: bool
    metric: str
    value: float
    criterion: str
    details: dict = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{'PASS' if self.passed else 'FAIL'}  {self.part:<22} {self.metric} {self.value:.3f}  "
            f"({self.criterion}; {self.seconds:.0f} s)"
        )


@dataclass
class Data:
    train_x: torch.Tensor  # [N, 1, s, s] in [-1, 1]
    train_y: torch.Tensor  # [N, R, R, R] viewer frame
    train_c: torch.Tensor  # [N] category index
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_c: torch.Tensor
    categories: list[str]


def load_data(ds, input_size: int | None, max_items: int) -> Data:
    def part(splits):
        xs, ys, cs = [], [], []
        for split in splits:
            if len(ds.indices(split)) == 0:
                continue
            x, y, items = load_pairs(ds, split, input_size, max_items)
            xs.append(x), ys.append(y), cs.append([ds.models[m].category for m in items[:, 0]])
        if not xs:
            raise VoxliftError(f"{ds.path}: no models in the {' or '.join(splits)} split")
        return torch.cat(xs), torch.cat(ys), [c for part in cs for c in part]

    tx, ty, tc = part(["train"])
    hx, hy, hc = part(["val", "test"])
    cats = sorted(set(tc))
    if len(cats) < 2:
        raise VoxliftError(
            f"{ds.path}: the classifier diagnostics need two categories or more (found {cats})"
        )
    index = {c: i for i, c in enumerate(cats)}
    keep = torch.tensor([c in index for c in hc])
    return Data(
        tx,
        ty,
        torch.tensor([index[c] for c in tc]),
        hx[keep],
        hy[keep],
        torch.tensor([index[c] for c, k in zip(hc, keep) if k]),
        cats,
    )


class _Head(nn.Module):
    """An encoder followed by a linear classifier."""

    def __init__(self, encoder: nn.Module, latent: int, classes: int):
        super().__init__()
        self.encoder, self.fc = encoder, nn.Linear(latent, classes)

    def forward(self, x):
        code = self.encoder(x)
        if isinstance(
            code, tuple
        ):  # projective encoders: (image-aligned map, global code); classify the latter
            code = code[1]
        return self.fc(F.leaky_relu(code, 0.2))


class _Classify(nn.Module):
    def __init__(self, critic):
        super().__init__()
        self.critic = critic

    def forward(self, x):
        return self.critic.classify(x)


def _batches(n: int, batch: int, steps: int, gen: torch.Generator):
    for _ in range(steps):
        yield torch.randint(0, n, (min(batch, n),), generator=gen)


@torch.no_grad()
def _apply(net: nn.Module, x: torch.Tensor, device, batch: int = 64) -> torch.Tensor:
    net.eval()
    out = torch.cat([net(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])
    net.train()
    return out


def _fit(
    net: nn.Module, x: torch.Tensor, target: torch.Tensor, loss_fn, cfg, device, lr: float = 1e-3, tick=None
) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    net.train()
    for idx in _batches(len(x), cfg.batch_size, cfg.steps, gen):
        loss = loss_fn(net(x[idx].to(device)), target[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if tick is not None:
            tick()


def generator_config(ds, cfg) -> UnpairedConfig:
    """The generator halves' config (generators.generator_halves) for --generators on this dataset."""
    s = cfg.input_size or ds.image_size
    kind, camera = resolve_generators(cfg.generators, ds, s)
    return UnpairedConfig(
        kind="diagnose",
        image_size=ds.image_size,
        input_size=s,
        resolution=ds.resolution,
        latent_dim=cfg.latent_dim,
        encoder_width=cfg.encoder_width,
        decoder_width=cfg.decoder_width,
        norm=cfg.norm,
        spectral="critics",
        generators=kind,
        camera=camera,
        decoder_head="deconv",
    )


def classifier_part(name: str, data: Data, cfg, device, halves: dict, tick=None) -> Result:
    k = len(data.categories)
    s, r = data.train_x.shape[-1], data.train_y.shape[-1]
    image = name.startswith(("critic2d", "encoder2d"))
    if name == "critic2d-classifier":
        net = _Classify(Critic2D(_critic_layers(s, 4), cfg.critic_width, k, "none", True))
    elif name == "critic3d-classifier":
        net = _Classify(Critic3D(_critic_layers(r, 3), cfg.critic_width, k, "none", True))
    else:
        part = "enc2d" if name == "encoder2d-classifier" else "enc3d"
        net = _Head(generator_halves(halves, (part,))[part], cfg.latent_dim, k)
    net = net.to(device)
    x, xt = (data.train_x, data.test_x) if image else (data.train_y, data.test_y)
    _fit(net, x, data.train_c, F.cross_entropy, cfg, device, tick=tick)
    acc = float((_apply(net, xt, device).argmax(1) == data.test_c).float().mean())
    majority = float(torch.bincount(data.test_c).max()) / len(data.test_c)
    return Result(
        name,
        acc >= cfg.min_accuracy,
        "held-out accuracy",
        acc,
        f">= {cfg.min_accuracy:g}",
        {"majority_class_rate": majority, "held_out": len(xt), "categories": data.categories},
    )


def generator_part(name: str, data: Data, cfg, device, halves: dict, tick=None) -> Result:
    if name == "generator2d3d-paired":
        net = nn.Sequential(*generator_halves(halves, ("enc2d", "dec3d")).values()).to(device)
        pw = positive_weight(float(data.train_y.mean()))
        _fit(
            net,
            data.train_x,
            data.train_y,
            lambda lo, t: voxel_loss(lo, t, "weighted-bce", pw),
            cfg,
            device,
            tick=tick,
        )
        value = float(iou(torch.sigmoid(_apply(net, data.test_x, device)), data.test_y, (0.5,)).mean())
        mean = data.train_y.mean(0, keepdim=True)
        th = max(
            np.linspace(0.05, 0.95, 19),
            key=lambda t: float(iou(mean.expand(len(data.train_y), -1, -1, -1), data.train_y, (t,)).mean()),
        )
        base = float(iou(mean.expand(len(data.test_y), -1, -1, -1), data.test_y, (float(th),)).mean())
        return Result(
            name,
            value > base,
            "held-out IoU@0.5",
            value,
            f"> mean shape {base:.3f}",
            {"mean_shape_iou": base, "mean_shape_threshold": float(th)},
        )
    net = nn.Sequential(*generator_halves(halves, ("enc3d", "dec2d")).values(), nn.Tanh()).to(device)
    _fit(net, data.train_y, data.train_x, F.l1_loss, cfg, device, tick=tick)
    value = float((_apply(net, data.test_y, device) - data.test_x).abs().mean())
    base = float((data.train_x.mean(0, keepdim=True) - data.test_x).abs().mean())
    return Result(
        name, value < base, "held-out L1", value, f"< mean image {base:.3f}", {"mean_image_l1": base}
    )


def gan_part(name: str, data: Data, cfg, device, tick=None) -> Result:
    three_d = name.startswith("gan3d")
    # grids binary, like the generator's straight-through ones (45-degree views are resampled: soft values
    # a critic would tell apart by their softness alone)
    real = (data.train_y > 0.5).float() if three_d else data.train_x
    held = data.test_y if three_d else data.test_x
    size = real.shape[-1]
    if three_d:
        g = VoxelDecoder(size, cfg.latent_dim, cfg.decoder_width, cfg.norm)
        init_occupancy(g, float(real.mean()))
        d = Critic3D(_critic_layers(size, 3), cfg.critic_width, 1, "none", cfg.spectral)
        squash, distance = straight_through, iou_distance
    else:
        g = ImageDecoder(size, cfg.latent_dim, cfg.decoder_width, cfg.norm)
        d = Critic2D(_critic_layers(size, 4), cfg.critic_width, 1, "none", cfg.spectral)
        squash, distance = torch.tanh, l1_distance
    g, d = g.to(device), d.to(device)
    n = len(held)
    noise = torch.randn(n, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))

    def sample():
        # Batch statistics, as in training: a GAN generator's running averages lag behind it.
        with torch.no_grad():
            out = squash(torch.cat([g(noise[i : i + 64].to(device)).float().cpu() for i in range(0, n, 64)]))
        return out > 0.5 if three_d else out

    def score():
        return distribution_scores(sample(), held > 0.5 if three_d else held, distance)

    start = score()
    n_critic = cfg.n_critic or (5 if cfg.gan == "wgan-gp" else 1)
    betas = (0.0 if cfg.gan == "wgan-gp" else 0.5, 0.9)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.gan_lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.gan_lr, betas=betas)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _step in range(cfg.steps):
        if tick is not None:
            tick()
        for _ in range(n_critic):
            idx = torch.randint(0, len(real), (min(cfg.batch_size, len(real)),), generator=gen)
            x = real[idx].to(device)
            z = torch.randn(len(idx), cfg.latent_dim, generator=gen).to(device)
            with torch.no_grad():
                fake = squash(g(z))
            loss = critic_loss(cfg.gan, d(x), d(fake))
            if cfg.gan == "wgan-gp":
                loss = loss + gradient_penalty(d, x, fake)
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
        z = torch.randn(min(cfg.batch_size, len(real)), cfg.latent_dim, generator=gen).to(device)
        loss = generator_loss(cfg.gan, d(squash(g(z))))
        if not torch.isfinite(loss):
            break
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
    end = score()
    # The two ends of the scale, for the reader: samples with no structure beyond each voxel's (pixel's)
    # own statistics, and the training set itself (what a perfect generator would score).
    rng = torch.Generator().manual_seed(cfg.seed + 2)
    if three_d:
        noise_set = torch.bernoulli(real.mean(0).expand(n, *real.shape[1:]), generator=rng) > 0.5
        ideal_set, ref = real[:n] > 0.5, held > 0.5
    else:
        noise_set = (real.mean(0) + real.std(0) * torch.randn(n, *real.shape[1:], generator=rng)).clamp(-1, 1)
        ideal_set, ref = real[:n], held
    independent = distribution_scores(noise_set, ref, distance)
    ideal = distribution_scores(ideal_set, ref, distance)
    passed = end.mmd <= cfg.min_gain * start.mmd
    return Result(
        name,
        passed,
        "MMD",
        end.mmd,
        f"<= {cfg.min_gain:g} x untrained {start.mmd:.3f}",
        {
            "trained": end.to_dict(),
            "untrained": start.to_dict(),
            "independent_samples": independent.to_dict(),
            "training_set": ideal.to_dict(),
            "distance": "1 - IoU" if three_d else "L1",
            "loss": cfg.gan,
        },
    )


def diagnose(ds, cfg, device, parts=PARTS, progress=None, show_bar: bool = False) -> list[Result]:
    """Every part in `parts`, one after the other; `progress(result)` after each; with `show_bar`, a
    progress bar of the steps of all parts on stderr (a large dataset takes minutes a part on a CPU)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    bar = tqdm(total=len(parts) * cfg.steps, unit="step", desc="diagnose: reading data", disable=not show_bar)
    data = load_data(ds, cfg.input_size, cfg.max_items)
    halves = generator_config(ds, cfg)
    results = []
    for k, name in enumerate(parts):
        bar.set_description(f"diagnose {k + 1}/{len(parts)} {name}")
        t0 = time.time()
        if name.endswith("classifier"):
            r = classifier_part(name, data, cfg, device, halves, tick=bar.update)
        elif name.endswith("paired"):
            r = generator_part(name, data, cfg, device, halves, tick=bar.update)
        else:
            r = gan_part(name, data, cfg, device, tick=bar.update)
        bar.n = (k + 1) * cfg.steps  # parts train their own number of steps; the bar follows the parts
        bar.refresh()
        r.seconds = time.time() - t0
        if not name.startswith(("critic", "gan")):
            r.details["generators"] = halves.generators
        results.append(r)
        if show_bar:
            bar.write(r.line(), file=sys.stdout)
        if progress is not None:
            progress(r)
    bar.close()
    return results


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="dataset folder (train split to train, val + test held out)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="only these parts")
    p.add_argument("--steps", type=int, default=300, help="training steps of each part")
    p.add_argument("--gan", default="wgan-gp", choices=GAN_KINDS, help="loss of the unconditional GANs")
    p.add_argument(
        "--n-critic", type=int, help="critic steps per generator step (default 5 for wgan-gp, else 1)"
    )
    p.add_argument(
        "--no-spectral",
        dest="spectral",
        action="store_false",
        help="no spectral normalisation in the GANs' critics",
    )
    p.add_argument("--gan-lr", type=float, default=1e-3, help="the unconditional GANs' learning rate")
    p.add_argument(
        "--min-gain",
        type=float,
        default=0.9,
        help="unconditional GANs pass when their MMD is at most this share of their untrained MMD",
    )
    p.add_argument(
        "--min-accuracy", type=float, default=0.8, help="classifiers pass at this held-out accuracy"
    )
    p.add_argument("--input-size", type=int, help="resize images to this (default: the dataset's size)")
    p.add_argument("--max-items", type=int, default=2000, help="(model, view) items read per split")
    p.add_argument("--latent-dim", type=int, default=128)
    p.add_argument("--encoder-width", type=int, default=16)
    p.add_argument("--decoder-width", type=int, default=8)
    p.add_argument("--critic-width", type=int, default=16)
    add_generators_argument(p)
    p.add_argument("--norm", default="batch", choices=("batch", "instance", "layer", "none"))
    p.add_argument("--batch-size", type=int, default=32)
    add_device_argument(p)
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from .device import pick_device

    device = pick_device(args.device)
    ds = open_dataset(args.data)
    results = diagnose(ds, args, device, args.parts, show_bar=not args.json)
    ok = all(r.passed for r in results)
    if args.json:
        json.dump(
            {"data": str(args.data), "passed": ok, "parts": [asdict(r) for r in results]},
            sys.stdout,
            indent=1,
        )
        print()
    else:
        print(f"{sum(r.passed for r in results)}/{len(results)} parts pass")
    return 0 if ok else FAILED
