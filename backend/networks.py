"""The building blocks shared by the paired and the unpaired models (one module, as in pytorch-CycleGAN).

    ImageEncoder   [B, 1, S, S]    -> [B, latent]         2D convolutions, stride 2 down to 4x4
    VoxelDecoder   [B, latent]     -> [B, R, R, R] logits  3D transposed convolutions up from 4^3
    VoxelEncoder   [B, R, R, R]    -> [B, latent]         3D convolutions, stride 2 down to 4^3
    ImageDecoder   [B, latent]     -> [B, 1, S, S] raw     2D transposed convolutions up from 4x4
    Critic2D       [B, 1, S, S]    -> [B, C, h, w]         PatchGAN scores (C=1) or class logits per patch
    Critic3D       [B, 1, R, R, R] -> [B, C, d, d, d]

Paired model: ImageEncoder + VoxelDecoder. CycleGAN: G_2D->3D = ImageEncoder + VoxelDecoder, G_3D->2D =
VoxelEncoder + ImageDecoder, which are also the two cross autoencoders' halves.

`spectral=True` wraps every convolution and linear layer in spectral normalisation. Critics never use batch
norm: a gradient penalty is computed per sample, and batch norm would mix samples (Gulrajani et al. 2017).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

NORMS = ("batch", "instance", "layer", "none")


def _sn(layer: nn.Module, spectral: bool) -> nn.Module:
    return spectral_norm(layer) if spectral else layer


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
    if kind == "instance":
        return (
            nn.InstanceNorm2d(channels, affine=True)
            if dims == 2
            else nn.InstanceNorm3d(channels, affine=True)
        )
    if kind == "layer":
        return nn.GroupNorm(
            1, channels
        )  # layer norm over (C, spatial): per-sample, safe with a gradient penalty
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def _halvings(size: int, name: str) -> int:
    """How many stride-2 steps take `size` to 4; sizes must be 4 * 2^k."""
    steps = round(math.log2(size / 4)) if size >= 4 else -1
    if steps < 1 or 4 * 2**steps != size:
        raise ValueError(f"{name} must be 4 * 2^k and at least 8 (got {size})")
    return steps


def _channels(width: int, step: int, cap: int = 8) -> int:
    return width * min(2**step, cap)


class _Encoder(nn.Module):
    """Stride-2 convolutions from `size` down to 4 (2D or 3D), then a linear layer to the latent vector."""

    def __init__(self, dims: int, size: int, latent_dim: int, width: int, norm: str, spectral: bool):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        steps = _halvings(size, "image_size" if dims == 2 else "resolution")
        layers: list[nn.Module] = []
        cin = 1
        for s in range(steps):
            cout = _channels(width, s)
            layers += [
                _sn(conv(cin, cout, 4, stride=2, padding=1, bias=norm == "none"), spectral),
                _norm(norm if s > 0 else "none", cout, dims),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = _sn(nn.Linear(cin * 4**dims, latent_dim), spectral)
        self.dims, self.size = dims, size
        # side of the feature map -> (layers that end with it, its channels): every block is (conv, norm, act)
        self.sides = {size >> (s + 1): (3 * (s + 1), _channels(width, s)) for s in range(steps)}

    def feature_maps(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The feature map after each block, by its side (e.g. {32: .., 16: .., 8: .., 4: ..} for 64 px)."""
        if x.dim() == self.dims + 1:
            x = x.unsqueeze(1)
        maps, done = {}, 0
        for side, (end, _) in self.sides.items():
            x = self.features[done:end](x)
            maps[side], done = x, end
        return maps

    def code(self, last_map: torch.Tensor) -> torch.Tensor:
        """The latent vector from the last (4-wide) feature map."""
        return self.fc(torch.flatten(last_map, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.dims + 1:  # add the channel axis of a grid [B, R, R, R] or image [B, S, S]
            x = x.unsqueeze(1)
        return self.fc(torch.flatten(self.features(x), 1))


HEADS = ("deconv", "shuffle")


def _shuffle_up(x: torch.Tensor, dims: int) -> torch.Tensor:
    """[B, 2^dims, n, ...] -> [B, 1, 2n, ...]: sub-pixel (voxel) shuffle, the 2D/3D PixelShuffle with factor 2."""
    b, _, *n = x.shape
    x = x.reshape(b, *([2] * dims), *n)
    # (b, f1, .., fd, n1, .., nd) -> (b, n1, f1, .., nd, fd)
    order = [0] + [p for i in range(dims) for p in (1 + dims + i, 1 + i)]
    return x.permute(*order).reshape(b, 1, *[2 * k for k in n])


class _Decoder(nn.Module):
    """A linear layer to a 4^dims feature block, then stride-2 transposed convolutions up to `size`.

    head "deconv": the last doubling is a transposed convolution to `width` channels at full size, then a
    3-wide convolution to one channel. head "shuffle": the last doubling is a 3-wide convolution to 2^dims
    channels at half size, shuffled into the full-size grid (sub-pixel convolution, Shi et al. 2016): no
    full-size feature maps, which at 32^3 are most of the CPU time of the "deconv" head (measured 5x
    fewer FLOPs there), so the layers below can be wider for the same time."""

    def __init__(
        self,
        dims: int,
        size: int,
        latent_dim: int,
        width: int,
        norm: str,
        spectral: bool,
        head: str = "deconv",
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown decoder head {head!r}; choose one of {HEADS}")
        deconv = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        steps = _halvings(size, "image_size" if dims == 2 else "resolution")
        self.c0 = _channels(width, steps)
        self.fc = _sn(nn.Linear(latent_dim, self.c0 * 4**dims), spectral)
        layers: list[nn.Module] = [_norm(norm, self.c0, dims), nn.ReLU(inplace=True)]
        cin = self.c0
        for s in reversed(range(steps if head == "deconv" else steps - 1)):
            cout = _channels(width, s if head == "deconv" else s + 1)
            layers += [
                _sn(deconv(cin, cout, 4, stride=2, padding=1, bias=norm == "none"), spectral),
                _norm(norm, cout, dims),
                nn.ReLU(inplace=True),
            ]
            cin = cout
        layers.append(_sn(conv(cin, 1 if head == "deconv" else 2**dims, 3, padding=1), spectral))
        self.net = nn.Sequential(*layers)
        self.dims, self.head = dims, head
        # side of a feature block -> (layers of self.net that end with it, its channels): (norm, relu) at 4,
        # then one (deconv, norm, relu) block per doubling
        ups = steps if head == "deconv" else steps - 1
        self.sides = {4: (2, self.c0)}
        for k in range(ups):  # the k-th doubling, as built above
            s = ups - 1 - k
            self.sides[4 << (k + 1)] = (2 + 3 * (k + 1), _channels(width, s if head == "deconv" else s + 1))
        self.memory_format = (
            torch.contiguous_format
        )  # the paired model sets channels-last 3D (faster on CPUs)

    def first_block(self, z: torch.Tensor) -> torch.Tensor:
        """The first feature block [B, c0, 4, ...], from the latent vector."""
        return (
            self.fc(z)
            .view(z.shape[0], self.c0, *([4] * self.dims))
            .contiguous(memory_format=self.memory_format)
        )

    def forward(self, z: torch.Tensor, add: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Latent vectors -> [B, 1, size, ...]. `add` maps a block's side to features added to that block once
        it is computed (the paired model lifts the image's features into the grid so)."""
        x, done = self.first_block(z), 0
        for side, (end, _) in self.sides.items():
            x = self.net[done:end](x)
            if add and side in add:
                x = x + add[side].contiguous(memory_format=self.memory_format)
            done = end
        return self.shuffle(self.net[done:](x))

    def shuffle(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's output -> the full-size output (the identity for the "deconv" head)."""
        return _shuffle_up(x, self.dims) if self.head == "shuffle" else x


class ImageEncoder(_Encoder):
    def __init__(
        self,
        image_size: int = 128,
        latent_dim: int = 256,
        width: int = 32,
        norm: str = "batch",
        spectral: bool = False,
    ):
        super().__init__(2, image_size, latent_dim, width, norm, spectral)


class VoxelEncoder(_Encoder):
    def __init__(
        self,
        resolution: int = 32,
        latent_dim: int = 256,
        width: int = 32,
        norm: str = "batch",
        spectral: bool = False,
    ):
        super().__init__(3, resolution, latent_dim, width, norm, spectral)


class VoxelDecoder(_Decoder):
    """Logits [B, R, R, R] (the channel axis is dropped: one occupancy logit per voxel)."""

    def __init__(
        self,
        resolution: int = 32,
        latent_dim: int = 256,
        width: int = 32,
        norm: str = "batch",
        spectral: bool = False,
        head: str = "deconv",
    ):
        super().__init__(3, resolution, latent_dim, width, norm, spectral, head)

    def forward(self, z: torch.Tensor, add: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        return super().forward(z, add).squeeze(1)


class ImageDecoder(_Decoder):
    """Raw outputs [B, 1, S, S]: the caller chooses tanh (images in [-1, 1]) or sigmoid."""

    def __init__(
        self,
        image_size: int = 128,
        latent_dim: int = 256,
        width: int = 32,
        norm: str = "batch",
        spectral: bool = False,
        head: str = "deconv",
    ):
        super().__init__(2, image_size, latent_dim, width, norm, spectral, head)


class _Critic(nn.Module):
    """PatchGAN critic: `layers` stride-2 convolutions, then a 3-wide convolution to `out_channels` per patch.

    With out_channels > 1 and `classify()`, the same network is a classifier (the diagnostics use it so)."""

    def __init__(self, dims: int, layers: int, width: int, out_channels: int, norm: str, spectral: bool):
        super().__init__()
        if norm == "batch":
            raise ValueError("critics take no batch norm (it breaks the per-sample gradient penalty)")
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        mods: list[nn.Module] = []
        cin = 1
        for s in range(layers):
            cout = _channels(width, s)
            mods += [
                _sn(conv(cin, cout, 4, stride=2, padding=1), spectral),
                _norm(norm if s > 0 else "none", cout, dims),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin = cout
        mods.append(_sn(conv(cin, out_channels, 3, padding=1), spectral))
        self.net = nn.Sequential(*mods)
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.dims + 1:
            x = x.unsqueeze(1)
        return self.net(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Patch scores averaged: [B, out_channels]."""
        return self.forward(x).flatten(2).mean(2)


class Critic2D(_Critic):
    def __init__(
        self,
        layers: int = 4,
        width: int = 32,
        out_channels: int = 1,
        norm: str = "none",
        spectral: bool = True,
    ):
        super().__init__(2, layers, width, out_channels, norm, spectral)


class Critic3D(_Critic):
    def __init__(
        self,
        layers: int = 3,
        width: int = 32,
        out_channels: int = 1,
        norm: str = "none",
        spectral: bool = True,
    ):
        super().__init__(3, layers, width, out_channels, norm, spectral)


def add_decoder_head_argument(p) -> None:
    """`--decoder-head`, the same for every training kind (argparse parser `p`)."""
    p.add_argument(
        "--decoder-head",
        default="shuffle",
        choices=HEADS,
        help="last doubling of the decoders: sub-pixel shuffle (default, several times faster on the "
        "CPU) or a transposed convolution",
    )


def decoder_head(config: dict) -> str:
    """A run's decoder head; runs from before the option used transposed convolutions."""
    return config.get("decoder_head", "deconv")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
