"""Wavefront OBJ reading and writing, numpy only: the geometry (v and f lines), and on demand the materials.

The geometry reader ignores everything else in an OBJ file (vt, vn, g, o, s, usemtl, mtllib, l, p,
comments...), so a multi-part file keeps every part's faces. Polygons are fan-triangulated; `v/vt/vn`,
`v//vn`, `v/vt` corners, negative (relative) indices, CRLF or CR line ends and `\\` line continuations are
understood. Text that only names things may be in any 8-bit encoding (a Latin-1 `usemtl Terraind\xe6k` is
read as Blender reads it); UTF-16 files with a byte-order mark are decoded first.

Parsing is vectorised over the whole file (numpy scans of the bytes, `np.fromstring` for the numbers)
rather than one Python call per line, because ShapeNet and Sweet Home 3D meshes reach millions of faces.

Materials (`parse_obj_materials`, and Mesh.load_materials() of a mesh from `read_obj`) are a second, separate
pass that only a renderer asks for: each triangle's `usemtl` material, the MTL files' diffuse colours (Kd),
opacities (d, Tr) and diffuse textures (map_Kd, as file bytes), and the triangles' texture coordinates when
every corner has one. The geometry path does not change for callers that never ask.
"""

from __future__ import annotations

import functools
import itertools
import os
import posixpath
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import VoxliftError
from .fileio import atomic_write_bytes
from .mesh import Material, Mesh, MeshMaterials

# A polygon with more corners than this is not furniture, it is a broken or hostile file; refusing it keeps
# one line from dictating memory use.
MAX_FACE_CORNERS = 4096
# Files bigger than this would need several times their size in RAM to parse.
MAX_FILE_BYTES = 2 << 30

_SPACE, _NEWLINE, _SLASH = 32, 10, 47
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF8_BOM = b"\xef\xbb\xbf"
# Material files and textures bigger than this are not read (a texture is decoded by Blender, in memory).
MAX_MATERIAL_FILE_BYTES = 64 << 20
# Texture coordinates repeat the texture; beyond this they are broken (and would not fit a float32).
MAX_UV = 1e6


