"""`voxlift train KIND`, `voxlift evaluate`, `voxlift baseline` and `voxlift diagnose`: thin dispatchers.

The work lives in voxlift.backend (torch); it is imported only once one of these commands is asked for, so
this module itself imports without torch. The model kinds are those of backend/registry.py (KINDS), which
backend.train turns into `voxlift train KIND` subcommands.
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
    _backend(BACKEND[command]).add_arguments(parser)


def run(args) -> int:
    if args.command == "train":
        return _backend("train").run_kind(args)
    return int(_backend(BACKEND[args.command]).run(args) or 0)
