"""voxlift's dataset format: aligned renderings, alpha masks, voxel grids and cameras, readable with numpy.

A dataset is a folder:

    manifest.json    format name and version, image_size S, views_per_model V, resolution R,
                     voxel_to_world (4x4), views (list of V views, or null when views differ per model)
    models.jsonl     one JSON object per model, in index order: id, category, source, split (+ extras).
                     A model exists once its line (ending in a newline) is written: the commit point.
    images.u8        uint8 [N, V, S, S] grayscale renderings, rows top first
    alpha.u8         uint8 [N, V, S, S] coverage (0 background, 255 object)
    voxels.u8        uint8 [N, R, R, R] occupancy 0/1, indexed [x, y, z] (C order)
    cameras.f64      only when views differ per model: float64 [N, V, 16] = azimuth, elevation, distance,
                     fov, then world_to_pixel (3x4, row-major)
    skipped.jsonl    models that could not be loaded or rendered: id, source, reason
    .lock            held (flock) by the one process writing; the OS drops it if that process dies

Raw files are plain C-order arrays with no header, so `np.memmap` reads them; datasets larger than RAM are
never loaded whole. Appending writes the arrays first, then the model's line: a writer killed at any instant
loses at most the model in flight, which the next writer cuts off (resume). Readers count only complete
lines, so a dataset is valid at every instant, even while it is being written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import View
from .errors import VoxliftError
from .fileio import FolderLock, atomic_write_bytes

FORMAT = "voxlift-dataset"
VERSION = 1
MANIFEST = "manifest.json"
MODELS = "models.jsonl"
SKIPPED = "skipped.jsonl"
LOCK = ".lock"
ARRAYS = ("images.u8", "alpha.u8", "voxels.u8")
CAMERAS = "cameras.f64"
CAMERA_FIELDS = 16


def split_of(model_id: str) -> str:
    """train/val/test 80/10/10 from a hash of the id: a model keeps its split when others are added."""
    bucket = int(hashlib.sha1(model_id.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def voxel_to_world(resolution: int) -> np.ndarray:
    """4x4 matrix taking a voxel index (i, j, k, 1) to its centre: -0.5 + (i + 0.5) / R on each axis."""
    m = np.eye(4) / resolution
    m[3, 3] = 1.0
    m[:3, 3] = -0.5 + 0.5 / resolution
    return m


@dataclass
class ModelInfo:
    index: int
    id: str
    category: str
    source: str
    split: str
    extra: dict


def _read_committed_lines(path: Path) -> tuple[list[dict], int]:
    """The complete, parseable lines of a JSONL file and the byte length they span."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records, end = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # a line still being written (or cut by a crash) does not count
        try:
            records.append(json.loads(line))
        except ValueError:
            break
        end += len(line)
    return records, end


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not root.is_dir():
        raise VoxliftError(f"{root}: no such dataset folder")
    if not path.is_file():
        raise VoxliftError(f"{root}: not a voxlift dataset (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise VoxliftError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise VoxliftError(f"{path}: not a voxlift dataset manifest")
    if manifest.get("version") != VERSION:
        raise VoxliftError(
            f"{path}: dataset format version {manifest.get('version')!r}, "
            f"this voxlift reads version {VERSION}"
        )
    for key in ("image_size", "views_per_model", "resolution"):
        value = manifest.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 4096:
            raise VoxliftError(f"{path}: bad {key} {value!r}")
    # A damaged matrix or view list must fail here, naming the file, not deep inside numpy later.
    if not _numbers_of_shape(manifest.get("voxel_to_world"), (4, 4)):
        raise VoxliftError(f"{path}: bad voxel_to_world (expected a 4x4 matrix of finite numbers)")
    views = manifest.get("views")
    if views is not None and not (
        isinstance(views, list)
        and len(views) == manifest["views_per_model"]
        and all(_view_ok(v) for v in views)
    ):
        raise VoxliftError(
            f"{path}: bad views (expected null or {manifest['views_per_model']} views, each with "
            "azimuth, elevation, distance, fov and a 3x4 world_to_pixel)"
        )
    return manifest


def _numbers_of_shape(value, shape: tuple) -> bool:
    if isinstance(value, str):
        return False
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return False
    return a.shape == shape and bool(np.isfinite(a).all())


def _view_ok(view) -> bool:
    return (
        isinstance(view, dict)
        and all(_numbers_of_shape(view.get(k), ()) for k in ("azimuth", "elevation", "distance", "fov"))
        and _numbers_of_shape(view.get("world_to_pixel"), (3, 4))
    )


def _model_records(path: Path) -> tuple[list[dict], int]:
    """models.jsonl's committed lines, each checked to be a model record (a damaged one is an error)."""
    records, end = _read_committed_lines(path)
    for n, r in enumerate(records, 1):
        if not (
            isinstance(r, dict)
            and isinstance(r.get("id"), str)
            and all(isinstance(r.get(k, ""), str) for k in ("category", "source", "split"))
        ):
            raise VoxliftError(
                f"{path}: line {n} is not a model record (expected an object with a string id, "
                f"category, source and split): {json.dumps(r)[:80]}"
            )
    return records, end


class Dataset:
    """Read-only view of a dataset. Arrays are memory-mapped; nothing is loaded until indexed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = _read_manifest(self.path)
        self.image_size: int = self.manifest["image_size"]
        self.views_per_model: int = self.manifest["views_per_model"]
        self.resolution: int = self.manifest["resolution"]
        self.voxel_to_world = np.asarray(self.manifest["voxel_to_world"], dtype=np.float64)
        views = self.manifest.get("views")
        self.views: list[View] | None = [View.from_json(v) for v in views] if views else None
        records, _ = _model_records(self.path / MODELS)
        self.models = [
            ModelInfo(
                i,
                r["id"],
                r.get("category", ""),
                r.get("source", ""),
                r.get("split") or split_of(r["id"]),
                {k: v for k, v in r.items() if k not in ("id", "category", "source", "split")},
            )
            for i, r in enumerate(records)
        ]
        # skipped.jsonl is informative only: a damaged line is left out rather than failing the dataset.
        self.skipped = [r for r in _read_committed_lines(self.path / SKIPPED)[0] if isinstance(r, dict)]
        n, v, s, r = len(self.models), self.views_per_model, self.image_size, self.resolution
        self.images = self._map("images.u8", np.uint8, (n, v, s, s))
        self.alpha = self._map("alpha.u8", np.uint8, (n, v, s, s))
        self.voxels = self._map("voxels.u8", np.bool_, (n, r, r, r))
        self.cameras = (
            None if self.views is not None else self._map(CAMERAS, np.float64, (n, v, CAMERA_FIELDS))
        )

    def _map(self, name: str, dtype, shape) -> np.ndarray:
        path = self.path / name
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        have = path.stat().st_size if path.exists() else 0
        if have < need:
            raise VoxliftError(
                f"{path}: truncated ({have} bytes, the manifest's {shape[0]} models need {need})"
            )
        if need == 0:
            return np.zeros(shape, dtype)
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)

    def __len__(self) -> int:
        return len(self.models)

    def views_of(self, index: int) -> list[View]:
        """The V views of one model: the shared views, or its own where views differ per model."""
        if self.views is not None:
            return self.views
        rows = np.asarray(self.cameras[index])
        return [View(*map(float, row[:4]), row[4:].reshape(3, 4).copy()) for row in rows]

    def world_to_pixel(self, index: int) -> np.ndarray:
        """float64 [V, 3, 4] projection matrices of one model's views."""
        if self.views is not None:
            return np.stack([v.world_to_pixel for v in self.views])
        return np.asarray(self.cameras[index][:, 4:]).reshape(-1, 3, 4)

    def indices(self, split: str | None = None, categories: list[str] | None = None) -> np.ndarray:
        return np.array(
            [
                m.index
                for m in self.models
                if (split is None or m.split == split) and (categories is None or m.category in categories)
            ],
            dtype=np.int64,
        )

    def summary(self) -> str:
        from collections import Counter

        by_cat = Counter((m.category, m.split) for m in self.models)
        cats = sorted({c for c, _ in by_cat})
        lines = [
            (
                f"{self.path}: {len(self)} models, {self.views_per_model} views of "
                f"{self.image_size}x{self.image_size} px, voxels {self.resolution}^3, "
                f"{'fixed views' if self.views is not None else 'views differ per model'}"
            )
        ]
        for c in cats:
            lines.append(
                f"  {c or '?':<12} train {by_cat[(c, 'train')]:>6}  val {by_cat[(c, 'val')]:>5}  "
                f"test {by_cat[(c, 'test')]:>5}"
            )
        if self.voxels.shape[0]:
            occupancy = float(
                np.mean([self.voxels[i].mean() for i in range(0, len(self), max(1, len(self) // 200))])
            )
            lines.append(f"  occupied voxels: {100 * occupancy:.2f}%")
        if self.skipped:
            lines.append(f"  skipped models: {len(self.skipped)} (see {self.path / SKIPPED})")
        return "\n".join(lines)


def open_dataset(path: str | os.PathLike) -> Dataset:
    return Dataset(path)


class DatasetWriter:
    """Creates a dataset or opens one to append to it (resuming after a crash). One writer per folder.

    `views` is the list of shared views, or None for per-model views (then `append` takes `cameras`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        image_size: int,
        views_per_model: int,
        resolution: int,
        views: list[View] | None,
        extra_manifest: dict | None = None,
    ):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = FolderLock(self.path, "writing this dataset")  # the one writer of this folder
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "image_size": image_size,
            "views_per_model": views_per_model,
            "resolution": resolution,
            "voxel_to_world": voxel_to_world(resolution).tolist(),
            "views": [v.to_json() for v in views] if views is not None else None,
            **(extra_manifest or {}),
        }
        if (self.path / MANIFEST).exists():
            old = _read_manifest(self.path)
            for key in ("image_size", "views_per_model", "resolution", "views"):
                if not _same(old.get(key), manifest[key]):
                    self.close()
                    raise VoxliftError(
                        f"{self.path}: exists with another {key} ({_short(old.get(key))} "
                        f"!= {_short(manifest[key])}); choose another --out"
                    )
            self.manifest = old
        else:
            try:
                atomic_write_bytes(self.path / MANIFEST, json.dumps(manifest, indent=1).encode())
            except OSError as exc:
                self.close()
                raise VoxliftError(f"{self.path}: cannot write {MANIFEST} ({exc.strerror or exc})") from None
            self.manifest = manifest
        self.per_model_cameras = manifest["views"] is None
        s, v, r = image_size, views_per_model, resolution
        self._strides = {"images.u8": v * s * s, "alpha.u8": v * s * s, "voxels.u8": r**3}
        if self.per_model_cameras:
            self._strides[CAMERAS] = v * CAMERA_FIELDS * 8
        self._recover()

    def _recover(self) -> None:
        """Cut off what a killed writer left half-written: a partial last line, bytes of an uncommitted model."""
        records, end = _model_records(self.path / MODELS)
        with open(self.path / MODELS, "ab") as f:
            f.truncate(end)
        self.count = len(records)
        self.ids = {r["id"] for r in records}
        for name, stride in self._strides.items():
            with open(self.path / name, "ab") as f:
                size = f.seek(0, os.SEEK_END)
                if size < self.count * stride:
                    raise VoxliftError(
                        f"{self.path / name}: shorter than its {self.count} committed models; "
                        "the dataset is damaged"
                    )
                f.truncate(self.count * stride)
        skipped, end = _read_committed_lines(self.path / SKIPPED)
        with open(self.path / SKIPPED, "ab") as f:
            f.truncate(end)
        self.skipped_ids = {r["id"] for r in skipped if isinstance(r, dict) and isinstance(r.get("id"), str)}
        self._files = {name: open(self.path / name, "ab") for name in self._strides}  # noqa: SIM115 (closed in close())

    def __contains__(self, model_id: str) -> bool:
        return model_id in self.ids

    def append(
        self,
        *,
        id: str,
        category: str,
        source: str,
        images: np.ndarray,
        alpha: np.ndarray,
        voxels: np.ndarray,
        cameras: np.ndarray | None = None,
        durable: bool = True,
        **extra,
    ) -> int:
        """Add one model; returns its index. images/alpha uint8 [V, S, S], voxels bool [R, R, R]."""
        if id in self.ids:
            raise VoxliftError(f"{self.path}: model {id!r} is already in the dataset")
        s, v, r = self.manifest["image_size"], self.manifest["views_per_model"], self.manifest["resolution"]
        arrays = {
            "images.u8": np.asarray(images),
            "alpha.u8": np.asarray(alpha),
            "voxels.u8": np.asarray(voxels),
        }
        expect = {"images.u8": (v, s, s), "alpha.u8": (v, s, s), "voxels.u8": (r, r, r)}
        if self.per_model_cameras:
            if cameras is None:
                raise ValueError("this dataset's views differ per model: append() needs cameras [V, 16]")
            arrays[CAMERAS], expect[CAMERAS] = np.asarray(cameras, dtype=np.float64), (v, CAMERA_FIELDS)
        for name, arr in arrays.items():
            if arr.shape != expect[name]:
                raise ValueError(f"{name}: shape {arr.shape}, expected {expect[name]}")
        # Data first, then the line that commits it.
        record = {"id": id, "category": category, "source": source, "split": split_of(id), **extra}
        try:
            for name, arr in arrays.items():
                data = arr.astype(np.uint8) if name == "voxels.u8" else arr
                self._files[name].write(np.ascontiguousarray(data).tobytes())
                self._files[name].flush()
                if durable:
                    os.fsync(self._files[name].fileno())
            _append_line(self.path / MODELS, record, durable)
        except OSError as exc:  # a full disk or quota: cut back to the committed models, say so in one line
            self._rollback()
            raise VoxliftError(
                f"{self.path}: cannot write model {id!r} ({exc.strerror or exc}); the dataset "
                f"keeps its {self.count} complete models, and the same command resumes once "
                "there is room"
            ) from None
        self.ids.add(id)
        self.count += 1
        return self.count - 1

    def skip(self, id: str, source: str, reason: str) -> None:
        """Record a model that could not be used, with its reason; the run goes on."""
        if id in self.skipped_ids:
            return
        try:
            _append_line(self.path / SKIPPED, {"id": id, "source": source, "reason": reason}, True)
        except OSError as exc:
            self._rollback()
            raise VoxliftError(f"{self.path}: cannot write to {SKIPPED} ({exc.strerror or exc})") from None
        self.skipped_ids.add(id)

    def _rollback(self) -> None:
        """After a failed write: drop the bytes of the model in flight (whatever reached the disk) and reopen
        the files, so the folder holds exactly the committed models and close() works."""
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()  # may flush part of the buffer again, or fail: truncated just below either way
        try:
            self._recover()
        except OSError:
            self._files = {}

    def close(self) -> None:
        for f in getattr(self, "_files", {}).values():
            # a full disk: what did not reach it is uncommitted, cut off by the next writer
            with contextlib.suppress(OSError):
                f.close()
        self._files = {}
        self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _append_line(path: Path, record: dict, durable: bool) -> None:
    with open(path, "ab") as f:
        f.write((json.dumps(record, separators=(",", ":")) + "\n").encode())
        f.flush()
        if durable:
            os.fsync(f.fileno())


def _same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):  # view lists: compare numbers, not their JSON text
        return len(a) == len(b) and all(np.allclose(_flat(x), _flat(y), atol=1e-9) for x, y in zip(a, b))
    return a == b


def _flat(view) -> list[float]:
    if isinstance(view, dict):
        return [
            view["azimuth"],
            view["elevation"],
            view["distance"],
            view["fov"],
            *np.asarray(view["world_to_pixel"], dtype=float).ravel(),
        ]
    return list(np.asarray(view, dtype=float).ravel())


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) < 60 else text[:57] + "..."


def merge_datasets(out: str | os.PathLike, inputs: list[str | os.PathLike]) -> int:
    """Append every model of `inputs` (e.g. shards) to `out`; models already there are kept, not doubled."""
    added = 0
    first = open_dataset(inputs[0])
    # How the models were rendered (engine, appearance...) stays with them.
    extra = {"render": first.manifest["render"]} if isinstance(first.manifest.get("render"), dict) else None
    with DatasetWriter(
        out,
        image_size=first.image_size,
        views_per_model=first.views_per_model,
        resolution=first.resolution,
        views=first.views,
        extra_manifest=extra,
    ) as writer:
        for path in inputs:
            ds = open_dataset(path)
            for m in ds.models:
                if m.id in writer:
                    continue
                writer.append(
                    id=m.id,
                    category=m.category,
                    source=m.source,
                    images=ds.images[m.index],
                    alpha=ds.alpha[m.index],
                    voxels=ds.voxels[m.index],
                    cameras=None if ds.cameras is None else ds.cameras[m.index],
                    durable=False,
                    **m.extra,
                )
                added += 1
            for s in ds.skipped:
                writer.skip(s.get("id"), s.get("source", ""), s.get("reason", ""))
    return added
