"""BaseModel: what a model kind supplies to the one training loop (loop.py).

The loop owns the run: its folder, resume, the budget, progress, logs, validation cadence, checkpoints and
Ctrl-C. A kind owns what differs: its options and config, its networks and data, one training step, its
validation and the state an exact resume needs. See template_model.py for a kind written from scratch.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt
from ..config import RunConfig


@dataclass
class RunContext:
    """Where a run trains: given to a model when the loop builds it."""

    device: torch.device
    rank: int = 0  # this process among `world` (torchrun); only rank 0 writes
    world: int = 1
    amp: bool = False  # bf16 autocast of the forward passes
    out: str = ""  # the run folder (for messages)


@dataclass
class Validation:
    """One validation: scores to log, the one `score` that picks best.safetensors (higher is better), and
    pictures for TensorBoard ([H, W] arrays in [0, 1])."""

    scores: dict[str, float]
    score: float
    images: dict[str, np.ndarray] = field(default_factory=dict)


class BaseModel:
    kind: ClassVar[str]
    Config: ClassVar[type[RunConfig]]
    default_steps: ClassVar[int] = 2000  # the budget when neither --steps nor --max-minutes is given
    default_val_every: ClassVar[int] = 250
    next_step: ClassVar[str] = ""  # said after a finished run ("{out}": its folder)

    # -- declared beside each kind ------------------------------------------------------------------------
    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """The kind's own options (the run's: --data, --out, the budget, ... are the loop's)."""

    @classmethod
    def config_from_args(cls, args, ds) -> RunConfig:
        """A new run's config from the command's options and the dataset."""
        raise NotImplementedError

    @classmethod
    def resume_config(cls, config: RunConfig, args) -> RunConfig:
        """The config a resumed run continues with (by default the run's own, whatever the command says)."""
        return config

    # -- one run ------------------------------------------------------------------------------------------
    def __init__(self, config: RunConfig, ds, ctx: RunContext):
        self.config, self.ds, self.ctx = config, ds, ctx

    def configure(self, args) -> None:
        """The command's options that are not the run's config (workers, validation size...): they may
        differ between a run and its resumption."""

    def start_fresh(self, out) -> None:
        """Before the first step of a new run (not a resumed one): initialisations, files of the kind's own."""

    def train_step(self, step: int, progress: float) -> dict[str, torch.Tensor]:
        """One update. `step` counts from 0; `progress` is the share of the budget spent, in [0, 1).
        Returns the losses (scalar tensors); "loss" is the one that was minimised."""
        raise NotImplementedError

    def validate(self) -> Validation:
        raise NotImplementedError

    def networks(self) -> nn.Module:
        """The module whose state_dict is the checkpoint's "model." tensors: `self.model`, which every kind
        builds in its __init__ (a kind that keeps its networks elsewhere overrides this)."""
        return self.model

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers, by the name their state is saved under ("optimizer": the one of a one-optimiser kind)."""
        return {}

    def training_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors and JSON-able metadata, beyond the weights, that an exact resume needs: by default the
        optimisers' state (a kind with more, such as cyclegan's image pools, adds to it)."""
        tensors, meta = {}, {}
        for name, opt in self.optimizers().items():
            t, meta[name] = ckpt.flatten_optimizer(opt.state_dict(), _prefix(name))
            tensors.update(t)
        return tensors, meta

    def load_training_state(self, tensors: dict[str, torch.Tensor], meta: dict, path) -> None:
        """The inverse of training_state (the weights are loaded already)."""
        for name, opt in self.optimizers().items():
            opt.load_state_dict(ckpt.unflatten_optimizer(tensors, meta[name], _prefix(name)))

    def lr(self) -> float:
        """The learning rate now, for the log."""
        return float("nan")

    def close(self) -> None:
        """Free what the run holds (threads, files)."""

    # -- using a trained checkpoint -----------------------------------------------------------------------
    @classmethod
    def image_to_grid(cls, config: RunConfig, tensors: dict[str, torch.Tensor], path) -> nn.Module:
        """Kinds that reconstruct: the network taking images [B, 1, S, S] in [-1, 1] to logits [B, R, R, R],
        its weights loaded from a checkpoint's tensors."""
        raise NotImplementedError(f"{cls.kind} checkpoints do not turn images into grids")


def _prefix(name: str) -> str:
    # the tensor names checkpoints have always used: "optim." for the one optimiser, "opt_g." for "opt_g"
    return "optim." if name == "optimizer" else f"{name}."
