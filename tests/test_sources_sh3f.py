"""Sweet Home 3D libraries: .properties parsing, hostile or oversized zips, modelRotation and sizes,
category mapping, and the real libraries."""

import numpy as np
import pytest
from _sources_util import box, canonical_chair, make_sh3f, obj_text

from voxlift.dataset_tools import sh3f
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.sh3f import parse_properties, taxonomy_category
from voxlift.dataset_tools.sources import iter_models


def test_properties_syntax():
    text = "\n".join(
        [
            "# a comment",
            "   ! another comment",
            "plain=value",
            "colon:value2",
            "space value3",
            "  spaced   =   trimmed  ",
            r"key\ with\ spaces=x",
            r"escaped\=key=y",
            r"unicode=caf\u00e9 \u2013 ok",
            r"tabs=a\tb\nc",
            "continued=first, \\",
            "     second, \\",
            "  third",
            "even=ends with backslash\\\\",
            "next=not swallowed",
            "empty=",
            "plain=override",
        ]
    )
    p = parse_properties(text)
    assert p["plain"] == "override"
    assert p["colon"] == "value2" and p["space"] == "value3"
    assert p["spaced"] == "trimmed  "  # Java keeps trailing whitespace of values
    assert p["key with spaces"] == "x" and p["escaped=key"] == "y"
    assert p["unicode"] == "café – ok"
    assert p["tabs"] == "a\tb\nc"
    assert p["continued"] == "first, second, third"
    assert p["even"] == "ends with backslash\\" and p["next"] == "not swallowed"
    assert p["empty"] == ""
    with pytest.raises(VoxliftError, match="uXXXX"):
        parse_properties(r"bad=\u12G4", "x.properties")


def chair_obj_facing_plus_x() -> bytes:
    """The test chair in Sweet Home 3D's Y-up frame but turned so that its front faces +X (not +Z):
    the catalog's modelRotation must turn it back."""
    v, f = canonical_chair()  # x right, y back, z up
    # SH3D frame, front +Z: (x, y, z)_canon -> (x, z, -y); then turn front +Z -> +X: (x, y, z) -> (z, y, -x)
    sh = np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)
    turned = np.stack([sh[:, 2], sh[:, 1], -sh[:, 0]], axis=1)
    return obj_text(turned * 40, f).encode()


CATALOG = """# test library
id=test
id#1=Test#chair
name#1=Caf\\u00e9 chair
category#1=Living room
model#1=/models/chair.obj
width#1=50
depth#1=50
height#1=100
modelRotation#1=0 0 -1 0 1 0 1 0 0
id#2=Test#box
name#2=Low table
category#2=Living room
model#2=models/box.obj
width#2=200
depth#2=50
height#2=100
id#3=Test#missing
name#3=Chair
category#3=Office
model#3=/models/nope.obj
width#3=1
depth#3=1
height#3=1
id#4=Test#badsize
name#4=Stool
category#4=Kitchen
model#4=/models/box.obj
width#4=-3
depth#4=1
height#4=1
"""


def test_catalog_rotation_sizes_and_failures(tmp_path):
    bv, bf = box([0, 0, 0], [1, 1, 1])
    path = make_sh3f(
        tmp_path / "Test.sh3f",
        CATALOG,
        {"models/chair.obj": chair_obj_facing_plus_x(), "models/box.obj": obj_text(bv, bf).encode()},
    )
    records = list(iter_models(str(path)))
    assert [(r.id, r.category, r.name) for r in records] == [
        ("sh3f:Test/chair", "chair", "Café chair"),
        ("sh3f:Test/box", "table", "Low table"),
        ("sh3f:Test/missing", "chair", "Chair"),
        ("sh3f:Test/badsize", "chair", "Stool"),
    ]
    chair = records[0].load().vertices
    top = chair[:, 2] > chair[:, 2].max() - 0.05
    assert chair[top, 1].mean() > 0.15  # modelRotation honoured: the backrest is at the back again
    # width x depth x height = 200 x 50 x 100 -> canonical x : y : z = 1 : 0.25 : 0.5
    np.testing.assert_allclose(np.ptp(records[1].load().vertices, axis=0), [1, 0.25, 0.5])
    with pytest.raises(VoxliftError, match="sh3f:Test/missing.*nope.obj"):
        records[2].load()
    with pytest.raises(VoxliftError, match="width#4"):
        records[3].load()
    assert next(iter(iter_models(str(path), ["table"]))).id == "sh3f:Test/box"


@pytest.mark.parametrize("name", ["../evil.obj", "/etc/passwd", "models/../../x", "C:/windows/x", "..\\x"])
def test_hostile_entry_names_refuse_the_archive(tmp_path, name):
    path = make_sh3f(tmp_path / "Evil.sh3f", CATALOG, {}, extra_names=[name])
    with pytest.raises(VoxliftError, match="refused") as exc:
        list(iter_models(str(path)))
    assert str(path) in str(exc.value)


