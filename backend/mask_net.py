"""The mask network: where the object is in a picture that has no alpha (a user's photo), so it can be framed.

    MaskNet(width)   [B, 1, S, S] pictures in [-1, 1] -> mask logits [B, 1, S, S]

A small U-Net: four stride-2 stages down to S/16, back up to S/2 with the skipped features at each side. It is trained on the pictures compositing.py makes (the object anywhere, at
any size, on photographs, noise and shapes) against their alpha, as its own model kind (models/mask.py), and
used by framing.py (through mask_finder.py) to find and frame the object before a reconstructing model sees it.
"""

from __future__ import annotations

import torch
from torch import nn

STAGES = 4  # stride-2 stages: width, 2, 4 and 8 times width channels at S/2, S/4, S/8 and S/16


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class MaskNet(nn.Module):
    """Down by stride-2 stages from S to S/16, back up to S/2 with the skipped features at each side; the
    logits come out at S/2 and are doubled bilinearly (no layer runs at full size: on a CPU those cost most)."""

    def __init__(self, width: int = 16):
        super().__init__()
        chans = tuple(width << k for k in range(STAGES))
        self.down = nn.ModuleList(
            _block(1 if k == 0 else chans[k - 1], chans[k], stride=2) for k in range(STAGES)
        )
        self.up = nn.ModuleList(
            _block(chans[k + 1] + chans[k], chans[k]) for k in reversed(range(STAGES - 1))
        )
        self.head = nn.Conv2d(chans[0], 1, 1)
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
        return nn.functional.interpolate(
            self.head(h), size=x.shape[-2:], mode="bilinear", align_corners=False
        )


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus soft Dice: the Dice term keeps small objects (a stool far away) from being given up."""
    logits, target = logits.float(), target.float()
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + dice.mean()
