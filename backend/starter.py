"""The starter model that ships inside voxlift: what reconstruct, evaluate and the add-on use when no
checkpoint is chosen, so that a picture becomes an object the minute voxlift is installed.

It is an ordinary paired-model checkpoint (half-precision weights, its config, threshold and model card in the
safetensors metadata), trained by `python build.py starter` from the project's own data with a fixed seed;
assets/starter.md is its model card. This module needs neither torch nor bpy (the panel reads it).
"""

from __future__ import annotations

from pathlib import Path

from ..dataset_tools.errors import VoxliftError

ASSETS = Path(__file__).resolve().parent / "assets"
STARTER = ASSETS / "starter.safetensors"
CARD = ASSETS / "starter.md"
# One line for the panel and --help: what it knows, and what to expect outside it.
REACH = (
    "trained on chairs and tables (Sweet Home 3D libraries and procedural furniture), seen from about 20 "
    "degrees above; other objects, views from far above or below, and scenes of several objects give rough shapes"
)


def starter_checkpoint() -> Path | None:
    """The shipped model, or None in a build without it."""
    return STARTER if STARTER.is_file() else None


def checkpoint_or_starter(checkpoint) -> Path:
    """`checkpoint` when one is given, else the starter model; one clear error when neither exists."""
    if checkpoint:
        return Path(checkpoint)
    starter = starter_checkpoint()
    if starter is None:
        raise VoxliftError(
            f"no checkpoint given and no starter model in this build ({STARTER} is missing); "
            "pass --checkpoint RUN or train one: voxlift train paired --data DATASET --out RUN"
        )
    return starter


def is_starter(checkpoint) -> bool:
    try:
        return checkpoint is not None and Path(checkpoint).resolve() == STARTER
    except OSError:
        return False
