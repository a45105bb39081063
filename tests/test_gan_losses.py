"""GAN losses checked against hand computations; spectral normalisation; the straight-through binariser."""

import numpy as np
import pytest
import torch
from torch import nn

from voxlift.backend.gan_losses import (
    critic_loss,
    generator_loss,
    gradient_penalty,
    init_occupancy,
    sample_scores,
    straight_through,
)
from voxlift.backend.networks import Critic2D, Critic3D, VoxelDecoder

torch.set_num_threads(1)


class Linear(nn.Module):
    """D(x) = <w, x>, one patch: its gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float64))

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1).view(-1, 1, 1, 1)


class SquarePatches(nn.Module):
    """Every pixel is a patch scoring x^2: the sample's score is mean(x^2), its gradient 2 x / n."""

    def forward(self, x):
        return x**2


def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_minus_one_squared():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(1, 4, 4))
    real, fake = (
        torch.from_numpy(rng.normal(size=(3, 1, 4, 4))),
        torch.from_numpy(rng.normal(size=(3, 1, 4, 4))),
    )
    gp = gradient_penalty(Linear(w), real, fake, weight=10.0).detach()
    assert float(gp) == pytest.approx(10 * (np.linalg.norm(w) - 1) ** 2, rel=1e-9)


def test_gradient_penalty_matches_a_hand_computation_at_the_mixed_points():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(4, 1, 3, 3)), rng.normal(size=(4, 1, 3, 3))
    eps = rng.uniform(size=4)
    x_hat = eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake
    grad = 2 * x_hat / 9  # d mean(x^2) / dx over 9 patches
    norms = np.sqrt((grad.reshape(4, -1) ** 2).sum(1))
    expect = 10 * np.mean((norms - 1) ** 2)
    gp = gradient_penalty(
        SquarePatches(), torch.from_numpy(real), torch.from_numpy(fake), torch.from_numpy(eps)
    ).detach()
    assert float(gp) == pytest.approx(expect, rel=1e-9)


def test_gradient_penalty_is_differentiable_for_the_critic():
    critic = Critic2D(layers=2, width=4, spectral=False)
    real, fake = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    gradient_penalty(critic, real, fake).backward()
    weights = [p for p in critic.parameters() if p.dim() > 1]  # (biases do not move an input gradient)
    assert weights and all(
        p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights
    )


def test_losses_on_known_scores():
    real = torch.tensor([[[[2.0, 0.0]]], [[[1.0, 1.0]]]])  # per-sample scores 1, 1
    fake = torch.tensor([[[[-1.0, -3.0]]], [[[0.0, 0.0]]]])  # per-sample scores -2, 0
    assert sample_scores(real).tolist() == [1.0, 1.0]
    assert float(critic_loss("wgan-gp", real, fake)) == pytest.approx(-1 - 1)
    assert float(generator_loss("wgan-gp", fake)) == pytest.approx(1.0)
    assert float(critic_loss("lsgan", real, fake)) == pytest.approx(0.5 * (0 + (4 + 0) / 2))
    assert float(generator_loss("lsgan", fake)) == pytest.approx((9 + 1) / 2)
    assert float(critic_loss("hinge", real, fake)) == pytest.approx(0 + (0 + 1) / 2)
    assert float(generator_loss("hinge", fake)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        critic_loss("vanilla", real, fake)


@pytest.mark.parametrize(
    "make_critic",
    [lambda: Critic2D(layers=3, width=8, spectral=True), lambda: Critic3D(layers=2, width=8, spectral=True)],
)
def test_spectral_normalised_layers_have_spectral_norm_one(make_critic):
    torch.manual_seed(0)  # power iteration converges slowly when the top singular values are close
    critic = make_critic()
    x = torch.randn(4, 1, *([16] * critic.dims))
    critic.train()
    for _ in range(200):  # each forward pass runs one power iteration
        critic(x)
    layers = [m for m in critic.modules() if hasattr(m, "parametrizations")]
    convs = [m for m in critic.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    assert len(layers) == len(convs) >= 3  # every layer
    for m in layers:
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, abs=0.02)
    plain = Critic2D(layers=3, width=8, spectral=False)
    sigmas = [
        float(torch.linalg.matrix_norm(m.weight.reshape(m.weight.shape[0], -1), ord=2))
        for m in plain.modules()
        if isinstance(m, nn.Conv2d)
    ]
    assert max(abs(s - 1) for s in sigmas) > 0.1  # without it the layers are not normalised


def test_critics_refuse_batch_norm():
    with pytest.raises(ValueError, match="batch norm"):
        Critic3D(norm="batch")


def test_straight_through_is_binary_forward_and_sigmoid_backward():
    logits = torch.tensor([-2.0, -0.1, 0.3, 4.0], requires_grad=True)
    out = straight_through(logits)
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    out.sum().backward()
    s = torch.sigmoid(logits.detach())
    assert torch.allclose(logits.grad, s * (1 - s))


def test_init_occupancy_sets_the_last_bias_to_the_logit():
    dec = VoxelDecoder(16, 8, 4, "batch")
    init_occupancy(dec, 0.1)
    assert float(dec.net[-1].bias[0]) == pytest.approx(np.log(0.1 / 0.9), rel=1e-6)
    dec.eval()
    share = float(torch.sigmoid(dec(torch.randn(4, 8))).mean())
    assert 0.02 < share < 0.3  # starts near the data's occupancy, not at 0.5
