"""The mask network: where the object is in a picture that has no alpha (a user's photo), so it can be framed.

    MaskNet(width, stage_convs, full_res_head)   [B, 1, S, S] pictures in [-1, 1] -> mask logits [B, 1, S, S]

A small U-Net: four stride-2 stages down to S/16 (`stage_convs` 3x3 convolutions each), back up to S/2 with the
skipped features at each side; with `full_res_head` a last layer at full size sees those features beside the
picture itself, so the mask's edge follows the picture's (thin legs, a chair's slats) instead of a 2x-upsampled
guess. It is trained on the pictures compositing.py makes (the object anywhere, at any size, on photographs,
noise and shapes) against their alpha, as its own model kind (models/mask.py), and used by framing.py (through
mask_finder.py) to find and frame the object before a reconstructing model sees it.

The first shipped mask model (config stage_convs 1, full_res_head false: the defaults a config without those
fields means) had one convolution per stage and its logits at S/2; mask IoU 0.744 on its validation pictures.
"""

from __future__ import annotations

import torch
from torch import nn

STAGES = 4  # stride-2 stages: width, 2, 4 and 8 times width channels at S/2, S/4, S/8 and S/16
HEAD_SHARE = 3  # the full-size layer has width / HEAD_SHARE channels


def _block(cin: int, cout: int, stride: int = 1, convs: int = 1) -> nn.Sequential:
    """`convs` conv-BN-ReLU layers in one flat Sequential (the first with `stride`): a checkpoint's keys are
    down.K.0 (conv), .1 (norm), then .3, .4 for the second, whatever the count."""
    layers = []
    for k in range(convs):
        layers += [
            nn.Conv2d(
                cin if k == 0 else cout, cout, 3, stride=stride if k == 0 else 1, padding=1, bias=False
            ),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class MaskNet(nn.Module):
    """Down by stride-2 stages from S to S/16, back up to S/2 with the skipped features at each side. Without
    `full_res_head` the logits come out at S/2 and are doubled bilinearly; with it, one narrow layer at full
    size (width / HEAD_SHARE channels) joins the upsampled features and the picture."""

    def __init__(self, width: int = 16, stage_convs: int = 1, full_res_head: bool = False):
        super().__init__()
        chans = tuple(width << k for k in range(STAGES))
        self.down = nn.ModuleList(
            _block(1 if k == 0 else chans[k - 1], chans[k], stride=2, convs=stage_convs)
            for k in range(STAGES)
        )
        self.up = nn.ModuleList(
            _block(chans[k + 1] + chans[k], chans[k]) for k in reversed(range(STAGES - 1))
        )
        head_in = chans[0]
        self.squeeze = self.full = None
        if full_res_head:  # narrowed at S/2 before doubling: on a CPU full-size layers cost most
            head_in = max(8, width // HEAD_SHARE)
            self.squeeze = nn.Conv2d(chans[0], head_in, 1)
            self.full = _block(head_in + 1, head_in)
        self.head = nn.Conv2d(head_in, 1, 1)
        nn.init.constant_(self.head.bias, -1.0)  # most of a picture is background

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for down in self.down:
            h = down(h)
            skips.append(h)
        h = skips.pop()
        for up in self.up:
            skip = skips.pop()
            h = up(torch.cat([nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], 1))
        if self.full is None:
            return nn.functional.interpolate(
                self.head(h), size=x.shape[-2:], mode="bilinear", align_corners=False
            )
        h = nn.functional.interpolate(
            self.squeeze(h), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.head(self.full(torch.cat([h, x], 1)))


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus soft Dice: the Dice term keeps small objects (a stool far away) from being given up."""
    logits, target = logits.float(), target.float()
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + dice.mean()
