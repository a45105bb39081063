"""One interface over every mesh source: `iter_models(spec)` yields ModelRecords whose load() gives the mesh in
the canonical frame (Z up, front towards -Y, bounding box centred, longest side 1).

spec is one of
    path/to/library.sh3f          a Sweet Home 3D furniture library          ids sh3f:<library>/<entry id>
    path/to/folder-of-sh3f/       every .sh3f in it, sorted by name, except the held-out set (HELD_OUT)
    path/to/ShapeNetCore.v1|v2/   a root or one synset folder (v1/v2 detected)  ids <synset>/<model id>
    path/to/folder-of-obj/        every .obj below it (Y up, front +Z)        ids obj:<folder>/<relative path>
    synthetic:N[:seed]            N procedural chairs, tables, ...            ids synthetic:<seed>/<k>
    augment:K:SPEC                each model of SPEC, then K shape variants   ids <model id>#aug<n>
                                  of it (augment.py: stretched legs or back,
                                  anisotropic scale, mirror), each variant in
                                  its model's train/val/test split
Order is deterministic (sorted paths, catalog order, generator index). Categories are ShapeNet taxonomy
names (shapenet.SYNSETS); things that are no furniture class land in "other".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import VoxliftError
from .mesh import Y_UP_FRONT_PLUS_Z, Mesh, to_canonical
from .shapenet import NAME_TO_SYNSET, SYNSETS, is_shapenet, iter_shapenet, load_shapenet

# BlendSwap-CC-BY.sh3f is voxlift's external test set: a folder of libraries never includes it (so that
# `voxlift render /usr/share/sweethome3d/furniture` cannot train on it); name the file itself to use it.
HELD_OUT = {"BlendSwap-CC-BY.sh3f"}


@dataclass
class ModelRecord:
    id: str
    category: str
    source: str  # "sh3f", "shapenet-v1", "shapenet-v2", "obj" or "synthetic"
    name: str
    load: Callable[[], Mesh]

    def __repr__(self) -> str:  # load is a closure: keep reprs short in logs
        return f"ModelRecord({self.id!r}, {self.category!r}, {self.source!r}, {self.name!r})"


def _guarded(model_id: str, fn: Callable[[], Mesh]) -> Callable[[], Mesh]:
    """load() raises VoxliftError naming the model, whatever went wrong inside."""

    def load() -> Mesh:
        try:
            return fn()
        except VoxliftError as exc:
            msg = str(exc)
            raise VoxliftError(msg if model_id in msg else f"{model_id}: {msg}") from None
        except (OSError, ValueError, IndexError, KeyError, MemoryError, UnicodeError) as exc:
            raise VoxliftError(f"{model_id}: cannot load ({type(exc).__name__}: {exc})") from None

    return load


def normalize_categories(categories) -> set[str] | None:
    """Names or synset ids (a list, or a comma-separated string) -> set of taxonomy names ('other' allowed)."""
    if categories is None:
        return None
    if isinstance(categories, str):
        categories = categories.split(",")
    out = set()
    for c in categories:
        c = c.strip()
        if not c:
            continue
        if c in SYNSETS:
            out.add(SYNSETS[c])
        elif c in NAME_TO_SYNSET or c == "other":
            out.add(c)
        else:
            raise VoxliftError(
                f"unknown category {c!r}: use ShapeNet names such as chair,table "
                f"(known: {', '.join(sorted(NAME_TO_SYNSET))}, other)"
            )
    return out or None


# ---------------------------------------------------------------- per source
def _iter_sh3f(path: Path) -> Iterator[ModelRecord]:
    from .sh3f import Sh3fArchive, load_entry, read_catalog, taxonomy_category

    archive = Sh3fArchive(path)
    library = path.stem
    seen: dict[str, int] = {}
    for entry in read_catalog(archive):
        local = entry.id.split("#", 1)[-1] if "#" in entry.id else entry.id
        local = local.strip("/") or f"entry{entry.index}"
        if local in seen:  # ids must be unique: a repeated catalog id gets its catalog number
            local = f"{local}~{entry.index}"
        seen[local] = entry.index
        model_id = f"sh3f:{library}/{local}"
        yield ModelRecord(
            model_id,
            taxonomy_category(entry.name, entry.category, entry.tags),
            "sh3f",
            entry.name,
            _guarded(model_id, lambda e=entry: load_entry(archive, e)),
        )


def _iter_obj_folder(root: Path) -> Iterator[ModelRecord]:
    from .obj import read_obj
    from .sh3f import taxonomy_category

    for path in sorted(root.rglob("*")):
        if path.suffix.lower() != ".obj" or not path.is_file():
            continue
        rel = path.relative_to(root).with_suffix("").as_posix()
        model_id = f"obj:{root.name}/{rel}"
        parent = path.parent.name.lower()
        category = parent if parent in NAME_TO_SYNSET else taxonomy_category(path.stem.replace("_", " "))

        def load(p=path):
            mesh = read_obj(p)
            mesh.check(str(p))
            return to_canonical(mesh, Y_UP_FRONT_PLUS_Z)

        yield ModelRecord(model_id, category, "obj", path.stem, _guarded(model_id, load))


def _iter_synthetic(spec: str, limit: int | None) -> Iterator[ModelRecord]:
    from .synthetic import synthetic_model

    m = re.fullmatch(r"synthetic:(\d+)(?::(\d+))?", spec)
    if not m:
        raise VoxliftError(f"{spec!r}: write synthetic:N or synthetic:N:SEED (N models, integer seed)")
    n, seed = int(m.group(1)), int(m.group(2) or 0)
    for k in range(n):
        model = synthetic_model(seed, k)  # cheap (a few ms): built here to know its category
        model_id = f"synthetic:{seed}/{k}"
        yield ModelRecord(model_id, model.category, "synthetic", model.kind, lambda mesh=model.mesh: mesh)


def _iter_augmented(spec: str, limit: int | None) -> Iterator[ModelRecord]:
    """augment:K:SPEC: every model of SPEC followed by its K variants (same category, source and split)."""
    from .augment import MAX_VARIANTS, augment_mesh, variant_ids

    m = re.fullmatch(r"augment:(\d+):(.+)", spec, re.DOTALL)
    if not m or not 1 <= int(m.group(1)) <= MAX_VARIANTS:
        raise VoxliftError(
            f"{spec!r}: write augment:K:SOURCE (K variants of each model of SOURCE, K from 1 to {MAX_VARIANTS})"
        )
    inner = m.group(2)
    if inner.startswith("augment:"):
        raise VoxliftError(f"{spec!r}: augment: cannot be nested")
    for record in _iter_spec(inner, limit):
        yield record
        for vid in variant_ids(record.id, int(m.group(1))):
            n = vid.rsplit("#aug", 1)[1]
            yield ModelRecord(
                vid,
                record.category,
                record.source,
                f"{record.name} (variant {n})",
                _guarded(vid, lambda base=record, vid=vid: augment_mesh(base.load(), vid)),
            )


def _iter_spec(spec: str, limit: int | None) -> Iterator[ModelRecord]:
    if spec.startswith("augment:"):
        yield from _iter_augmented(spec, limit)
        return
    if spec.startswith("synthetic:"):
        yield from _iter_synthetic(spec, limit)
        return
    path = Path(spec)
    if not path.exists():
        raise VoxliftError(f"{spec}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".sh3f":
            yield from _iter_sh3f(path)
            return
        raise VoxliftError(f"{spec}: not a mesh source (expected a .sh3f file, a folder or synthetic:N)")
    if is_shapenet(path):
        for m in iter_shapenet(path):
            yield ModelRecord(
                m.id,
                m.category,
                f"shapenet-v{m.version}",
                m.model_id,
                _guarded(m.id, lambda m=m: load_shapenet(m)),
            )
        return
    libraries = sorted(
        p for p in path.iterdir() if p.suffix.lower() == ".sh3f" and p.is_file() and p.name not in HELD_OUT
    )
    if libraries:
        for lib in libraries:
            yield from _iter_sh3f(lib)
        return
    if any(p.suffix.lower() == ".obj" for p in path.rglob("*")):
        yield from _iter_obj_folder(path)
        return
    raise VoxliftError(f"{spec}: no .sh3f libraries, ShapeNet models or .obj files in this folder")


def iter_models(
    spec: str, categories: list[str] | None = None, limit: int | None = None
) -> Iterator[ModelRecord]:
    """ModelRecords of one source, filtered by category (names or synset ids), at most `limit` of them."""
    wanted = normalize_categories(categories)
    if limit is not None and limit < 0:
        raise VoxliftError(f"--limit must be 0 or more, not {limit}")
    count = 0
    if limit == 0:
        return
    for record in _iter_spec(str(spec), limit):
        if wanted is not None and record.category not in wanted:
            continue
        yield record
        count += 1
        if limit is not None and count >= limit:
            return


def iter_sources(specs: list[str], categories=None, limit: int | None = None) -> Iterator[ModelRecord]:
    """iter_models over several specs in order, `limit` counting across all of them."""
    count = 0
    for spec in specs:
        for record in iter_models(spec, categories, None if limit is None else limit - count):
            yield record
            count += 1
        if limit is not None and count >= limit:
            return
