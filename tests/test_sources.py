"""iter_models over every kind of source, and the canonical frame proven on each: a chair from ShapeNet v1,
ShapeNet v2, an OBJ folder, a Sweet Home 3D library (real ones) and the generator all face the same way."""

import numpy as np
import pytest
from _sources_util import assert_chair_canonical, canonical_chair, write_obj

from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.sources import iter_models, iter_sources

CHAIR = "03001627"


def chair_in_frame(up, front, scale=0.7, offset=(0.1, -0.2, 0.05)):
    """The test chair written in a source frame described only by its up and front axes (as the sources'
    READMEs state them): canonical right/back/up axes -> (back x up, -front, up)."""
    up, front = np.asarray(up, float), np.asarray(front, float)
    back = -front
    right = np.cross(back, up)
    v, f = canonical_chair()
    basis = np.stack([right, back, up])  # rows: where canonical x, y, z go
    return v @ basis * scale + offset, f


def make_shapenet(root):
    # ShapeNetCore v1 README: up +Y, front +X.  v2 README: up +Y, front -Z.
    write_obj(root / CHAIR / "aaa1" / "model.obj", *chair_in_frame([0, 1, 0], [1, 0, 0]))
    write_obj(
        root / CHAIR / "bbb2" / "models" / "model_normalized.obj", *chair_in_frame([0, 1, 0], [0, 0, -1])
    )
    write_obj(root / "04379243" / "ccc3" / "model.obj", *chair_in_frame([0, 1, 0], [1, 0, 0]))
    (root / CHAIR / "not-a-model").mkdir()
    return root


def test_every_source_faces_the_same_way(tmp_path, sh3f_libraries):
    root = make_shapenet(tmp_path / "ShapeNetCore")
    records = list(iter_models(str(root), ["chair"]))
    assert [(r.id, r.source, r.category) for r in records] == [
        (f"{CHAIR}/aaa1", "shapenet-v1", "chair"),
        (f"{CHAIR}/bbb2", "shapenet-v2", "chair"),
    ]
    for r in records:
        assert_chair_canonical(r.load().vertices, r.id)
    # OBJ folders are read as Y up, front +Z (Sweet Home 3D's and most exporters' convention)
    write_obj(tmp_path / "objs" / "chair" / "mine.obj", *chair_in_frame([0, 1, 0], [0, 0, 1]))
    (r,) = iter_models(str(tmp_path / "objs"))
    assert (r.id, r.category, r.source) == ("obj:objs/chair/mine", "chair", "obj")
    assert_chair_canonical(r.load().vertices, r.id)
    # real Sweet Home 3D chairs, two of them with a modelRotation in the catalog
    wanted = {
        "sh3f:KatorLegaz/dining-chair",
        "sh3f:Scopia/ext_chair",
        "sh3f:Scopia/silla_teca",
        "sh3f:Scopia/chair4",
        "sh3f:BlendSwap-CC-0/chair2",
    }
    seen = set()
    for lib in sh3f_libraries:
        for r in iter_models(str(lib), ["chair"]):
            if r.id in wanted:
                v = r.load().vertices
                top = v[:, 2] > v[:, 2].max() - 0.05
                assert v[top, 1].mean() > 0.15, f"{r.id}: backrest not on +Y"
                assert np.allclose((v.min(0) + v.max(0)) / 2, 0) and np.isclose(np.ptp(v, 0).max(), 1)
                seen.add(r.id)
    assert seen == wanted
    # the generator
    tall_chairs = {"chair", "armchair", "high-back chair", "dining chair", "sled chair", "office chair"}
    checked = 0
    for r in iter_models("synthetic:60:2", ["chair"]):
        if r.name in tall_chairs:
            assert_chair_canonical(r.load().vertices, r.id)
            checked += 1
    assert checked > 5


def test_shapenet_synset_folder_limit_and_categories(tmp_path):
    root = make_shapenet(tmp_path / "sn")
    ids = [r.id for r in iter_models(str(root / CHAIR))]
    assert ids == [f"{CHAIR}/aaa1", f"{CHAIR}/bbb2"]
    assert [r.id for r in iter_models(str(root), limit=1)] == [f"{CHAIR}/aaa1"]
    assert [r.category for r in iter_models(str(root), ["04379243"])] == ["table"]
    assert [r.id for r in iter_models(str(root))] == [r.id for r in iter_models(str(root))]  # stable
    assert [r.id for r in iter_sources([str(root), "synthetic:5"], limit=4)] == [
        f"{CHAIR}/aaa1",
        f"{CHAIR}/bbb2",
        "04379243/ccc3",
        "synthetic:0/0",
    ]


def test_a_broken_model_fails_alone_with_its_name(tmp_path):
    root = make_shapenet(tmp_path / "sn")
    (root / CHAIR / "aaa1" / "model.obj").write_text("v 0 0 0\nf 1 2 3\n")
    records = list(iter_models(str(root)))
    with pytest.raises(VoxliftError, match=f"{CHAIR}/aaa1"):
        records[0].load()
    assert records[1].load().faces.size  # the next one still loads


def test_synthetic_ids_are_stable_and_unique():
    a = [r.id for r in iter_models("synthetic:20:5")]
    assert a == [f"synthetic:5/{k}" for k in range(20)]
    assert [r.id for r in iter_models("synthetic:8:5")] == a[:8]
    assert len({r.id for r in iter_models("synthetic:20")}) == 20
    tables = list(iter_models("synthetic:40:1", ["table"]))
    assert tables and all(r.category == "table" for r in tables)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("/no/such/place", "no such file"),
        ("synthetic:x", "synthetic:N"),
        ("synthetic:3:-1", "synthetic:N"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(VoxliftError, match=message):
        list(iter_models(spec))


def test_bad_specs_on_disk(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VoxliftError, match="no .sh3f"):
        list(iter_models(str(tmp_path / "empty")))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(VoxliftError, match="not a mesh source"):
        list(iter_models(str(tmp_path / "notes.txt")))
    with pytest.raises(VoxliftError, match="unknown category 'chiar'"):
        list(iter_models("synthetic:3", ["chiar"]))
