"""OBJ reading and writing: the syntax variants real files use, a per-line reference parser on random
files, a real Sweet Home 3D model against trimesh, and every kind of bad file."""

import zipfile

import numpy as np
import pytest

from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.mesh import Mesh
from voxlift.dataset_tools.obj import parse_obj, read_obj, write_obj

SQUARE = b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"


def tris(mesh):
    """Triangles as sorted tuples of vertex positions: independent of vertex numbering."""
    return sorted(tuple(map(tuple, mesh.vertices[f].round(9).tolist())) for f in mesh.faces)


def reference_parse(text):
    """The obvious per-line parser, to check the vectorised one against."""
    verts, faces = [], []
    for line in text.replace("\\\n", " ").splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "v":
            verts.append([float(w) for w in words[1:4]])
        elif words[0] == "f":
            idx = [int(w.split("/")[0]) for w in words[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
            faces += [(idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1)]
    return np.array(verts), np.array(faces)


def test_triangle_quad_and_ngon_fan():
    m = parse_obj(SQUARE + b"v 0.5 1.5 0\nf 1 2 3 4\nf 4 3 5\nf 1 2 3 5 4\n", "t.obj")
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [3, 2, 4], [0, 1, 2], [0, 2, 4], [0, 4, 3]]
    assert m.vertices.shape == (5, 3) and m.vertices.dtype == np.float64


@pytest.mark.parametrize(
    "face",
    [
        b"f 1/1/1 2/2/2 3/3/3 4/4/4",
        b"f 1//7 2//7 3//7 4//7",
        b"f 1/5 2/6 3/7 4/8",
        b"f -4/1/1 -3/2/2 -2/3/3 -1/4/4",
        b"f -4 -3 -2 -1",
        b"f 1/1/1 2//2 3/3 -1",
    ],
)
def test_corner_syntaxes(face):
    m = parse_obj(SQUARE + b"vt 0 0\nvn 0 0 1\n" + face + b"\n", "t.obj")
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_relative_indices_refer_to_vertices_before_the_line():
    data = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\nv 5 5 5\nv 6 5 5\nv 5 6 5\nf -3 -2 -1\nf 1 2 -1\n"
    assert parse_obj(data, "t.obj").faces.tolist() == [[0, 1, 2], [3, 4, 5], [0, 1, 5]]


def test_groups_objects_materials_and_noise_keep_every_part():
    data = (
        b"# a comment\r\nmtllib x.mtl\r\no first\r\ng seat\r\nusemtl wood\r\n"
        + SQUARE.replace(b"\n", b"\r\n")
        + b"s 1\r\nf 1 2 3\r\n\r\no second\r\n  g   leg  \r\nusemtl metal\r\nv\t2 2\t2\r\nv 3 2 2 \r\n"
        b"v 2 3 2 0.5 0.5 0.5\r\n   f  5  6 \\\r\n 7\r\nl 1 2\r\nvp 0.1\r\ncstype bezier\r\nf 1 3 4"
    )
    m = parse_obj(data, "t.obj")
    assert m.faces.tolist() == [[0, 1, 2], [4, 5, 6], [0, 2, 3]]
    assert m.vertices[4:].tolist() == [[2, 2, 2], [3, 2, 2], [2, 3, 2]]  # colours dropped


def test_old_mac_line_ends():
    m = parse_obj(SQUARE.replace(b"\n", b"\r") + b"f 1 2 3\r", "t.obj")
    assert m.faces.tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("seed", range(4))
def test_random_files_match_the_per_line_reference(seed):
    rng = np.random.default_rng(seed)
    lines, nv = [], 0
    for _ in range(3000):
        if nv < 8 or rng.random() < 0.4:
            x = rng.normal(size=3)
            lines.append(
                "v "
                + " ".join(f"{c:.{rng.integers(1, 12)}g}" for c in x)
                + (" 1 0.5 0.25" if rng.random() < 0.1 else "")
            )
            nv += 1
            continue
        n = int(rng.choice([3, 3, 3, 4, 4, 5, 8]))
        idx = rng.integers(1, nv + 1, n)
        style = rng.integers(0, 4)
        parts = []
        for i in idx:
            i = int(i) - nv - 1 if rng.random() < 0.3 else int(i)
            parts.append([f"{i}", f"{i}/{i}", f"{i}//{i}", f"{i}/{i}/{i}"][style])
        lines.append("f " + " ".join(parts))
        if rng.random() < 0.05:
            lines.append(
                rng.choice(["# comment", "g part", "usemtl m", "vn 0 0 1", "vt 0.5 0.5", "", "s off"])
            )
    lines.append("f 1 2 3")
    text = "\n".join(lines) + "\n"
    m = parse_obj(text.encode(), "r.obj")
    v, f = reference_parse(text)
    assert np.array_equal(m.vertices, v)
    assert np.array_equal(m.faces, f)


def test_uniform_fast_path_matches_mixed_path():
    # All v/vt/vn (fast path) and the same file with one corner written v//vn (general path).
    rng = np.random.default_rng(7)
    v = "".join(f"v {a} {b} {c}\n" for a, b, c in rng.random((50, 3)))
    f = rng.integers(1, 51, (400, 3))
    uniform = v + "".join(f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}\n" for a, b, c in f)
    mixed = uniform.replace(f"f {f[5][0]}/{f[5][0]}/{f[5][0]} ", f"f {f[5][0]}//{f[5][0]} ", 1)
    a, b = parse_obj(uniform.encode(), "u.obj"), parse_obj(mixed.encode(), "m.obj")
    assert np.array_equal(a.faces, f - 1) and np.array_equal(b.faces, f - 1)


def test_sweet_home_3d_chair_matches_trimesh(sh3f_libraries):
    trimesh = pytest.importorskip("trimesh")
    with zipfile.ZipFile(sh3f_libraries[0]) as z:  # KatorLegaz
        data = z.read("katorlegaz/mid-century-chair/mid-century-chair.obj")
    m = parse_obj(data, "chair.obj")
    tm = trimesh.load(trimesh.util.wrap_as_stream(data), file_type="obj", process=False, force="mesh")
    assert len(m.faces) == len(tm.faces) > 1000
    assert np.array_equal(np.unique(m.vertices, axis=0), np.unique(tm.vertices, axis=0))  # trimesh reorders
    area = (
        0.5
        * np.linalg.norm(
            np.cross(*(m.vertices[m.faces[:, 1:]] - m.vertices[m.faces[:, :1]]).transpose(1, 0, 2)), axis=1
        ).sum()
    )
    assert area == pytest.approx(tm.area, rel=1e-9)


def test_write_read_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(3)
    mesh = Mesh(rng.normal(size=(100, 3)) * 1e3, rng.integers(0, 100, (300, 3)))
    path = tmp_path / "m.obj"
    write_obj(path, mesh, comment="made by voxlift\ntwo lines")
    write_obj(path, mesh)  # overwriting goes through a temp file too
    back = read_obj(path)
    assert np.array_equal(back.vertices, mesh.vertices) and np.array_equal(back.faces, mesh.faces)
    assert [p.name for p in tmp_path.iterdir()] == ["m.obj"]


def test_write_to_missing_folder_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        write_obj(tmp_path / "no" / "m.obj", Mesh(np.zeros((3, 3)), [[0, 1, 2]]))
    assert list(tmp_path.iterdir()) == []


BAD = [
    (b"", "empty"),
    (b"  \n\n\t\n", "empty"),
    (b"# only a comment\nv 0 0 0\nv 1 0 0\n", "no faces"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"v 0 0 0\nv 1 0 \xff\xfe 0\nf 1 2 1\n", "UTF-8"),
    (SQUARE + b"f 1 2 3\nv 0.5 0.", "3 coordinates"),
    (SQUARE + b"f 1 2 3\nf 1 2", "at least 3"),
    (SQUARE + b"f 1 2 3\nf 2 3 9", "vertex 9"),
    (SQUARE + b"f 0 1 2\n", "index 0"),
    (SQUARE + b"f -1 -2 -5\n", "vertex -5"),
    (SQUARE + b"v nan 0 0\nf 1 2 5\n", "NaN"),
    (SQUARE + b"v 1e999 0 0\nf 1 2 5\n", "NaN or infinite"),
    (SQUARE + b"v 1 zero 0\nf 1 2 5\n", "'zero' is not a number"),
    (SQUARE + b"f 1 2 x\n", "not a vertex index"),
    (SQUARE + b"f 1 2 3.5\n", "not a vertex index"),
    (SQUARE + b"f " + b" ".join([b"1", b"2", b"3"] * 2000) + b"\n", "refusing"),
]


@pytest.mark.parametrize("data, words", BAD)
def test_bad_files_raise_naming_the_file(tmp_path, data, words):
    path = tmp_path / "bad.obj"
    path.write_bytes(data)
    with pytest.raises(VoxliftError) as exc:
        read_obj(path)
    assert str(path) in str(exc.value) and words in str(exc.value), str(exc.value)


def test_error_names_the_line():
    with pytest.raises(VoxliftError, match=r"in\.obj: line 7: .*vertex 9"):
        parse_obj(SQUARE + b"# c\nf 1 2 3\nf 2 3 9\n", "in.obj")


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(VoxliftError, match="no such file"):
        read_obj(tmp_path / "nope.obj")
    with pytest.raises(VoxliftError, match="folder"):
        read_obj(tmp_path)
