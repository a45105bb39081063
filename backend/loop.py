"""The one training loop: every model kind (models/) trains through `train(kind, args)`.

The loop owns the run folder and everything about a run that is not the model:
  * the budget, one meaning for every kind: `--steps N` or `--max-minutes M`; progress is the share of it
    spent (steps done / N, or time spent / M), and each kind's learning-rate schedule is a function of it;
  * resume: a run folder whose last checkpoint has budget left continues where it stopped (the same command
    again, after Ctrl-C or a crash); a finished run is never overwritten, and trains further only with
    --resume and a larger budget;
  * validation every --val-every steps (and, in timed runs, at every fifth of the time), best.safetensors
    (the best validation score) and last.safetensors (everything an exact resume needs) after each, and at
    the end; last.safetensors also on Ctrl-C;
  * a NaN, infinite or exploding loss stops the run and keeps the last good checkpoint;
  * progress for people (a tqdm bar), for programs (`--progress json`: one JSON line on stdout per logged
    step, what the add-on's panel reads), `log.jsonl` in the run folder, and TensorBoard (`RUN/tb`);
  * several processes (torchrun): process 0 alone writes; timed runs stop at one step on every process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..dataset_tools.dataset import open_dataset
from ..dataset_tools.errors import VoxliftError
from ..dataset_tools.fileio import atomic_write_bytes
from . import checkpoint as ckpt
from .device import (
    add_bf16_argument,
    add_device_argument,
    broadcast_state,
    check_in_step,
    distributed_context,
    mean_over_processes,
    slowest,
    use_bf16,
)
from .models.base import BaseModel, RunContext
from .registry import model_class

LOG_EVERY = 10  # steps between logged rows (and step 1)
TIMED_VALIDATIONS = 5  # a timed run validates at every fifth of its time too
EXPLODE = 1e4  # a loss above this (or --explode) stops the run as diverged
PROGRESS_MODES = ("bar", "json", "none")


class TrainingDiverged(VoxliftError):
    """A loss became NaN, infinite or exploded; the run stopped and kept its last good checkpoint."""


def add_run_arguments(p: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """The options of every `voxlift train KIND`: data, run folder, budget, resume, device, progress."""
    p.add_argument("--data", required=True, help="dataset folder (voxlift render / import-r2n2)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, config.json, log.jsonl, tb/")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=int, help=f"training steps (default {model.default_steps} unless --max-minutes)"
    )
    budget.add_argument(
        "--max-minutes", type=float, help="train for this long; the schedule follows the share of time spent"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="train a finished run further, to a larger --steps/--max-minutes (an interrupted run resumes "
        "without it: run the same command again)",
    )
    add_device_argument(p)
    add_bf16_argument(p)
    p.add_argument(
        "--val-every",
        type=int,
        default=model.default_val_every,
        help=f"steps between validations and checkpoints (default {model.default_val_every}; timed runs also "
        f"validate at every 1/{TIMED_VALIDATIONS} of their time)",
    )
    p.add_argument(
        "--explode", type=float, help=f"a loss above this stops the run as diverged (default {EXPLODE:g})"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, the data order and augmentation")
    p.add_argument(
        "--progress",
        default="bar",
        choices=PROGRESS_MODES,
        help="bar: a progress bar (default); json: one JSON line per logged step on stdout; none",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar (--progress none)")


@dataclass
class Budget:
    steps: int | None
    seconds: float | None

    def progress(self, step: int, elapsed: float) -> float:
        by_steps = step / self.steps if self.steps else 0.0
        by_time = elapsed / self.seconds if self.seconds else 0.0
        return max(by_steps, by_time)

    def to_meta(self) -> dict:
        return {"steps_total": self.steps, "budget_s": self.seconds}

    @staticmethod
    def from_args(args, default_steps: int) -> Budget | None:
        """The command's budget; None when it names none."""
        if args.steps is not None:
            if args.steps < 1:
                raise VoxliftError(f"--steps {args.steps}: must be at least 1")
            return Budget(args.steps, None)
        if args.max_minutes is not None:
            if not args.max_minutes > 0:
                raise VoxliftError(f"--max-minutes {args.max_minutes}: must be more than 0")
            return Budget(None, args.max_minutes * 60)
        return None

    @staticmethod
    def from_meta(meta: dict, default_steps: int) -> Budget:
        # Paired runs from before the one loop stored their step total as "schedule_total"; a checkpoint
        # that names no budget had the kind's default.
        steps, seconds = meta.get("steps_total", meta.get("schedule_total")), meta.get("budget_s")
        if not steps and not seconds:
            steps = default_steps
        return Budget(int(steps) if steps else None, float(seconds) if seconds else None)