def read_obj(path: str | os.PathLike) -> Mesh:
    """Read an OBJ file into a triangle Mesh; VoxliftError (naming the file) if it cannot be used.

    The mesh's materials (MTL files and textures beside it) are read only if load_materials() asks."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VoxliftError(f"{path}: no such file") from None
    except OSError as exc:
        raise VoxliftError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise VoxliftError(f"{path}: is a folder, not an OBJ file")
    if size > MAX_FILE_BYTES:
        raise VoxliftError(f"{path}: {size} bytes is too big for an OBJ model (limit {MAX_FILE_BYTES})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VoxliftError(f"{path}: cannot read ({exc.strerror or exc})") from None
    mesh = parse_obj(data, str(path))
    mesh.materials_loader = functools.partial(_read_obj_materials, path)
    return mesh


class _Untidy(Exception):
    """The quick pass met runs of spaces: tidy the text up and parse again."""


def parse_obj(data: bytes, name: str) -> Mesh:
    """Parse the bytes of an OBJ file; `name` (the file's path or zip member) goes into error messages."""
    data = _normalise_text(bytes(data), name)
    try:
        return _parse(data, name)
    except _Untidy:
        return _parse(_tidy_spaces(data), name)


def _parse(data: bytes, name: str) -> Mesh:
    lines = data.split(b"\n")
    starts = np.zeros(len(lines), dtype=np.int64)
    if len(lines) > 1:
        starts[1:] = np.flatnonzero(np.frombuffer(data, np.uint8) == _NEWLINE) + 1
    # The first two bytes of every line say what it is; a sentinel newline keeps the look-ups in bounds.
    buf = np.frombuffer(data + b"\n\n", np.uint8)
    first, second = buf[starts], buf[starts + 1]
    # Token counting below assumes one space between tokens and none at either end of a line.
    if (first == _SPACE).any() or (buf[starts[1:] - 2] == _SPACE).any() or data.endswith(b" "):
        raise _Untidy
    is_v = (first == ord("v")) & (second == _SPACE)
    is_f = (first == ord("f")) & (second == _SPACE)
    if not is_f.any():
        raise VoxliftError(f"{name}: no faces (not an OBJ mesh, or an empty or truncated file)")

    v_lines = np.flatnonzero(is_v)
    f_lines = np.flatnonzero(is_f)
    vertices = _parse_vertices(_body(lines, is_v), v_lines, name)
    corners, counts = _parse_faces(_body(lines, is_f), f_lines, name)

    # Relative index -k means the k-th vertex defined before this face's line.
    v_before = np.cumsum(is_v)[f_lines]
    face_of_corner = np.repeat(np.arange(len(counts)), counts)
    raw = corners
    idx = np.where(raw > 0, raw - 1, raw + v_before[face_of_corner])
    bad = (raw == 0) | (idx < 0) | (idx >= len(vertices))
    if bad.any():
        c = int(np.argmax(bad))
        line = int(f_lines[face_of_corner[c]]) + 1
        why = (
            "index 0 (OBJ indices start at 1)"
            if raw[c] == 0
            else f"vertex {int(raw[c])}, but the file has {len(vertices)} vertices there"
        )
        raise VoxliftError(f"{name}: line {line}: a face refers to {why} (corrupt or truncated file?)")

    triangles = _fan_triangulate(idx, counts)
    mesh = Mesh(vertices, triangles)
    if not np.isfinite(mesh.vertices).all():
        line = int(v_lines[np.flatnonzero(~np.isfinite(mesh.vertices).all(axis=1))[0]]) + 1
        raise VoxliftError(f"{name}: line {line}: vertex coordinate is NaN or infinite")
    return mesh.check(name)


def write_obj(path: str | os.PathLike, mesh: Mesh, comment: str | None = None) -> None:
    """Write vertices and triangles (1-based) atomically: a temp file renamed over `path`.

    Coordinates are written with 17 significant digits, so reading the file back gives the same floats.
    """
    path = Path(path)
    v = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3) + 1
    parts = [f"# {line}\n" for line in (comment or "").splitlines()]
    parts.append("".join(map("v %.17g %.17g %.17g\n".__mod__, map(tuple, v.tolist()))))
    parts.append("".join(map("f %d %d %d\n".__mod__, map(tuple, f.tolist()))))
    atomic_write_bytes(path, "".join(parts).encode("utf-8"))


def _decode_utf16(data: bytes, name: str) -> bytes:
    """UTF-16 text with a byte-order mark (some Windows exporters write it), as UTF-8."""
    try:
        return data.decode("utf-16").encode("utf-8")
    except UnicodeDecodeError as exc:
        raise VoxliftError(f"{name}: not a text OBJ file (invalid UTF-16 at byte {exc.start})") from None


def _normalise_text(data: bytes, name: str) -> bytes:
    """Check the bytes are text and bring them to one shape: LF line ends, spaces, no leading blanks.

    Bytes outside ASCII are kept as they are: only names (materials, groups, files) hold them, and numbers
    are ASCII in every encoding; a non-ASCII byte in a v or f line is reported as a bad number there."""
    if data.startswith(UTF16_BOMS):
        data = _decode_utf16(data, name)
    elif data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    if not data or data.isspace():
        raise VoxliftError(f"{name}: empty file")
    if b"\0" in data:
        raise VoxliftError(f"{name}: binary data, not a text OBJ file")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if (
        b"\\" in data and b"\\\n" in data
    ):  # a continued line joins the next one (this shifts later line numbers by one)
        data = data.replace(b"\\\n", b" ")
    for blank in (b"\t", b"\v", b"\f"):
        if blank in data:
            data = data.replace(blank, b" ")
    return data


def _tidy_spaces(data: bytes) -> bytes:
    """One space between tokens, none at either end of a line: then a line's tokens are its spaces + 1."""
    data = re.sub(rb" {2,}", b" ", data)
    data = re.sub(rb"(?m)^ ", b"", data)
    return re.sub(rb"(?m) $", b"", data)


def _body(lines: list[bytes], mask: np.ndarray) -> bytes:
    """The chosen lines joined by newlines, without their two-byte keyword ("v ", "f ")."""
    text = b"\n".join(itertools.compress(lines, mask.tolist()))
    return text[2:].replace(b"\n" + text[:2], b"\n")


