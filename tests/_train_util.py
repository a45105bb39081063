"""Training runs in the test process, through the same parser and loop as `voxlift train KIND`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from voxlift.backend import loop
from voxlift.backend.registry import model_class


def train_args(kind: str, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    model = model_class(kind)
    loop.add_run_arguments(p, model)
    model.add_arguments(p)
    return p.parse_args([str(a) for a in argv])


def train(kind: str, argv: list[str]) -> int:
    return loop.train(kind, train_args(kind, argv))


def interrupt_at(monkeypatch, kind: str, at_step: int) -> None:
    """Ctrl-C in the middle of a run: the kind's training step raises KeyboardInterrupt at `at_step`."""
    cls = model_class(kind)
    real = cls.train_step

    def step(self, step, progress):
        if step == at_step:
            raise KeyboardInterrupt
        return real(self, step, progress)

    monkeypatch.setattr(cls, "train_step", step)


def log_rows(run: str | Path, event: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (Path(run) / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if event is None or r["event"] == event]
