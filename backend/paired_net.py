"""The paired model's network: one grayscale image -> occupancy logits of a grid.

    PairedNet(image_size, resolution, latent_dim, encoder_width, decoder_width, norm, decoder_head, lift)
    [B, 1, S, S] images in [-1, 1] -> logits [B, R, R, R]

networks.ImageEncoder to a latent vector, networks.VoxelDecoder from it. With `lift` (viewer-centred runs'
default), the encoder's 8x8 feature map is also lifted into the decoder's 8^3 block: a 1x1 convolution gives
every image cell a column of features along the viewing direction, added to the decoder's own (image columns
-> x, rows -> z flipped, depth -> y: the viewer frame seen from azimuth 0, camera on -Y). Where a leg or a rod
is in the image survives this path, while the latent vector alone blurs it.
"""

from __future__ import annotations

import torch
from torch import nn

from .networks import ImageEncoder, VoxelDecoder

LIFT_SIDE = 8  # the lifted block's side (image cells and 3D cells)


class PairedNet(nn.Module):
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
        # channels-last 3D activations: on the CPU the 3D convolutions run several times faster so (a Conv3d
        # to one channel in the default layout takes a slow path: 8x slower measured here)
        self.decoder.memory_format = torch.channels_last_3d
        self.decoder.to(memory_format=torch.channels_last_3d)
        self.lift = None
        if lift:
            if image_size < 2 * LIFT_SIDE or resolution < 2 * LIFT_SIDE:
                raise ValueError(
                    f"lift needs images and grids of at least {2 * LIFT_SIDE} (got {image_size}, {resolution})"
                )
            self.lift_channels = self.decoder.sides[LIFT_SIDE][1]
            self.lift = nn.Conv2d(self.encoder.sides[LIFT_SIDE][1], self.lift_channels * LIFT_SIDE, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.encoder.feature_maps(x)
        z = self.encoder.code(maps[4])
        add = None
        if self.lift is not None:
            add = {LIFT_SIDE: lift_to_grid(self.lift(maps[LIFT_SIDE]), self.lift_channels)}
        return self.decoder(z, add)


def lift_to_grid(columns: torch.Tensor, channels: int) -> torch.Tensor:
    """[B, C*D, n, n] image-aligned feature columns -> [B, C, n, D, n] in the viewer frame's [x, y, z]:
    image column -> x, depth -> y (away from the camera), image row -> z flipped (row 0 is the top)."""
    b, cd, n, _ = columns.shape
    return columns.view(b, channels, cd // channels, n, n).permute(0, 1, 4, 2, 3).flip(-1)
