"""Sweet Home 3D furniture libraries (.sh3f): read the catalog and its OBJ models straight from the zip.

Nothing is extracted to disk. An archive is refused as a whole when an entry name is absolute or has a `..`
part, when it has more than MAX_ENTRIES entries or more than MAX_TOTAL_BYTES uncompressed, and each entry is
read with its declared size as a hard cap (a zip bomb that lies about sizes stops there).

Sweet Home 3D's model frame is Y up with the model's front towards +Z (the viewer in its default view);
it applies `modelRotation#N` (a row-major 3x3 matrix, v' = R v) first, then scales the model's bounding box
to width x height x depth along x, y, z. We do the same, then rotate into voxlift's canonical frame with
mesh.Y_UP_FRONT_PLUS_Z (checked on real chairs: their backrests end up on +Y; see tests/test_sources_sh3f.py).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import VoxliftError
from .mesh import Y_UP_FRONT_PLUS_Z, Mesh, to_canonical

CATALOG = "PluginFurnitureCatalog.properties"
MAX_ENTRIES = 50_000
MAX_TOTAL_BYTES = 4 << 30  # 4 GiB uncompressed in all (the real libraries hold 30-200 MB)
MAX_ENTRY_BYTES = 512 << 20
# What zipfile raises on damaged archives besides BadZipFile (found by fuzzing: a corrupt deflate stream
# raises zlib.error, an unknown "version needed to extract" NotImplementedError, short headers struct.error,
# an entry flagged as encrypted RuntimeError("... password required for extraction")).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    zlib.error,
    struct.error,
    RuntimeError,
)


# ---------------------------------------------------------------- Java .properties
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str):
    """Join continuation lines (an odd number of trailing backslashes); drop comments and blank lines."""
    buf = None
    # Java ends lines at \n, \r or \r\n only; str.splitlines() also splits at \x85 (a cp1252 ellipsis read
    # as latin-1), \x1c-\x1e, \v and \f, which cut a value in two (found by the round-trip property test).
    for raw in re.split(r"\r\n|\r|\n", text):
        line = raw.lstrip(" \t\f")
        if buf is None:
            if not line or line[0] in "#!":
                continue
            buf = line
        else:
            buf += line  # a continuation's leading whitespace is dropped
        trailing = len(buf) - len(buf.rstrip("\\"))
        if trailing % 2 == 1:
            buf = buf[:-1]
            continue
        yield buf
        buf = None
    if buf is not None:
        yield buf


def _unescape(s: str, where: str) -> str:
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 == len(s):
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n == "u":
            digits = s[i + 2 : i + 6]
            if len(digits) != 4 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise VoxliftError(f"{where}: malformed \\uXXXX escape {s[i : i + 6]!r}")
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            out.append(_ESCAPES.get(n, n))
            i += 2
    return "".join(out)


def parse_properties(text: str, where: str = "properties") -> dict[str, str]:
    """Java .properties: `key=value`, `key:value` or `key value`; `\\` escapes incl. `\\uXXXX`;
    continuation lines; `#` and `!` comments. Later keys override earlier ones, as in Java."""
    props = {}
    for line in _logical_lines(text):
        i, n = 0, len(line)
        while i < n and line[i] not in "=: \t\f":
            i += 2 if line[i] == "\\" else 1
        key = line[: min(i, n)]
        while i < n and line[i] in " \t\f":
            i += 1
        if i < n and line[i] in "=:":
            i += 1
        while i < n and line[i] in " \t\f":
            i += 1
        props[_unescape(key, where)] = _unescape(line[i:], where)
    return props


# ---------------------------------------------------------------- the zip
def _hostile(name: str) -> bool:
    p = name.replace("\\", "/")
    return p.startswith("/") or re.match(r"^[A-Za-z]:", p) is not None or ".." in p.split("/")


class Sh3fArchive:
    """An open .sh3f with its size limits checked; entries are read into memory, never extracted."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise VoxliftError(f"{self.path}: no such file") from None
        except ZIP_ERRORS as exc:
            raise VoxliftError(f"{self.path}: not a Sweet Home 3D library (.sh3f is a zip: {exc})") from None
        infos = self.zip.infolist()
        if len(infos) > MAX_ENTRIES:
            self.zip.close()
            raise VoxliftError(f"{self.path}: {len(infos)} zip entries, more than the {MAX_ENTRIES} allowed")
        total = sum(i.file_size for i in infos)
        if total > MAX_TOTAL_BYTES:
            self.zip.close()
            raise VoxliftError(
                f"{self.path}: {total} bytes uncompressed, more than the {MAX_TOTAL_BYTES} allowed"
            )
        for info in infos:
            if _hostile(info.filename):
                self.zip.close()
                raise VoxliftError(
                    f"{self.path}: refused: zip entry {info.filename!r} is an absolute path "
                    "or leaves the archive ('..')"
                )
        self.infos = {i.filename: i for i in infos}

    def read(self, name: str) -> bytes:
        name = name.lstrip("/")
        info = self.infos.get(name)
        if info is None:
            raise VoxliftError(f"{self.path}: no entry {name!r} in the archive")
        if info.file_size > MAX_ENTRY_BYTES:
            raise VoxliftError(f"{self.path}: entry {name!r} is {info.file_size} bytes, over the limit")
        try:
            with self.zip.open(info) as f:
                data = f.read(info.file_size + 1)
        except ZIP_ERRORS as exc:
            raise VoxliftError(f"{self.path}: entry {name!r} is corrupt ({exc})") from None
        if len(data) != info.file_size:
            raise VoxliftError(f"{self.path}: entry {name!r} does not have its declared size")
        return data

    def close(self):
        self.zip.close()


