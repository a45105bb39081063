"""Checkpoints: safetensors only, never pickle.

A run folder (loop.py writes it) holds
    config.json          the run's configuration ({"kind": "paired", ...}), written once at the start
    best.safetensors     weights of the best validation score so far (each kind says what its score is)
    last.safetensors     weights, optimiser state (flattened: one tensor per state entry), step, elapsed time
                         and budget: with the data order and augmentation, which are functions of the seed
                         and the step, everything an exact resume needs
Each .safetensors file also carries the configuration and its own metadata as JSON in the safetensors
header (key "voxlift"), so a file copied alone still loads. Writes go to a temporary file that replaces the
old one (os.replace): a kill at any instant leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..dataset_tools.errors import VoxliftError
from ..dataset_tools.fileio import atomic_write_bytes  # temp file + fsync + os.replace
from .run_files import BEST, CONFIG, LAST, META_KEY, resolve_checkpoint  # noqa: F401 (this module's API too)

HALF = (torch.float16, torch.bfloat16)


def write_config(run_dir: Path, config: dict) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(run_dir) / CONFIG, (json.dumps(config, indent=1) + "\n").encode())


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write tensors and JSON-able `meta` (which holds "config") atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(Path(path), save(tensors, metadata={META_KEY: json.dumps(meta)}))


def load_checkpoint(
    path: str | os.PathLike, kinds: tuple[str, ...] | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors on the CPU, meta) of a safetensors checkpoint; anything else raises VoxliftError naming it."""
    from safetensors import safe_open

    p = resolve_checkpoint(path)
    _check_safetensors_layout(p)
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta_text = (f.metadata() or {}).get(META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except Exception as exc:  # noqa: BLE001 -- safetensors raises its own error types for every kind of damage
        raise VoxliftError(f"{p}: not a readable safetensors checkpoint ({exc})") from None
    if meta_text is None:
        raise VoxliftError(f"{p}: a safetensors file without voxlift's metadata (not a voxlift checkpoint)")
    try:
        meta = json.loads(meta_text)
        config = meta["config"]
        kind = config["kind"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VoxliftError(f"{p}: damaged voxlift metadata ({exc!r})") from None
    if kinds is not None and kind not in kinds:
        raise VoxliftError(f"{p}: a checkpoint of kind {kind!r}; this needs one of {', '.join(kinds)}")
    return tensors, meta


def _check_safetensors_layout(p: Path) -> None:
    """safetensors = an 8-byte little-endian header length n, then n bytes of JSON starting with '{'.
    Anything else is refused before a parser sees it; torch.save files (zip or bare pickle) are named."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(9)
    n = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if len(head) == 9 and head[8:9] == b"{" and 8 + n <= size:
        return
    if head[:2] == b"PK" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise VoxliftError(
            f"{p}: a pickle/torch.save file; voxlift loads only safetensors checkpoints "
            "(pickles can run code when loaded)"
        )
    raise VoxliftError(f"{p}: not a safetensors checkpoint ({size} bytes, no safetensors header)")


def load_module_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path) -> None:
    """Load the `prefix`-ed tensors into `module`; a missing, extra or wrong-shaped tensor is a VoxliftError."""
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = module.state_dict()
    for k, v in state.items():  # weights shipped in half precision (the starter model) load into float32
        if k in own and v.dtype in HALF and own[k].dtype == torch.float32:
            state[k] = v.float()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    bad_type = [k for k in own if k in state and state[k].dtype != own[k].dtype]
    if missing or extra or bad or bad_type:
        what = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {extra[:3]}"
            if extra
            else f"wrong shape for {bad[0]}: {tuple(state[bad[0]].shape)} != {tuple(own[bad[0]].shape)}"
            if bad
            else f"wrong dtype for {bad_type[0]}: {state[bad_type[0]].dtype} != {own[bad_type[0]].dtype}"
        )
        raise VoxliftError(f"{path}: does not fit the model its config describes ({what})")
    module.load_state_dict(state)


# --- optimiser and scheduler state as tensors + JSON (no pickle) ------------------------------------------


def flatten_optimizer(state: dict, prefix: str = "optim.") -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict, prefix: str = "optim.") -> dict:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith(prefix):
            pid, key = name[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[key] = value
    for name, value in info.get("scalars", {}).items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": info["param_groups"]}
