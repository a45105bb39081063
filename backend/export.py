"""A trained run's best weights as one small file to ship (the starter model is made so).

    python -m voxlift.backend.export RUN --out FILE.safetensors [--card CARD.md] [--full]

Only the network's weights travel (no optimiser state), in half precision unless --full: a paired model's
3.6 million parameters take 7 MB. The file keeps what prediction reads: the config, the validation scores
(the model's threshold among them), and the model card's text. `python build.py starter` checks that half
precision scores as float32 does before it ships it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .registry import reconstructing_kinds


def export(run, out, card: str | None = None, half: bool = True) -> Path:
    path = ckpt.resolve_checkpoint(run)
    tensors, meta = ckpt.load_checkpoint(path, kinds=(*reconstructing_kinds(), "mask"))
    weights = {
        k: (v.half() if half and v.dtype == torch.float32 else v)
        for k, v in tensors.items()
        if k.startswith("model.")
    }
    shipped = {
        "config": meta["config"],
        "step": meta.get("step"),
        "val": meta.get("val"),
        "source": str(path),
    }
    if card is not None:
        shipped["card"] = card
    ckpt.save_checkpoint(Path(out), weights, shipped)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    from ..dataset_tools.errors import VoxliftError

    p = argparse.ArgumentParser(prog="python -m voxlift.backend.export", description=__doc__.split("\n")[0])
    p.add_argument("run", help="a run folder (its best checkpoint) or a .safetensors file")
    p.add_argument("--out", required=True)
    p.add_argument("--card", help="a model card (Markdown) whose text goes into the file")
    p.add_argument("--full", action="store_true", help="keep float32 weights")
    args = p.parse_args(argv)
    try:
        card = Path(args.card).read_text(encoding="utf-8") if args.card else None
        print(export(args.run, args.out, card, half=not args.full))
    except (VoxliftError, OSError) as exc:
        print(f"voxlift: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