# ---------------------------------------------------------------- catalog
@dataclass
class CatalogEntry:
    index: int  # N of the `#N` keys
    id: str  # catalog id (`id#N`), or the model path when missing
    name: str
    category: str  # Sweet Home 3D's own category ("Living room", ...)
    model: str  # path inside the zip
    width: float
    depth: float
    height: float
    rotation: np.ndarray | None  # 3x3 row-major modelRotation
    creator: str = ""
    tags: str = ""
    extra: dict = field(default_factory=dict)


def _number(props, key, where) -> float:
    try:
        v = float(props[key])
    except (KeyError, ValueError):
        raise VoxliftError(f"{where}: {key} is missing or not a number ({props.get(key)!r})") from None
    if not (np.isfinite(v) and v > 0):
        raise VoxliftError(f"{where}: {key} must be a positive number, not {props[key]!r}")
    return v


def parse_catalog(props: dict[str, str], where: str) -> list[CatalogEntry]:
    """Catalog entries in `#N` order; an entry with a broken size or rotation is kept with its error for
    load time (so listing never fails on one bad model): its `extra['error']` holds the message."""
    indices = sorted({int(m.group(1)) for k in props for m in [re.fullmatch(r"model#(\d+)", k)] if m})
    entries = []
    for n in indices:

        def g(key, default="", n=n):
            return props.get(f"{key}#{n}", default)

        entry = CatalogEntry(
            n,
            g("id") or g("model"),
            g("name"),
            g("category"),
            g("model"),
            0.0,
            0.0,
            0.0,
            None,
            g("creator"),
            g("tags"),
        )
        try:
            entry.width = _number(props, f"width#{n}", where)
            entry.depth = _number(props, f"depth#{n}", where)
            entry.height = _number(props, f"height#{n}", where)
            rot = g("modelRotation")
            if rot:
                try:
                    values = [float(x) for x in rot.split()]
                except ValueError:
                    values = []
                if len(values) != 9 or not np.isfinite(values).all():
                    raise VoxliftError(f"{where}: modelRotation#{n} must be 9 numbers, not {rot!r}")
                entry.rotation = np.array(values).reshape(3, 3)
        except VoxliftError as exc:
            entry.extra["error"] = str(exc)
        entries.append(entry)
    return entries


def read_catalog(archive: Sh3fArchive) -> list[CatalogEntry]:
    data = archive.read(CATALOG)
    # Java reads .properties as ISO-8859-1; anything else is written as \uXXXX escapes.
    return parse_catalog(
        parse_properties(data.decode("latin-1"), f"{archive.path}:{CATALOG}"), f"{archive.path}:{CATALOG}"
    )


def sh3d_to_model_frame(mesh: Mesh, entry: CatalogEntry) -> Mesh:
    """What Sweet Home 3D does: modelRotation, then the bounding box scaled to width x height x depth."""
    if entry.rotation is not None:
        mesh = mesh.transformed(entry.rotation)
    v = mesh.vertices
    lo, hi = v.min(axis=0), v.max(axis=0)
    size = hi - lo
    target = np.array([entry.width, entry.height, entry.depth])
    # A flat part (zero extent on one axis) keeps that axis as it is instead of dividing by zero.
    scale = np.where(size > 1e-12, target / np.where(size > 1e-12, size, 1), 1.0)
    return Mesh((v - (lo + hi) / 2) * scale, mesh.faces, mesh.materials_loader)


