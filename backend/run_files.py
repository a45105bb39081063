"""The files of a run folder, named and found without torch (the add-on's panels ask in Blender's own Python).

    config.json, best.safetensors, last.safetensors   (checkpoint.py writes them; loop.py decides when)

A safetensors file starts with an 8-byte little-endian header length and a JSON header whose `__metadata__`
carries voxlift's metadata as JSON under "voxlift".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..dataset_tools.errors import VoxliftError

BEST, LAST, CONFIG = "best.safetensors", "last.safetensors", "config.json"
META_KEY = "voxlift"
FALLBACK_THRESHOLD = 0.4  # the decision threshold of checkpoints from before it was chosen on validation
HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (its best checkpoint, else its last); VoxliftError when none."""
    p = Path(path)
    if p.is_dir():
        for name in (BEST, LAST):
            if (p / name).is_file():
                return p / name
        raise VoxliftError(f"{p}: no {BEST} or {LAST} in this run folder")
    if not p.is_file():
        raise VoxliftError(f"{p}: no such checkpoint")
    return p


def read_meta(path: str | os.PathLike) -> dict | None:
    """voxlift's metadata of a .safetensors file, or None when the file is not one (or is damaged)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(HEADER_LENGTH_BYTES), "little")
            if not 0 < n <= MAX_HEADER_BYTES:
                return None
            header = json.loads(f.read(n))
        meta = json.loads(header["__metadata__"][META_KEY])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if isinstance(meta, dict) else None
