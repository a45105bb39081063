"""What a run folder holds, read without torch: is its run finished, interrupted, validated?

The Train panel and Reconstruct ask this in Blender's own Python, which may have no torch. A safetensors file
starts with an 8-byte little-endian header length and a JSON header whose `__metadata__` carries voxlift's
metadata under "voxlift" (backend/checkpoint.py); last.safetensors' metadata holds the step, the time spent
and the budget (backend/loop.py), so the share of the budget spent is computed here as the loop does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .backend.run_files import BEST, LAST, read_meta


def _number(value) -> float | None:
    """A finite number from a checkpoint's metadata, else None (a hand-edited or damaged file)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


@dataclass
class RunState:
    """A run folder's last checkpoint, as the loop left it."""

    folder: Path
    kind: str
    data: str  # the dataset it trained on
    step: int
    elapsed: float  # seconds
    steps_total: int | None  # a step budget
    budget_s: float | None  # a time budget
    best_score: float  # -inf when it never validated
    validated: bool  # best.safetensors exists: at least one validation

    @property
    def fraction(self) -> float:
        by_steps = self.step / self.steps_total if self.steps_total else 0.0
        by_time = self.elapsed / self.budget_s if self.budget_s else 0.0
        return max(by_steps, by_time)

    @property
    def finished(self) -> bool:
        return self.fraction >= 1

    @property
    def minutes(self) -> float | None:
        return self.budget_s / 60 if self.budget_s else None

    def budget_text(self) -> str:
        if self.steps_total:
            return f"{self.step} of {self.steps_total} steps"
        if self.budget_s:
            return f"{self.step} steps, {self.elapsed / 60:.1f} of {self.budget_s / 60:g} min"
        return f"{self.step} steps"  # a checkpoint that names no budget


def run_state(folder: str | os.PathLike) -> RunState | None:
    """The state of the run in `folder`, or None when it holds no readable last checkpoint."""
    folder = Path(folder)
    meta = read_meta(folder / LAST)
    if meta is None:
        return None
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    # Paired runs from before the one loop stored their step total as "schedule_total" (loop.Budget).
    steps_total = _number(meta.get("steps_total", meta.get("schedule_total")))
    best = _number(meta.get("best_score"))
    return RunState(
        folder=folder,
        kind=str(config.get("kind", "")),
        data=str(config.get("data", "")),
        step=int(_number(meta.get("step")) or 0),
        elapsed=_number(meta.get("elapsed")) or 0.0,
        steps_total=int(steps_total) if steps_total else None,
        budget_s=_number(meta.get("budget_s")) or None,
        best_score=best if best is not None else -math.inf,  # -inf: never validated (or unreadable)
        validated=(folder / BEST).is_file(),
    )


def unvalidated_warning(checkpoint: str | os.PathLike) -> str | None:
    """A warning when `checkpoint` (a run folder or file) is a model that never validated: a run stopped
    before its first validation has only last.safetensors, and its grids are noise."""
    p = Path(checkpoint)
    if p.is_dir():
        if (p / BEST).is_file():
            return None
        p = p / LAST
    if p.name != LAST or not p.is_file():
        return None
    meta = read_meta(p)
    best = _number(meta.get("best_score")) if meta else None
    if meta is None or (best is not None and math.isfinite(best)) or (p.parent / BEST).is_file():
        return None
    step = int(_number(meta.get("step")) or 0)
    return (
        f"{p}: a run stopped at step {step}, before its first validation: this model is untrained "
        "noise; train it further (run the same command again, or Resume in the Train panel)"
    )
