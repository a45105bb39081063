"""What the Train panel reads from a run folder (addon/run_folder.py): damaged or odd metadata is shown, never
a traceback in Blender's UI."""

from __future__ import annotations

import math

import torch

from voxlift.backend import checkpoint as ckpt
from voxlift.run_folder import run_state, unvalidated_warning


def _last(folder, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.save_checkpoint(folder / ckpt.LAST, {"w": torch.zeros(2)}, meta)


def test_a_step_budget_and_a_time_budget_read_as_the_loop_wrote_them(tmp_path):
    _last(tmp_path / "a", {"config": {"kind": "paired"}, "step": 50, "elapsed": 30.0, "steps_total": 200})
    a = run_state(tmp_path / "a")
    assert (a.kind, a.step, a.fraction, a.finished) == ("paired", 50, 0.25, False)
    assert a.budget_text() == "50 of 200 steps" and a.best_score == -math.inf and not a.validated
    _last(tmp_path / "b", {"config": {"kind": "mask"}, "step": 9, "elapsed": 120.0, "budget_s": 60.0})
    b = run_state(tmp_path / "b")
    assert b.finished and b.budget_text() == "9 steps, 2.0 of 1 min"


def test_infinite_or_missing_numbers_and_no_budget_are_shown_not_raised(tmp_path):
    # json.dumps writes inf as Infinity and json.loads reads it back: a hand-edited file can hold it
    _last(
        tmp_path / "r",
        {"config": {"kind": "paired"}, "step": math.inf, "elapsed": "x", "best_score": math.nan},
    )
    s = run_state(tmp_path / "r")
    assert (s.step, s.elapsed, s.steps_total, s.budget_s) == (0, 0.0, None, None)
    assert s.budget_text() == "0 steps" and s.fraction == 0.0 and s.best_score == -math.inf
    assert "untrained" in unvalidated_warning(tmp_path / "r")
    (tmp_path / "r" / ckpt.LAST).write_bytes(b"not a checkpoint")
    assert run_state(tmp_path / "r") is None
