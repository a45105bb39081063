"""The mask head: where the object is in a picture that has no alpha (a user's photo), so it can be framed.

    MaskNet(width)   [B, 1, S, S] pictures in [-1, 1] -> mask logits [B, 1, S, S]

A small U-Net: three stride-2 stages down to S/8, back up with the skipped features at each side, so that a
thin chair leg keeps its pixels. It is trained on the pictures compositing.py makes (the object anywhere, at
any size, on photographs, noise and shapes) against their alpha, beside the paired model (models/paired.py),
and used by predict.prepare_image to find and frame the object before the paired network sees it.
"""

from __future__ import annotations

import torch
from torch import nn

STAGES = 3  # stride-2 stages: channels width, 2 width, 4 width at S/2, S/4, S/8


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class MaskNet(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        widths = tuple(width << k for k in range(STAGES))
        chans = (max(1, width // 2), *widths)
        self.stem = _block(1, chans[0])
        self.down = nn.ModuleList(_block(chans[k], chans[k + 1], stride=2) for k in range(len(widths)))
        self.up = nn.ModuleList(
            _block(chans[k + 1] + chans[k], chans[k]) for k in reversed(range(len(widths)))
        )
        self.head = nn.Conv2d(chans[0], 1, 1)
        nn.init.constant_(self.head.bias, -1.0)  # most of a picture is background

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up in self.up:
            skip = skips.pop()
            h = up(torch.cat([nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], 1))
        return self.head(h)


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus soft Dice: the Dice term keeps small objects (a stool far away) from being given up."""
    logits, target = logits.float(), target.float()
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + dice.mean()