@dataclass
class Resume:
    """What the run folder holds: a run to continue (tensors, meta), or nothing."""

    tensors: dict | None = None
    meta: dict | None = None

    @property
    def resuming(self) -> bool:
        return self.meta is not None


def plan_resume(out: Path, args, kind: str, default_steps: int) -> tuple[Resume, Budget]:
    """Continue the run in `out` when it has budget left; refuse to start over a finished one."""
    last = out / ckpt.LAST
    asked = Budget.from_args(args, default_steps)
    if not last.is_file():
        return Resume(), asked or Budget(default_steps, None)
    tensors, meta = ckpt.load_checkpoint(last, kinds=(kind,))
    try:
        step, elapsed, kept = int(meta["step"]), float(meta["elapsed"]), Budget.from_meta(meta, default_steps)
    except (KeyError, TypeError, ValueError) as exc:
        raise VoxliftError(
            f"{last}: not a resumable checkpoint (its training state is damaged: {exc!r}); train into another --out"
        ) from None
    budget = asked or kept
    if kept.progress(step, elapsed) >= 1 and not args.resume:
        raise VoxliftError(
            f"{out}: holds a finished run ({step} steps); pass --resume with a larger --steps or --max-minutes "
            "to train it further, or choose another --out"
        )
    if budget.progress(step, elapsed) >= 1:
        raise VoxliftError(
            f"{out}: the run has trained {step} steps ({elapsed / 60:.1f} min) already; give --resume a larger "
            "--steps or --max-minutes"
        )
    return Resume(tensors, meta), budget


def train(kind: str, args) -> int:
    """`voxlift train KIND ...`: train a new run into --out, or continue the one there."""
    model_cls = model_class(kind)
    with distributed_context(args.device) as (rank, world, device):
        return _Run(
            model_cls, args, RunContext(device, rank, world, use_bf16(args.bf16, device), args.out)
        ).go()


