"""Typed run configurations: one dataclass per model kind, and the one loader every checkpoint goes through.

A config is what a run was made with (`config.json`, and the "config" of every checkpoint's metadata). New
runs write every field. A field's *default* here is what a config written before that field existed meant
(e.g. decoder_head "deconv": runs from before the option had transposed convolutions), so old checkpoints
load as they were trained; a new run's defaults are the command's options, declared beside each model.

A checkpoint's config is data from a file, possibly hostile: `from_dict` checks every field's type and range
before anything is allocated from it (a config asking for a 2^40-wide layer is refused, not attempted).

    config = PairedConfig.from_dict(meta["config"], path)     # VoxliftError naming `path` when it is wrong
    config.to_dict()                                           # JSON-able, for config.json and checkpoints
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

from ..dataset_tools.errors import VoxliftError

CONFIG_VERSION = 2  # 1: before typed configs (same keys, some missing); 2: every field written

NORMS = ("batch", "instance", "layer", "none")
DECODER_HEADS = ("deconv", "shuffle")


def check(lo=None, hi=None, *, power_of_two: bool = False, choices: tuple | None = None) -> dict:
    """Field metadata: the range (inclusive), a power of two, or one of `choices`."""
    return {"lo": lo, "hi": hi, "power_of_two": power_of_two, "choices": choices}


def sized(default, lo, hi, **kw):
    return field(default=default, metadata=check(lo, hi, **kw))


def one_of(default, choices: tuple):
    return field(default=default, metadata=check(choices=choices))


@dataclass(kw_only=True)
class RunConfig:
    """What every kind's run records: its data and how its images and grids are framed."""

    kind: str
    version: int = sized(1, 1, CONFIG_VERSION)
    data: str = ""  # the dataset it was trained on (informative: a checkpoint travels without it)
    image_size: int = sized(128, 1, 4096)  # the training renderings' side
    input_size: int = sized(0, 0, 1024)  # the network's input side; 0 in old configs: image_size
    resolution: int = sized(32, 8, 128, power_of_two=True)
    viewer_centred: bool = True
    categories: list[str] | None = None
    background: float = sized(1.0, 0.0, 1.0)  # the renderings' background level
    fill: float = sized(0.7, 0.01, 1.0)  # the object's share of the image side (framing of user pictures)
    occupancy: float = sized(0.03, 0.0, 1.0)  # occupied share of the training grids
    batch_size: int = sized(16, 1, 65536)
    seed: int = 0

    def __post_init__(self):
        if not self.input_size:
            self.input_size = self.image_size

    @classmethod
    def from_dict(cls, raw, source) -> typing.Self:
        """The config `raw` (a checkpoint's, or config.json's) checked; defaults fill what older runs lack."""
        if not isinstance(raw, dict):
            raise VoxliftError(f"{source}: its config is not a JSON object")
        version = raw.get("version", 1)
        if isinstance(version, int) and version > CONFIG_VERSION:
            raise VoxliftError(
                f"{source}: written by a newer voxlift (config version {version}, this one reads up to "
                f"{CONFIG_VERSION}); update voxlift"
            )
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in raw:
                values[f.name] = _checked(f, hints[f.name], raw[f.name], source)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise VoxliftError(f"{source}: its config lacks {f.name!r}")
        try:
            config = cls(**values)
        except (TypeError, ValueError) as exc:
            raise VoxliftError(f"{source}: config does not describe a usable model ({exc})") from None
        config.check(source)
        return config

    def check(self, source) -> None:
        """Checks between fields (each kind adds its own)."""
        if not 8 <= self.input_size <= 1024 or self.input_size & (self.input_size - 1):
            raise VoxliftError(
                f"{source}: config input_size {self.input_size!r} is not a power of two in [8, 1024]"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> typing.Self:
        return dataclasses.replace(self, **changes)


def _checked(f: dataclasses.Field, hint, value, source):
    """`value` if it has the field's type and lies in its range, else a VoxliftError naming the field."""
    if not _has_type(value, hint):
        raise VoxliftError(f"{source}: config {f.name} {value!r} is not of type {_type_name(hint)}")
    meta = f.metadata
    if meta and value is not None:
        lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
        if choices is not None and value not in choices:
            raise VoxliftError(f"{source}: config {f.name} {value!r} is not one of {choices}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise VoxliftError(f"{source}: config {f.name} {value!r} is not in [{lo}, {hi}]")
        if meta.get("power_of_two") and value & (value - 1):
            raise VoxliftError(f"{source}: config {f.name} {value!r} is not a power of two")
    return float(value) if hint is float else value


def _has_type(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