def test_entry_count_and_size_caps(tmp_path, monkeypatch):
    bv, bf = box([0, 0, 0], [1, 1, 1])
    path = make_sh3f(tmp_path / "Big.sh3f", CATALOG, {"models/box.obj": obj_text(bv, bf).encode() * 50})
    monkeypatch.setattr(sh3f, "MAX_ENTRIES", 1)
    with pytest.raises(VoxliftError, match="entries"):
        list(iter_models(str(path)))
    monkeypatch.setattr(sh3f, "MAX_ENTRIES", 100)
    monkeypatch.setattr(sh3f, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(VoxliftError, match="uncompressed"):
        list(iter_models(str(path)))


def test_not_a_zip_and_no_catalog(tmp_path):
    bad = tmp_path / "bad.sh3f"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(VoxliftError, match="bad.sh3f"):
        list(iter_models(str(bad)))
    import zipfile

    empty = tmp_path / "empty.sh3f"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(VoxliftError, match="PluginFurnitureCatalog.properties"):
        list(iter_models(str(empty)))


@pytest.mark.parametrize(
    "name,category,want",
    [
        ("Armchair", "Living room", "chair"),
        ("Bar stool", "Living room", "chair"),
        ("Deck chair", "Exterior", "chair"),
        ("Desk", "Office", "table"),
        ("Coffee table", "Living room", "table"),
        ("Table fan", "Miscellaneous", "other"),
        ("Table lamp", "Lights", "lamp"),
        ("Football table", "Misc", "other"),
        ("Piano bench", "Living room", "bench"),
        ("Corner sofa", "Living room", "sofa"),
        ("Female", "Characters", "other"),
        ("Television cabinet", "Living room", "cabinet"),
        ("Rocking horse", "Bedroom", "other"),
    ],
)
def test_taxonomy_mapping(name, category, want):
    assert taxonomy_category(name, category) == want


def test_real_libraries_list_and_load(sh3f_libraries):
    """Every chair and table of the three usable libraries loads into the canonical frame."""
    counts = {}
    for lib in sh3f_libraries:
        records = list(iter_models(str(lib)))
        assert len({r.id for r in records}) == len(records)  # unique ids
        furniture = [r for r in records if r.category in ("chair", "table")]
        for r in furniture:
            v = r.load().vertices
            assert np.isclose(np.ptp(v, axis=0).max(), 1.0), r.id
        counts[lib.stem] = len(furniture)
    assert counts["KatorLegaz"] >= 10 and counts["Scopia"] >= 45 and counts["BlendSwap-CC-0"] >= 25, counts


def test_folder_of_libraries_leaves_out_the_held_out_set(sh3f_libraries):
    folder = sh3f_libraries[0].parent
    libraries = {r.id.split("/")[0] for r in iter_models(str(folder), ["table"])}
    assert libraries == {"sh3f:KatorLegaz", "sh3f:Scopia", "sh3f:BlendSwap-CC-0"}  # Reallusion has no tables
    assert not any(r.id.startswith("sh3f:BlendSwap-CC-BY/") for r in iter_models(str(folder)))


def test_materials_come_from_the_zip_on_demand(tmp_path):
    """The entry's MTL (beside its OBJ in the zip) gives each face its colour and texture, read when asked;
    a texture named outside the archive is not read."""
    bv, bf = box([0, 0, 0], [1, 1, 1])
    obj = "mtllib box.mtl\n" + obj_text(bv, bf[:6]) + "usemtl top\n" + obj_text([], bf[6:])
    mtl = "newmtl top\nKd 0.1 0.2 0.3\nmap_Kd wood.jpg\nnewmtl side\nKd 1 1 1\nmap_Kd ../../escape.jpg\n"
    path = make_sh3f(
        tmp_path / "Test.sh3f",
        CATALOG,
        {
            "models/box.obj": obj.encode(),
            "models/box.mtl": mtl.encode(),
            "models/wood.jpg": b"jpeg bytes",
            "escape.jpg": b"outside",
        },
    )
    record = next(r for r in iter_models(str(path)) if r.id == "sh3f:Test/box")
    mesh = record.load()
    found = mesh.load_materials()
    assert len(found.face_material) == len(mesh.faces) == 12
    assert found.face_material.tolist() == [-1] * 6 + [0] * 6
    assert [m.color for m in found.materials] == [(0.1, 0.2, 0.3), (1.0, 1.0, 1.0)]
    assert found.textures == {"wood.jpg": b"jpeg bytes"} and found.materials[1].texture is None
    # An OBJ without mtllib has no materials (a random-appearance render gives it random colours).
    path = make_sh3f(tmp_path / "Plain.sh3f", CATALOG, {"models/box.obj": obj_text(bv, bf).encode()})
    record = next(r for r in iter_models(str(path)) if r.id == "sh3f:Plain/box")
    assert record.load().load_materials() is None