def _token_counts(buf: np.ndarray, n_lines: int) -> np.ndarray:
    """How many tokens each newline-separated line of `buf` holds (normalised text: spaces + 1)."""
    space_pos = np.flatnonzero(buf == _SPACE)
    line_starts = np.zeros(n_lines + 1, dtype=np.int64)
    line_starts[1:n_lines] = np.flatnonzero(buf == _NEWLINE) + 1
    line_starts[n_lines] = len(buf) + 1
    counts = np.diff(np.searchsorted(space_pos, line_starts)) + 1
    counts[np.diff(line_starts) <= 1] = 0  # an empty line holds no token
    return counts


def _fromstring(text: bytes, dtype) -> np.ndarray:
    with warnings.catch_warnings():  # numpy warns, then stops, at the first token it cannot read
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.fromstring(text, dtype=dtype, sep=" ")


def _first_bad_token(text: bytes, line_numbers: np.ndarray, convert) -> tuple[int, bytes]:
    """Slow path, only for error messages: the first line holding a token `convert` rejects."""
    for k, line in enumerate(text.split(b"\n")):
        for token in line.split():
            try:
                convert(token)
            except ValueError:
                return int(line_numbers[k]) + 1, token
    return int(line_numbers[0]) + 1, b"?"


def _parse_vertices(text: bytes, v_lines: np.ndarray, name: str) -> np.ndarray:
    if len(v_lines) == 0:
        return np.zeros((0, 3))
    buf = np.frombuffer(text, np.uint8)
    counts = _token_counts(buf, len(v_lines))
    if counts.min() < 3:
        line = int(v_lines[np.argmin(counts)]) + 1
        raise VoxliftError(
            f"{name}: line {line}: a vertex needs 3 coordinates, found {counts.min()} "
            "(corrupt or truncated file?)"
        )
    values = _fromstring(text, np.float64)
    if len(values) != counts.sum() and b"  " in text:
        raise _Untidy
    if len(values) != counts.sum():
        line, token = _first_bad_token(text, v_lines, float)
        raise VoxliftError(f"{name}: line {line}: {token[:40]!r} is not a number")
    if (counts == 3).all():
        return values.reshape(-1, 3)
    # Extra values (w, or the r g b of vertex colours): keep x y z.
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return values[offsets[:, None] + np.arange(3)]


