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
    (b"v 0 0 0\nv 1 0 \xff\xfe 0\nf 1 2 1\n", "line 2: b'\\xff\\xfe' is not a number"),
    (b"\xff\xfev\x00 ", "invalid UTF-16"),  # a byte-order mark, then an odd number of bytes
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


# ---------------------------------------------------------------------------------------------- encodings
LATIN1_OBJ = SQUARE + b"mtllib m\xe6.mtl\ng Terr\xe6n\nusemtl Terraind\xe6k\nf 1 2 3 4\n"


def test_latin1_names_are_read_as_blender_reads_them(tmp_path):
    path = tmp_path / "latin1.obj"
    path.write_bytes(LATIN1_OBJ)
    assert read_obj(path).faces.tolist() == [[0, 1, 2], [0, 2, 3]]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_byte_order_marked_text_is_decoded(encoding):
    text = LATIN1_OBJ.decode("latin-1").replace("\n", "\r\n")
    data = text.encode(encoding)
    if encoding == "utf-16-le":
        data = b"\xff\xfe" + data
    elif encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    m = parse_obj(data, "bom.obj")
    assert (
        m.faces.tolist() == [[0, 1, 2], [0, 2, 3]]
        and m.vertices.tolist() == parse_obj(SQUARE + b"f 1 2 3\n", "s").vertices.tolist()
    )


# ---------------------------------------------------------------------------------------------- materials
MATERIALS_OBJ = (
    b"mtllib parts.mtl\n"
    + SQUARE
    + b"v 0 0 1\nv 1 0 1\nv 1 1 1\n"
    + b"vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1 0\n"
    + b"f 1 2 3\n"  # before any usemtl: no material, no texture coordinates
    + b"usemtl red\n"
    + b"f 1/1/1 2/2/1 3/3/1 4/4/1\n"  # a quad: two triangles
    + b"usemtl Terraind\xe6k\n"
    + b"f 5//1 6//1 7//1\n"
    + b"usemtl unknown\n"
    + b"f -3/-4 -2/-3 -1/-2\n"  # relative vt indices
)
MATERIALS_MTL = (
    b"# two materials\nnewmtl red\nKd 1 0 0\nmap_Kd -s 1 1 1 -bm 0.5 tex ture.png\n"
    b"newmtl Terraind\xe6k\r\nKd 0.2 0.4 0.6\r\nd 0.5\r\nmap_Kd gone.png\r\nnewmtl broken\nKd red\n"
)


def materials_folder(tmp_path):
    (tmp_path / "m.obj").write_bytes(MATERIALS_OBJ)
    (tmp_path / "parts.mtl").write_bytes(MATERIALS_MTL)
    (tmp_path / "tex ture.png").write_bytes(b"image bytes")
    return tmp_path / "m.obj"


def test_materials_face_by_face_with_colours_textures_and_uvs(tmp_path):
    from voxlift.dataset_tools.mesh import DEFAULT_DIFFUSE, to_canonical

    mesh = read_obj(materials_folder(tmp_path))
    assert mesh.faces.tolist() == parse_obj(MATERIALS_OBJ, "m.obj").faces.tolist()  # geometry as before
    found = to_canonical(mesh).load_materials()  # the loader survives the frame change
    assert found.face_material.tolist() == [-1, 0, 0, 1, -1]
    red, terra, broken = found.materials
    assert (red.name, red.color, red.opacity, red.texture) == ("red", (1.0, 0.0, 0.0), 1.0, "tex ture.png")
    assert terra.name == "Terraindæk" and terra.color == (0.2, 0.4, 0.6) and terra.opacity == 0.5
    assert terra.texture is None  # its file is missing
    assert broken.color == DEFAULT_DIFFUSE
    assert found.textures == {"tex ture.png": b"image bytes"}
    assert found.uv.shape == (5, 3, 2) and found.uv.dtype == np.float32
    assert found.uv[1].tolist() == [[0, 0], [1, 0], [1, 1]] and found.uv[2].tolist() == [
        [0, 0],
        [1, 1],
        [0, 1],
    ]
    assert not found.uv[0].any() and not found.uv[3].any()  # corners without vt
    assert found.uv[4].tolist() == [[0, 0], [1, 0], [1, 1]]


def test_materials_are_optional(tmp_path):
    from voxlift.dataset_tools.obj import parse_obj_materials

    path = materials_folder(tmp_path)
    (tmp_path / "parts.mtl").unlink()
    assert read_obj(path).load_materials() is None  # no MTL: no materials, the mesh still loads
    assert parse_obj(MATERIALS_OBJ, "m.obj").load_materials() is None  # bytes alone: nowhere to look
    # vt indices out of range leave the colours but drop the texture coordinates.
    bad_uv = parse_obj_materials(MATERIALS_OBJ.replace(b"4/4/1", b"4/9/1"), "m.obj", lambda n: MATERIALS_MTL)
    assert bad_uv.uv is None and bad_uv.face_material.tolist() == [-1, 0, 0, 1, -1]
    # A loader that disagrees with the geometry is not trusted.
    mesh = read_obj(materials_folder(tmp_path))
    mesh.faces = mesh.faces[:2]
    assert mesh.load_materials() is None


def test_real_library_materials(sh3f_libraries):
    from voxlift.dataset_tools.sources import iter_models

    found = [r.load().load_materials() for r in iter_models(str(sh3f_libraries[1]), ["chair"], limit=6)]
    assert all(f is not None for f in found)  # Scopia: every chair has an MTL
    assert all((f.face_material >= 0).mean() > 0.9 for f in found)
    assert any(f.uv is not None and f.textures for f in found)  # and some are textured
