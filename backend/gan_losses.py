"""GAN losses for the unpaired model: WGAN-GP, least squares (LSGAN) and hinge; the voxel reconstruction loss.

A PatchGAN critic scores patches, [B, 1, h, w(, d)]; every loss here first averages a sample's patches into
one score, so that WGAN's critic is a function of the whole sample and the gradient penalty is per sample.

    kind      critic loss                                   generator loss
    wgan-gp   E[D(fake)] - E[D(real)] + lambda * GP          -E[D(fake)]
    lsgan     (E[(D(real) - 1)^2] + E[D(fake)^2]) / 2        E[(D(fake) - 1)^2]
    hinge     E[relu(1 - D(real))] + E[relu(1 + D(fake))]    -E[D(fake)]

GP = E[(||grad_x D(x_hat)||_2 - 1)^2] with x_hat = eps * real + (1 - eps) * fake, eps ~ U(0, 1) per sample
(Gulrajani et al. 2017, lambda = 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_KINDS = ("wgan-gp", "lsgan", "hinge")
GP_WEIGHT = 10.0


def sample_scores(scores: torch.Tensor) -> torch.Tensor:
    """One score per sample: the mean of its patch scores (in float32, also under bf16 autocast)."""
    scores = scores.reshape(scores.shape[0], -1)
    return (scores.float() if scores.dtype in (torch.bfloat16, torch.float16) else scores).mean(1)


def gradient_penalty(
    critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None, weight: float = GP_WEIGHT
) -> torch.Tensor:
    """weight * mean over samples of (||grad D(x_hat)|| - 1)^2; `eps` [B] fixes the mixing (for tests)."""
    b = real.shape[0]
    if eps is None:
        eps = torch.rand(b, device=real.device, dtype=real.dtype)
    eps = eps.reshape(b, *([1] * (real.dim() - 1)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    score = sample_scores(critic(x_hat))
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    norm = grad.reshape(b, -1).norm(2, dim=1)
    return weight * ((norm - 1) ** 2).mean()


def critic_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's loss without the gradient penalty (add `gradient_penalty` for wgan-gp)."""
    r, f = sample_scores(real_scores), sample_scores(fake_scores)
    if kind == "wgan-gp":
        return f.mean() - r.mean()
    if kind == "lsgan":
        return 0.5 * (((r - 1) ** 2).mean() + (f**2).mean())
    if kind == "hinge":
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_KINDS}")


def generator_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    f = sample_scores(fake_scores)
    if kind in ("wgan-gp", "hinge"):
        return -f.mean()
    if kind == "lsgan":
        return ((f - 1) ** 2).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_KINDS}")


def straight_through(logits: torch.Tensor) -> torch.Tensor:
    """Binary grids (p > 0.5) forward, sigmoid's gradient backward (Bengio et al. 2013).

    A critic shown sigmoid probabilities next to real 0/1 grids separates them by their softness alone (its
    loss falls to ~0.01 within 50 steps in `voxlift diagnose`), and the generator learns nothing from it;
    binary fakes leave the critic only the shapes to judge."""
    p = torch.sigmoid(logits)
    return (p > 0.5).to(p.dtype) + p - p.detach()


def init_occupancy(decoder, occupancy: float) -> None:
    """Start a VoxelDecoder at the data's share of occupied voxels: its last bias set to logit(occupancy)."""
    import math

    last = [m for m in decoder.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))][-1]
    occupancy = min(max(float(occupancy), 1e-3), 1 - 1e-3)
    with torch.no_grad():
        last.bias.fill_(math.log(occupancy / (1 - occupancy)))