def _parse_faces(text: bytes, f_lines: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertex indices of every corner (as written, 1-based or negative) and corners per face."""
    buf = np.frombuffer(text, np.uint8)
    counts = _token_counts(buf, len(f_lines))
    if counts.min() < 3:
        line = int(f_lines[np.argmin(counts)]) + 1
        raise VoxliftError(
            f"{name}: line {line}: a face needs at least 3 vertices, found {counts.min()} "
            "(corrupt or truncated file?)"
        )
    if counts.max() > MAX_FACE_CORNERS:
        line = int(f_lines[np.argmax(counts)]) + 1
        raise VoxliftError(
            f"{name}: line {line}: a face with {counts.max()} corners "
            f"(more than {MAX_FACE_CORNERS}); refusing it"
        )
    total = int(counts.sum())
    if b"  " in text:  # rare: cheaper to look here, in the face lines alone, than in the whole file
        raise _Untidy
    if text.translate(None, b"0123456789-/ \n"):  # numpy would read "3.5" as 3 and "1e3" as 1
        line, token = _first_bad_token(text, f_lines, _corner_index)
        raise VoxliftError(f"{name}: line {line}: {token[:40]!r} is not a vertex index")
    corners = _uniform_corners(text, buf, counts, total)
    if corners is None:
        corners = _fromstring(_strip_slashes(buf), np.int64)
    if len(corners) != total:
        line, token = _first_bad_token(text, f_lines, _corner_index)
        raise VoxliftError(f"{name}: line {line}: {token[:40]!r} is not a vertex index")
    return corners, counts


def _corner_index(token: bytes) -> int:
    if not token.replace(b"/", b"").lstrip(b"-").isdigit():
        raise ValueError(token)
    return int(token.split(b"/")[0])


def _uniform_corners(text: bytes, buf: np.ndarray, counts: np.ndarray, total: int) -> np.ndarray | None:
    """Fast path for files whose corners are all `v`, all `v/vt/vn`, all `v//vn` or all `v/vt`: read every
    number and keep the first of each corner. None when the corners are mixed (or malformed)."""
    slashes = text.count(b"/")
    if slashes == 0:
        return _fromstring(text, np.int64)
    doubles = text.count(b"//")
    if slashes == 2 * total and doubles in (0, total):
        fields = 3 - (doubles > 0)
    elif slashes == total and doubles == 0:
        fields = 2
    else:
        return None
    # Every line must have the slashes of its own corners (the totals alone could hide a mix).
    slash_pos = np.flatnonzero(buf == _SLASH)
    line_starts = np.zeros(len(counts) + 1, dtype=np.int64)
    line_starts[1:-1] = np.flatnonzero(buf == _NEWLINE) + 1
    line_starts[-1] = len(buf) + 1
    if not (np.diff(np.searchsorted(slash_pos, line_starts)) == counts * (slashes // total)).all():
        return None
    values = _fromstring(text.replace(b"/", b" "), np.int64)
    if len(values) != fields * total:
        return None
    return values[::fields]


def _strip_slashes(buf: np.ndarray) -> bytes:
    """Blank "/vt/vn" from each token's first slash to its end, leaving only the vertex index."""
    buf = buf.copy()
    slash = np.flatnonzero(buf == _SLASH)
    sep_pos = np.flatnonzero((buf == _SPACE) | (buf == _NEWLINE))
    token_of_slash = np.searchsorted(sep_pos, slash)
    first = np.ones(len(slash), dtype=bool)
    first[1:] = token_of_slash[1:] != token_of_slash[:-1]
    begin = slash[first]
    end = np.append(sep_pos, len(buf))[token_of_slash[first]]
    edge = np.zeros(len(buf) + 1, dtype=np.int8)
    edge[begin] = 1
    edge[end] -= 1
    buf[np.cumsum(edge[:-1], dtype=np.int8) > 0] = _SPACE
    return buf.tobytes()


def _fan_triangulate(idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Polygon (c0, c1, ..., cn-1) -> triangles (c0, ci, ci+1): exact for the convex polygons OBJ holds."""
    if (counts == 3).all():
        return idx.reshape(-1, 3)
    if (counts == 4).all():
        q = idx.reshape(-1, 4)
        return np.stack([q[:, [0, 1, 2]], q[:, [0, 2, 3]]], axis=1).reshape(-1, 3)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_tri = counts - 2
    face = np.repeat(np.arange(len(counts)), n_tri)
    local = np.arange(int(n_tri.sum())) - np.repeat(np.cumsum(n_tri) - n_tri, n_tri) + 1
    first = start[face]
    return np.stack([idx[first], idx[first + local], idx[first + local + 1]], axis=1)


# ---------------------------------------------------------------------------------------------- materials
# A function that returns the bytes of a file named relative to the OBJ file (an MTL or a texture), or None
# when it is missing or unreadable.
FileReader = Callable[[str], bytes | None]
# map_Kd options and how many values follow each (the file name comes after them).
_MAP_OPTIONS = {
    b"-blendu": 1,
    b"-blendv": 1,
    b"-bm": 1,
    b"-boost": 1,
    b"-cc": 1,
    b"-clamp": 1,
    b"-imfchan": 1,
    b"-mm": 2,
    b"-o": 3,
    b"-s": 3,
    b"-t": 3,
    b"-texres": 1,
}
_USEMTL = re.compile(rb"(?m)^usemtl(?: (.*))?$")
_MTLLIB = re.compile(rb"(?m)^mtllib (.+)$")


def parse_obj_materials(data: bytes, name: str, read_file: FileReader) -> MeshMaterials:
    """Each triangle's material (the triangles of parse_obj(data), in its order), the materials of the MTL
    files `mtllib` names, their textures, and the triangles' texture coordinates where every corner has one.

    Bad material data never fails: a missing MTL or texture, an unknown material, broken UVs leave faces
    without material (-1), materials without texture, or uv None."""
    text = _tidy_spaces(_normalise_text(bytes(data), name))
    lines = text.split(b"\n")
    starts = np.zeros(len(lines), dtype=np.int64)
    if len(lines) > 1:
        starts[1:] = np.flatnonzero(np.frombuffer(text, np.uint8) == _NEWLINE) + 1
    buf = np.frombuffer(text + b"\n\n\n", np.uint8)
    first, second, third = buf[starts], buf[starts + 1], buf[starts + 2]
    is_f = (first == ord("f")) & (second == _SPACE)
    is_vt = (first == ord("v")) & (second == ord("t")) & (third == _SPACE)
    f_lines = np.flatnonzero(is_f)
    f_text = _body(lines, is_f)
    counts = _token_counts(np.frombuffer(f_text, np.uint8), len(f_lines))
    n_tri = np.maximum(counts - 2, 0)

    materials, by_name = _read_libraries(text, read_file)
    uses = [(m.start(), (m.group(1) or b"").strip()) for m in _USEMTL.finditer(text)]
    use_pos = np.array([p for p, _ in uses], dtype=np.int64)
    use_index = np.array([by_name.get(n, -1) for _, n in uses] + [-1], dtype=np.int32)
    # The material of a face line: that of the last usemtl before it (none before: -1, the sentinel).
    last_use = np.searchsorted(use_pos, starts[f_lines]) - 1
    face_material = np.repeat(use_index[last_use], n_tri)
    vt_text = b"\n".join(itertools.compress(lines, is_vt.tolist()))[3:].replace(b"\nvt ", b"\n")
    uv = _triangle_uvs(vt_text, f_text, counts, np.cumsum(is_vt)[f_lines])
    textures = {}
    for m in materials:
        if m.texture is not None:
            image = read_file(m.texture)
            if image:
                textures[m.texture] = image
            else:
                m.texture = None
    return MeshMaterials(face_material, materials, uv, textures)


def parse_mtl(data: bytes) -> list[tuple[bytes, Material]]:
    """The materials of an MTL file: (name as written, Material), in file order. Unknown lines are ignored,
    a malformed value keeps the default."""
    out: list[tuple[bytes, Material]] = []
    text = _tidy_spaces(_normalise_text(bytes(data), "mtl") if data.strip() else b"")
    for line in text.split(b"\n"):
        key, _, rest = line.partition(b" ")
        if key == b"newmtl":
            out.append((rest.strip(), Material(_text(rest.strip()))))
        elif not out:
            continue
        elif key == b"Kd":
            color = _floats(rest, 3)
            if color is not None:
                out[-1][1].color = tuple(float(np.clip(c, 0.0, 1.0)) for c in color)
        elif key in (b"d", b"Tr"):
            value = _floats(rest, 1)
            if value is not None:
                d = float(np.clip(value[0], 0.0, 1.0))
                out[-1][1].opacity = d if key == b"d" else 1.0 - d
        elif key == b"map_Kd":
            path = _map_file(rest)
            out[-1][1].texture = _text(path) if path else None
    return out


def _read_libraries(text: bytes, read_file: FileReader) -> tuple[list[Material], dict[bytes, int]]:
    """Every material of the mtllib files (a later definition of a name wins, as in Blender)."""
    materials: list[Material] = []
    by_name: dict[bytes, int] = {}
    for m in _MTLLIB.finditer(text):
        names = m.group(1).strip()
        data = read_file(_text(names))
        chunks = [data] if data is not None else [read_file(_text(n)) for n in names.split()]
        for chunk in chunks:
            for key, material in parse_mtl(chunk or b""):
                by_name[key] = len(materials)
                materials.append(material)
    return materials, by_name


def _text(name: bytes) -> str:
    """A name from an OBJ or MTL file: UTF-8, else Latin-1 (older exporters write their 8-bit code page)."""
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        return name.decode("latin-1")


def _floats(rest: bytes, n: int) -> list[float] | None:
    try:
        values = [float(w) for w in rest.split()[:n]]
    except ValueError:
        return None
    return values if len(values) == n and all(np.isfinite(values)) else None


def _map_file(rest: bytes) -> bytes | None:
    """The file name of a map_Kd line, after its options."""
    words = rest.split(b" ")
    i = 0
    while i < len(words) and words[i] in _MAP_OPTIONS:
        i += 1 + _MAP_OPTIONS[words[i]]
    name = b" ".join(words[i:]).strip()
    return name or None


def _triangle_uvs(
    vt_text: bytes, f_text: bytes, counts: np.ndarray, vt_before: np.ndarray
) -> np.ndarray | None:
    """float32 [F, 3, 2] texture coordinates of the triangles (0 at corners without one, `v` or `v//vn`), or
    None when the file has none or they do not hold together (an index out of range, a bad number)."""
    n_vt = vt_text.count(b"\n") + 1 if vt_text else 0
    total = int(counts.sum())
    if n_vt == 0 or total == 0 or b"/" not in f_text:
        return None
    vt_counts = _token_counts(np.frombuffer(vt_text, np.uint8), n_vt)
    coords = _fromstring(vt_text, np.float64)
    if len(coords) != vt_counts.sum() or vt_counts.min() < 2 or not (np.abs(coords) < MAX_UV).all():
        return None
    vt = coords[np.concatenate([[0], np.cumsum(vt_counts)[:-1]])[:, None] + np.arange(2)]
    raw = _corner_vt(f_text, total)
    if raw is None:
        return None
    face_of_corner = np.repeat(np.arange(len(counts)), counts)
    idx = np.where(raw > 0, raw - 1, raw + vt_before[face_of_corner])
    has = raw != 0
    if ((idx < 0) | (idx >= len(vt)))[has].any():
        return None
    uv = np.where(has[:, None], vt[np.where(has, idx, 0)], 0.0)
    corners = np.arange(total)
    return uv[_fan_triangulate(corners, counts)].astype(np.float32)


def _corner_vt(f_text: bytes, total: int) -> np.ndarray | None:
    """The vt index of every corner as written (0 where it has none), or None on a malformed corner."""
    text = f_text.replace(b"//", b"/0/")  # v//vn: no texture coordinate
    buf = np.frombuffer(text, np.uint8)
    separators = np.flatnonzero((buf == _SPACE) | (buf == _NEWLINE))
    slashes = np.bincount(np.searchsorted(separators, np.flatnonzero(buf == _SLASH)), minlength=total)
    values = _fromstring(text.replace(b"/", b" "), np.int64)
    if len(slashes) != total or slashes.max() > 2 or len(values) != total + slashes.sum():
        return None
    first = np.concatenate([[0], np.cumsum(slashes + 1)[:-1]])
    return np.where(slashes > 0, values[np.minimum(first + 1, len(values) - 1)], 0)


def _read_obj_materials(path: Path) -> MeshMaterials | None:
    """Materials of an OBJ file on disk: its MTL files and textures are looked up beside it."""
    try:
        data = path.read_bytes()
    except OSError:
        return None

    def read_file(rel: str) -> bytes | None:
        target = path.parent / rel.replace("\\", "/")
        try:
            if not target.is_file() or target.stat().st_size > MAX_MATERIAL_FILE_BYTES:
                return None
            return target.read_bytes()
        except OSError:
            return None

    return materials_or_none(data, str(path), read_file)


def materials_or_none(data: bytes, name: str, read_file: FileReader) -> MeshMaterials | None:
    """parse_obj_materials, None when the file holds no usable material data (materials are optional)."""
    try:
        found = parse_obj_materials(data, name, read_file)
    except (VoxliftError, ValueError):
        return None
    return found if found.materials else None


def zip_file_reader(read_entry: Callable[[str], bytes], folder: str) -> FileReader:
    """A FileReader for an OBJ inside an archive: names relative to `folder`, read with `read_entry`."""

    def read_file(rel: str) -> bytes | None:
        full = posixpath.normpath(posixpath.join(folder, rel.replace("\\", "/")))
        if full.startswith(("../", "/")) or full == "..":
            return None
        try:
            return read_entry(full)
        except VoxliftError:
            return None

    return read_file