class _StopRequest:
    """Ctrl-C asks the loop to stop at the end of the step, where it saves and says how to resume. A
    KeyboardInterrupt raised anywhere else (inside TensorBoard's writer, a lock, the data loader) can leave a
    lock held and hang the exit. A second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False

    @contextlib.contextmanager
    def installed(self, enabled: bool = True):
        # Signals reach the main thread only (in a caller's own thread Ctrl-C is theirs); under torchrun every
        # process gets the signal but might see it a step apart, and one alone would wait in a collective.
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.getsignal(signal.SIGINT)

        def ask(signum, frame):
            if self.requested or previous is not signal.default_int_handler:
                signal.signal(signal.SIGINT, previous)
                if callable(previous):
                    previous(signum, frame)
                return
            self.requested = True

        signal.signal(signal.SIGINT, ask)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class _Run:
    def __init__(self, model_cls: type[BaseModel], args, ctx: RunContext):
        self.args, self.ctx, self.out = args, ctx, Path(args.out)
        self.main = ctx.rank == 0
        resume, self.budget = plan_resume(self.out, args, model_cls.kind, model_cls.default_steps)
        ds = open_dataset(args.data)
        if resume.resuming:
            config = model_cls.Config.from_dict(resume.meta["config"], self.out / ckpt.LAST)
            config = model_cls.resume_config(config, args)
        else:
            config = model_cls.config_from_args(args, ds)
        if config.resolution != ds.resolution:
            raise VoxliftError(
                f"{args.data}: grids of {ds.resolution}^3, the run was made for {config.resolution}^3"
            )
        torch.manual_seed(config.seed)
        self.config = config
        self.model = model_cls(config, ds, ctx)
        self.model.configure(args)
        self.step, self.elapsed, self.best = 0, 0.0, -math.inf
        self.t_start = time.time()  # go() sets it: now minus the time an earlier part of the run took
        self.best_val = None  # the best validation's scores: last.safetensors carries them too (threshold...)
        if resume.resuming:
            self._load(resume)
        else:
            if self.main:
                ckpt.write_config(self.out, config.to_dict())
            self.model.start_fresh(self.out)
        broadcast_state(self.model.networks(), ctx.world)  # one start, whatever each process drew
        self.report = _Reporter(self, resume.resuming)

    def _load(self, resume: Resume) -> None:
        path = self.out / ckpt.LAST
        ckpt.load_module_state(self.model.networks(), resume.tensors, "model.", path)
        try:
            self.model.load_training_state(resume.tensors, resume.meta, path)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise VoxliftError(
                f"{path}: not a resumable checkpoint (its training state is damaged: {exc!r}); "
                "train into another --out"
            ) from None
        self.step, self.elapsed = int(resume.meta["step"]), float(resume.meta["elapsed"])
        # "best_score" (higher is better) since the one loop; older runs start their best afresh.
        self.best = float(resume.meta.get("best_score", -math.inf))
        self.best_val = resume.meta.get("val")

    def progress(self) -> float:
        self.elapsed = time.time() - self.t_start
        p = self.budget.progress(self.step, self.elapsed)
        return slowest(p, self.ctx.world, self.ctx.device) if self.budget.seconds else p

    def go(self) -> int:
        self.t_start = time.time() - self.elapsed
        next_timed_val = math.floor(self.budget.progress(self.step, self.elapsed) * TIMED_VALIDATIONS) + 1
        stop = _StopRequest()
        try:
            with stop.installed(self.ctx.world == 1):
                validated_at = self._steps(stop, next_timed_val)
            check_in_step(self.model.networks(), self.ctx.world, self.out)
            if validated_at != self.step:
                self.validate_and_save()
            elif self.budget.seconds:
                self.save_last()  # the time the run really took: a finished timed run reads as finished
            self.report.end("done")
        except KeyboardInterrupt:
            self.save_last()  # the same command continues from here
            self.report.end("interrupted")
            raise
        finally:
            self.model.close()
            self.report.close()
        return 0

    def _steps(self, stop: _StopRequest, next_timed_val: int) -> int | None:
        """Train to the end of the budget; the step of the last validation."""
        validated_at = None
        while (progress := self.progress()) < 1:
            if stop.requested:
                raise KeyboardInterrupt
            scalars = self.model.train_step(self.step, progress)
            self.step += 1
            scalars = self._checked(mean_over_processes(scalars, self.ctx.world))
            if self.step % LOG_EVERY == 0 or self.step == 1:
                self.report.step(scalars, self.budget.progress(self.step, time.time() - self.t_start))
            self.report.tick()
            timed_due = self.budget.seconds and progress * TIMED_VALIDATIONS >= next_timed_val
            if self.step % self.args.val_every == 0 or timed_due:
                next_timed_val = math.floor(progress * TIMED_VALIDATIONS) + 1
                self.validate_and_save()
                validated_at = self.step
        if stop.requested:  # asked during the last step
            raise KeyboardInterrupt
        return validated_at

    def _checked(self, scalars: dict) -> dict:
        limit = self.args.explode or EXPLODE
        out = {}
        for name, value in scalars.items():
            v = float(value.detach()) if torch.is_tensor(value) else float(value)
            if not math.isfinite(v) or (name != "grad_norm" and abs(v) > limit):
                what = (
                    "NaN"
                    if math.isnan(v)
                    else "infinite"
                    if math.isinf(v)
                    else f"{v:.3g}, above --explode {limit:g}"
                )
                last = self.out / ckpt.LAST
                keep = (
                    f"the last good checkpoint {last} is kept"
                    if last.is_file()
                    else "no checkpoint had been written yet"
                )
                raise TrainingDiverged(
                    f"{self.out}: training diverged at step {self.step}: {name} is {what}; {keep} "
                    "(try a lower --lr)"
                )
            out[name] = v
        return out

    def validate_and_save(self) -> None:
        if not self.main:
            return
        v = self.model.validate()
        if v.score > self.best:
            self.best, self.best_val = v.score, v.scores
            weights = {f"model.{k}": t for k, t in self.model.networks().state_dict().items()}
            meta = {"config": self.config.to_dict(), "step": self.step, "val": v.scores}
            ckpt.save_checkpoint(self.out / ckpt.BEST, weights, meta)
        self.report.validation(v)
        self.save_last()

    def save_last(self) -> None:
        if not self.main:
            return
        self.elapsed = time.time() - self.t_start
        weights = {f"model.{k}": t for k, t in self.model.networks().state_dict().items()}
        tensors, meta = self.model.training_state()
        meta = {
            "config": self.config.to_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "best_score": self.best,
            "val": self.best_val,
            "processes": self.ctx.world,
            **self.budget.to_meta(),
            **meta,
        }
        ckpt.save_checkpoint(self.out / ckpt.LAST, {**weights, **tensors}, meta)


def _drop_rows_after(log: Path, step: int) -> None:
    """A run killed after its last checkpoint logged steps it will train again: those rows go, so that
    log.jsonl reads as one run (as TensorBoard's purge_step does for its events)."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    kept = [ln for ln in lines if _row_step(ln) <= step]
    if len(kept) < len(lines):
        atomic_write_bytes(log, "".join(ln + "\n" for ln in kept).encode())


def _row_step(line: str) -> float:
    try:
        row = json.loads(line)
        return float(row.get("step", 0)) if isinstance(row, dict) else 0.0
    except (ValueError, TypeError):
        return 0.0  # a damaged line stays: it is not ours to judge


class _Reporter:
    """Where a run says how it goes: log.jsonl, TensorBoard, and a bar or JSON lines (process 0 only)."""

    def __init__(self, run: _Run, resumed: bool):
        self.run, self.last_val = run, None
        args = run.args
        self.mode = "none" if args.quiet or not run.main else args.progress
        self.log = self.writer = self.bar = None
        if not run.main:
            return
        from torch.utils.tensorboard import SummaryWriter

        if resumed:
            _drop_rows_after(run.out / "log.jsonl", run.step)
        self.log = open(run.out / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.writer = SummaryWriter(str(run.out / "tb"), purge_step=run.step if resumed else None)
        if self.mode == "bar":
            from tqdm import tqdm

            ctx = run.ctx
            where = ctx.device.type + (f", {ctx.world} proc" if ctx.world > 1 else "")
            self.bar = tqdm(
                total=run.budget.steps,
                initial=run.step,
                unit="step",
                dynamic_ncols=True,
                desc=f"train {run.model.kind} ({where})",
            )
        self._emit({"event": "start", "resumed": resumed, **self._where()})

    def _where(self) -> dict:
        r = self.run
        return {
            "kind": r.model.kind,
            "out": str(r.out),
            "step": r.step,
            "steps": r.budget.steps,
            "minutes": r.budget.seconds / 60 if r.budget.seconds else None,
            "elapsed": round(r.elapsed, 2),
        }

    def _emit(self, row: dict) -> None:
        if self.log is None:
            return
        line = json.dumps(row)
        self.log.write(line + "\n")
        self.log.flush()
        if self.mode == "json":
            print(line, flush=True)

    def step(self, scalars: dict[str, float], progress: float) -> None:
        if self.log is None:
            return
        r = self.run
        row = {"event": "step", **self._where(), "progress": round(min(progress, 1.0), 4), "lr": r.model.lr()}
        self._emit({**row, "losses": {k: round(v, 5) for k, v in scalars.items()}, "val": self.last_val})
        for k, v in {**scalars, "lr": row["lr"]}.items():
            self.writer.add_scalar(f"train/{k}", v, r.step)
        if self.bar is not None:
            if r.budget.seconds and progress > 0:  # a timed run: the steps it will reach at this speed
                self.bar.total = max(r.step, round(r.step / progress))
            self.bar.set_postfix(loss=f"{scalars.get('loss', float('nan')):.4f}", val=self._val_text())

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def _val_text(self) -> str:
        return (
            "-" if not self.last_val else " ".join(f"{k} {v:.3f}" for k, v in list(self.last_val.items())[:2])
        )

    def validation(self, v) -> None:
        self.last_val = {k: x for k, x in v.scores.items() if isinstance(x, float)}
        self._emit({"event": "val", **self._where(), "val": v.scores, "score": v.score})
        for k, x in self.last_val.items():
            self.writer.add_scalar(f"val/{k}", x, self.run.step)
        for name, image in v.images.items():
            self.writer.add_image(f"val/{name}", image, self.run.step, dataformats="HW")

    def end(self, reason: str) -> None:
        r = self.run
        self._emit(
            {"event": "end", "reason": reason, **self._where(), "best_score": r.best, "val": self.last_val}
        )
        if self.log is not None and reason == "done" and self.mode != "json":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            print(
                f"trained {r.step} steps in {r.elapsed / 60:.1f} min; last validation: {self._val_text()}; "
                f"checkpoints in {r.out}"
                + (f" ({r.model.next_step.format(out=r.out)})" if r.model.next_step else "")
            )

    def close(self) -> None:
        for thing in (self.bar, self.writer, self.log):
            if thing is not None:
                thing.close()
