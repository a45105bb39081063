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


def add_arguments(command: str, parser) -> None:
    if command == "train":
        _backend("train").add_kind_parsers(parser)
        return
    try:
        module = _backend(BACKEND[command])
    except ModuleNotFoundError:
        return  # not written yet (diagnose comes with the unpaired model); run() says so
    module.add_arguments(parser)


def run(args) -> int:
    from .dataset_tools.errors import VoxliftError

    if args.command == "train":
        train = _backend("train")
        return int(train.kind_module(args.kind).main(args) or 0)
    try:
        module = _backend(BACKEND[args.command])
    except ModuleNotFoundError:
        raise VoxliftError(f"`voxlift {args.command}` is not available in this build") from None
    return int(module.run(args) or 0)