# `f a b` lines: two-vertex "faces" (line segments, no area) that some real libraries hold (KatorLegaz
# cafe-chair and office-chair, Scopia coffee_table, BlendSwap-CC-0 desk). Sweet Home 3D ignores them; so do we.
_DEGENERATE_FACE = re.compile(rb"^[ \t]*f[ \t]+\S+[ \t]+\S+[ \t]*\r?$", re.MULTILINE)


def load_entry(archive: Sh3fArchive, entry: CatalogEntry) -> Mesh:
    """The entry's model in the canonical frame."""
    from .obj import parse_obj  # the geometry engineer's OBJ reader (groups/parts merged, faces triangulated)

    where = f"{archive.path}:{entry.model.lstrip('/')}"
    if "error" in entry.extra:
        raise VoxliftError(entry.extra["error"])
    if not entry.model:
        raise VoxliftError(f"{archive.path}: catalog entry #{entry.index} has no model#{entry.index}")
    if not PurePosixPath(entry.model).suffix.lower() == ".obj":
        raise VoxliftError(f"{where}: only OBJ models are supported")
    data = _DEGENERATE_FACE.sub(b"", archive.read(entry.model))
    mesh = parse_obj(data, where)
    mesh.check(where)
    mesh.materials_loader = functools.partial(load_entry_materials, archive, entry)
    return to_canonical(sh3d_to_model_frame(mesh, entry), Y_UP_FRONT_PLUS_Z)


def load_entry_materials(archive: Sh3fArchive, entry: CatalogEntry):
    """The entry's materials (MTL colours, textures from the zip) face by face, or None (they are optional).
    Read again from the zip when asked, so that loading the geometry never pays for them."""
    from .obj import materials_or_none, zip_file_reader

    name = entry.model.lstrip("/")
    try:
        data = _DEGENERATE_FACE.sub(b"", archive.read(name))
    except VoxliftError:
        return None
    where = f"{archive.path}:{name}"
    return materials_or_none(data, where, zip_file_reader(archive.read, posixpath.dirname(name)))


# ---------------------------------------------------------------- categories
# Sweet Home 3D has room categories ("Living room"), not object classes: the object class comes from the
# entry's name (and tags), mapped onto ShapeNet's taxonomy names. First match wins; order matters
# ("table lamp" is a lamp, "table football" is other).
_NAME_RULES = [
    (r"\b(fan|football|pool table|billiard|ping|tennis|lamp|light|lantern)\b", None),
    (r"\b(sofa|couch|futon|settee|loveseat)s?\b", "sofa"),
    (r"\b(arm ?chairs?|chairs?|stools?|seats?|highchair)\b", "chair"),
    (r"\b(bench(es)?|bank)\b", "bench"),
    (r"\b(tables?|desks?)\b", "table"),
    (r"\b(bookcase|bookshelf|shelves)\b", "bookshelf"),
    (r"\b(cabinet|cupboard|wardrobe|dresser|drawers?|closet|sideboard|chest)\b", "cabinet"),
    (r"\b(beds?|crib)\b", "bed"),
    (r"\bpiano\b", "piano"),
    (r"\b(tv|television|monitor|screen|display)\b", "display"),
    (r"\b(speakers?|loudspeakers?)\b", "loudspeaker"),
    (r"\b(phone|iphone|telephone|smartphone)\b", "telephone"),
    (r"\b(boat|ship|canoe|kayak)\b", "watercraft"),
    (r"\b(car|sedan|beetle|truck)\b", "car"),
]


def taxonomy_category(name: str, category: str = "", tags: str = "") -> str:
    """ShapeNet taxonomy name for a Sweet Home 3D entry, or 'other' (people, animals, small objects...)."""
    cat = category.lower()
    if cat in ("characters", "doors and windows", "staircases"):
        return "other"
    if cat == "lights":
        return "lamp"
    if cat == "vehicles":
        return "car" if re.search(r"\b(car|sedan|beetle)\b", (name + " " + tags).lower()) else "other"
    text = name.lower()
    for pattern, result in _NAME_RULES:
        if re.search(pattern, text):
            return result or ("lamp" if re.search(r"\b(lamp|light|lantern)\b", text) else "other")
    return "other"
