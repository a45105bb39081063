"""A template for a new model kind: copy it to models/<kind>.py and fill it in (as in pytorch-CycleGAN).

This one works as it is (tests/test_registry.py trains it): a linear map from a small image to a grid's
logits, trained on the paired data with weighted BCE. To make `voxlift train template` exist, add one line to
registry.KINDS:

    ModelKind("template", "template_model", "Template", "what it is, in one line", reconstructs=True),

What a kind supplies (models/base.py documents each method):
  * a config dataclass (fields with the defaults that configs written before a field existed mean, and
    their checks), and `add_arguments` for the command's options, with the defaults of new runs;
  * `config_from_args`: a new run's config from the options and the dataset;
  * `__init__` (networks, optimiser, data), `train_step`, `validate`, `self.model` (its networks), and `optimizers` (their
    state is saved for an exact resume; a kind with more state overrides `training_state` too);
  * `image_to_grid`, if its checkpoints reconstruct;
  * under torchrun (ctx.world > 1) gradients averaged over the processes (device.average_gradients, as here)
    or the network wrapped in DistributedDataParallel (as models/paired.py does).
The loop (loop.py) does everything else: run folder, resume, budget, progress, logs, checkpoints, Ctrl-C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt
from ..config import RunConfig, sized
from ..data import Augment, AugmentConfig, ViewDataset, run_fields, step_batches
from ..device import average_gradients, broadcast_state
from ..losses import positive_weight, voxel_loss
from ..metrics import iou
from .base import BaseModel, Validation

INPUT_SIZE = 16  # the template reads 16x16 images


@dataclass(kw_only=True)
class TemplateConfig(RunConfig):
    kind: str = "template"
    lr: float = sized(1e-3, 0.0, 10.0)
    pos_weight: float = sized(1.0, 0.0, 1e4)


def add_arguments(p) -> None:
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--batch-size", type=int, default=16)


class TemplateNet(nn.Module):
    """[B, 1, S, S] images in [-1, 1] -> logits [B, R, R, R]."""

    def __init__(self, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.linear = nn.Linear(INPUT_SIZE * INPUT_SIZE, resolution**3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="area")
        return self.linear(x.flatten(1)).view(-1, *(self.resolution,) * 3)


class TemplateModel(BaseModel):
    kind = "template"
    Config = TemplateConfig
    default_steps = 100
    add_arguments = staticmethod(add_arguments)

    @classmethod
    def config_from_args(cls, args, ds) -> TemplateConfig:
        fields = run_fields(args, ds)
        return TemplateConfig(
            **fields,
            input_size=min(ds.image_size, 64),
            pos_weight=positive_weight(fields["occupancy"]),
            lr=args.lr,
            batch_size=args.batch_size,
        )

    def __init__(self, config: TemplateConfig, ds, ctx):
        super().__init__(config, ds, ctx)
        self.model = TemplateNet(config.resolution).to(ctx.device)
        self.optim = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.train_set = ViewDataset(ds.path, ds.indices("train"))
        self.val_set = ViewDataset(
            ds.path, ds.indices("val") if len(ds.indices("val")) else ds.indices("train")
        )
        self.augment = Augment(AugmentConfig(background=config.background), seed=config.seed)
        self.batches = None

    def train_step(self, step: int, progress: float) -> dict:
        if self.batches is None:  # data order is a function of the step: a resumed run goes on exactly
            self.batches = step_batches(
                self.train_set, self.config.batch_size, self.config.seed, step, self.ctx
            )
        x, target = self.augment(next(self.batches), self.ctx.device, step=step)
        loss = voxel_loss(self.model(x), target, "weighted-bce", self.config.pos_weight)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        # under torchrun each process holds its own copy: gradients averaged, buffers (batch norm) as process 0's
        average_gradients(list(self.model.parameters()), self.ctx.world)
        self.optim.step()
        broadcast_state(self.model, self.ctx.world, buffers_only=True)
        return {"loss": loss.detach()}

    @torch.no_grad()
    def validate(self) -> Validation:
        items = [self.val_set[i] for i in range(min(64, len(self.val_set)))]
        x, target = self.augment(torch.utils.data.default_collate(items), self.ctx.device, train=False)
        score = float(np.mean(iou(torch.sigmoid(self.model(x)), target, (0.3,))))
        return Validation({"iou@0.3": score}, score)

    def optimizers(self) -> dict:
        return {"optimizer": self.optim}

    @classmethod
    def image_to_grid(cls, config: TemplateConfig, tensors, path) -> nn.Module:
        net = TemplateNet(config.resolution)
        ckpt.load_module_state(net, tensors, "model.", path)
        return net


MODEL = TemplateModel
