"""The one list of model kinds: `voxlift train KIND`, `voxlift evaluate`, prediction and the Train panel read it.

This module imports neither torch nor bpy, so the add-on's panel and `voxlift --help` can list the kinds
before PyTorch is installed. Each kind's code lives in `voxlift.backend.models.<module>`, whose `MODEL`
is a `BaseModel` subclass (see models/template_model.py for how to add a kind: one new file, one line here).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelKind:
    name: str  # the KIND of `voxlift train KIND`, and the "kind" in every checkpoint's config
    module: str  # voxlift.backend.models.<module>
    label: str  # short name in the Train panel
    description: str  # one line: `voxlift train --help`, the panel's tooltip
    reconstructs: bool  # its checkpoints turn an image into a grid (evaluate, reconstruct, the add-on)


KINDS: dict[str, ModelKind] = {
    k.name: k
    for k in (
        ModelKind(
            "paired",
            "paired",
            "Paired",
            "image encoder + 3D decoder trained on aligned (image, grid) pairs",
            reconstructs=True,
        ),
        ModelKind(
            "cyclegan",
            "cyclegan",
            "Unpaired",
            "unpaired CycleGAN between renderings and grids of different models",
            reconstructs=True,
        ),
        ModelKind(
            "mask",
            "mask",
            "Object mask",
            "finds the object in pictures without alpha, to cut it out and frame it (one serves every model)",
            reconstructs=False,
        ),
        ModelKind(
            "autoencoder",
            "autoencoder",
            "Pre-training",
            "cross-autoencoder pre-training of the CycleGAN's generators (start a CycleGAN from it)",
            reconstructs=False,
        ),
    )
}


def reconstructing_kinds() -> tuple[str, ...]:
    """Kinds whose checkpoints map an image to a grid."""
    return tuple(name for name, k in KINDS.items() if k.reconstructs)


def model_class(kind: str):
    """The BaseModel subclass of `kind` (imports torch)."""
    if kind not in KINDS:
        raise KeyError(f"unknown model kind {kind!r}; have {', '.join(KINDS)}")
    return importlib.import_module(f"{__package__}.models.{KINDS[kind].module}").MODEL
