"""`voxlift train KIND`, `voxlift evaluate`, `voxlift baseline` and `voxlift diagnose`: thin dispatchers.

The work lives in voxlift.backend (torch); it is imported only once one of these commands is asked for, so
this module itself imports without torch. Model kinds are listed in backend/train.py (KINDS).
"""
from __future__ import annotations

import importlib

# command -> backend module with add_arguments(parser) and run(args) ("train" goes through backend.train).
BACKEND = {"evaluate": "evaluate", "baseline": "baselines", "diagnose": "diagnose"}


def _backend(name: str):
    return importlib.import_module(f"{__package__}.backend.{name}")


def _optional(name: str):
    """The backend module, or None when it is not part of this build (not when one of its imports fails)."""
    full = f"{__package__}.backend.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:
            raise
        return None


def add_arguments(command: str, parser) -> None:
    if command == "train":
        _backend("train").add_kind_parsers(parser)
        return
    module = _optional(BACKEND[command])
    if module is not None:  # otherwise run() says it is missing
        module.add_arguments(parser)


def run(args) -> int:
    from .dataset_tools.errors import VoxliftError

    if args.command == "train":
        train = _backend("train")
        return int(train.kind_module(args.kind).main(args) or 0)
    module = _optional(BACKEND[args.command])
    if module is None:
        raise VoxliftError(f"`voxlift {args.command}` is not available in this build")
    return int(module.run(args) or 0)
