"""Shape variants of real and procedural models (dataset_tools/augment.py and the `augment:K:SOURCE` spec):
each variant in its model's split, deterministic, in the canonical frame, legs and backs stretched where the
seat is, mirrored faces still outward, and real Sweet Home 3D chairs still facing -Y."""

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from _sources_util import assert_chair_canonical, box, canonical_chair

from voxlift.cli import main
from voxlift.dataset_tools.augment import (
    MAX_VARIANTS,
    ShapeAugmentation,
    _mirrored_materials,
    apply_augmentation,
    augment_mesh,
    augmentation_for,
    base_id,
    support_height,
    variant_ids,
)
from voxlift.dataset_tools.binvox import read_binvox
from voxlift.dataset_tools.dataset import DatasetWriter, open_dataset, split_of
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.mesh import Mesh, normalize_to_unit_cube
from voxlift.dataset_tools.sources import iter_models, iter_sources

SEAT_Z, CHAIR_TOP = 0.45, 0.95  # canonical_chair's seat top and backrest top (its feet at 0)
IDENTITY = ShapeAugmentation(1.0, 1.0, (1.0, 1.0, 1.0), False)


def chair_mesh(one_arm: bool = False) -> Mesh:
    v, f = canonical_chair()
    if one_arm:  # an armrest on +X only, to see the mirror
        av, af = box([0.18, -0.22, 0.6], [0.22, 0.22, 0.64])
        v, f = np.vstack([v, av]), np.vstack([f, af + len(v)])
    return normalize_to_unit_cube(Mesh(v, f))


def signed_volume(mesh: Mesh) -> float:
    a, b, c = (mesh.vertices[mesh.faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def seat_share(mesh: Mesh) -> float:
    """Where the seat is, as a share of the height from the floor."""
    z = mesh.vertices[:, 2]
    return (support_height(mesh) - z.min()) / np.ptp(z)


def test_every_variant_lands_in_its_models_split(tmp_path):
    ids = [f"sh3f:Lib/model{k}" for k in range(300)] + [f"synthetic:0/{k}" for k in range(100)]
    splits = Counter()
    for model_id in ids:
        variants = variant_ids(model_id, 4)
        assert len(set(variants)) == 4 and all(v.startswith(model_id + "#aug") for v in variants)
        assert {split_of(v) for v in variants} == {split_of(model_id)}, model_id
        assert [base_id(v) for v in variants] == [model_id] * 4
        assert variant_ids(model_id, 6)[:4] == variants  # asking for more keeps the first ones
        splits[split_of(model_id)] += 1
    assert splits["val"] > 10 and splits["test"] > 10  # the 10% splits were exercised too
    # a dataset records the split from the id: a variant's is its model's
    records = [r for r in iter_models("augment:3:synthetic:20") if split_of(base_id(r.id)) != "train"]
    assert records
    with DatasetWriter(tmp_path / "ds", image_size=2, views_per_model=1, resolution=2, views=None) as w:
        for r in records:
            blank = np.zeros((1, 2, 2), np.uint8)
            w.append(
                id=r.id,
                category=r.category,
                source=r.source,
                images=blank,
                alpha=blank,
                voxels=np.zeros((2, 2, 2), bool),
                cameras=np.zeros((1, 16)),
                durable=False,
            )
    for m in open_dataset(tmp_path / "ds").models:
        assert m.split == split_of(base_id(m.id)) != "train", m.id


def test_variant_ids_refuse_bad_counts_and_nesting():
    assert variant_ids("a/b", 0) == []
    with pytest.raises(VoxliftError, match="variants"):
        variant_ids("a/b", MAX_VARIANTS + 1)
    with pytest.raises(VoxliftError, match="nested"):
        variant_ids("a/b#aug3", 1)


def test_variants_are_deterministic_different_and_canonical():
    mesh = chair_mesh()
    variants = variant_ids("sh3f:Test/chair", 12)
    assert augmentation_for(variants[0]) == augmentation_for(variants[0])
    np.testing.assert_array_equal(
        augment_mesh(mesh, variants[0]).vertices, augment_mesh(mesh, variants[0]).vertices
    )
    shapes = set()
    for vid in variants:
        out = augment_mesh(mesh, vid)
        assert_chair_canonical(out.vertices, vid)  # centred, longest side 1, Z up, backrest still on +Y
        assert signed_volume(out) > 0, vid  # faces still outward (mirrored ones too)
        shapes.add(tuple(np.round(np.ptp(out.vertices, axis=0), 3)))
    assert len(shapes) == len(variants)
    params = [augmentation_for(v) for v in variant_ids("sh3f:Test/other", MAX_VARIANTS)]
    assert 0.25 < np.mean([p.mirror for p in params]) < 0.75
    assert any(p.below != 1.0 for p in params) and any(p.above != 1.0 for p in params)
    assert all(0.7 < s < 1.4 for p in params for s in (p.below, p.above, *p.scale))


def test_support_height_is_the_seat_or_the_top():
    assert np.isclose(seat_share(chair_mesh()), SEAT_Z / CHAIR_TOP, atol=0.03)
    top, (lv, lf) = box([-0.6, -0.4, 0.72], [0.6, 0.4, 0.75]), box([-0.55, -0.35, 0], [-0.5, -0.3, 0.72])
    table = Mesh(np.vstack([top[0], lv]), np.vstack([top[1], lf + 8]))
    assert np.isclose(support_height(table), 0.735, atol=0.02)


def test_legs_and_back_stretch_about_the_seat():
    mesh = chair_mesh()
    base = seat_share(mesh)
    longer_legs = apply_augmentation(mesh, ShapeAugmentation(1.3, 1.0, (1.0, 1.0, 1.0), False))
    legs, back = SEAT_Z * 1.3, CHAIR_TOP - SEAT_Z
    assert (
        np.isclose(seat_share(longer_legs), legs / (legs + back), atol=0.03)
        and seat_share(longer_legs) > base
    )
    taller_back = apply_augmentation(mesh, ShapeAugmentation(1.0, 1.3, (1.0, 1.0, 1.0), False))
    back = (CHAIR_TOP - SEAT_Z) * 1.3
    assert (
        np.isclose(seat_share(taller_back), SEAT_Z / (SEAT_Z + back), atol=0.03)
        and seat_share(taller_back) < base
    )
    # the seat board keeps its thickness when only the legs grow: nothing above the seat moves apart
    same = apply_augmentation(mesh, IDENTITY)
    np.testing.assert_allclose(same.vertices, mesh.vertices, atol=1e-12)
    wide = apply_augmentation(mesh, ShapeAugmentation(1.0, 1.0, (1.2, 1.0, 1.0), False))
    ratio = np.ptp(wide.vertices, 0) / np.ptp(mesh.vertices, 0)
    assert np.isclose(ratio[0] / ratio[1], 1.2)


def test_mirror_moves_an_armrest_to_the_other_side():
    mesh = chair_mesh(one_arm=True)
    arm = mesh.vertices[:, 2] > 0.12  # the armrest is the only part at that height besides the back
    assert mesh.vertices[arm & (mesh.vertices[:, 1] < 0.1), 0].mean() > 0.1
    out = apply_augmentation(mesh, ShapeAugmentation(1.0, 1.0, (1.0, 1.0, 1.0), True))
    assert out.vertices[arm & (out.vertices[:, 1] < 0.1), 0].mean() < -0.1
    assert signed_volume(out) > 0
    np.testing.assert_allclose(out.vertices[:, 1:], mesh.vertices[:, 1:], atol=1e-12)  # front still -Y


def test_mirrored_texture_coordinates_follow_the_faces():
    @dataclass
    class Materials:  # what a materials loader returns: per-corner uv of each face
        uv: np.ndarray

    uv = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    loader = _mirrored_materials(lambda: Materials(uv))
    np.testing.assert_array_equal(loader().uv, uv[:, [0, 2, 1]])


def test_augment_spec_lists_models_then_their_variants():
    records = list(iter_models("augment:2:synthetic:5:3"))
    assert records[0].id == "synthetic:3/0" and len(records) == 15
    for k in range(5):
        model, *variants = records[3 * k : 3 * k + 3]
        assert model.id == f"synthetic:3/{k}" and [v.id for v in variants] == variant_ids(model.id, 2)
        assert {v.category for v in variants} == {model.category} and {v.source for v in variants} == {
            "synthetic"
        }
        assert variants[0].name == f"{model.name} (variant {variants[0].id.rsplit('#aug', 1)[1]})"
        np.testing.assert_array_equal(
            variants[1].load().vertices, augment_mesh(model.load(), variants[1].id).vertices
        )
    tables = list(iter_models("augment:1:synthetic:30:3", ["table"]))
    assert tables and all(r.category == "table" for r in tables) and len(tables) % 2 == 0
    every = [r.id for r in iter_models("augment:3:synthetic:9")]
    assert [r.id for r in iter_sources(["augment:3:synthetic:9"], limit=6)] == every[:6]  # variants count


@pytest.mark.parametrize(
    "spec,message",
    [
        ("augment:0:synthetic:3", "augment:K:SOURCE"),
        (f"augment:{MAX_VARIANTS + 1}:synthetic:3", "augment:K:SOURCE"),
        ("augment:x:synthetic:3", "augment:K:SOURCE"),
        ("augment:2", "augment:K:SOURCE"),
        ("augment:2:augment:2:synthetic:3", "nested"),
        ("augment:2:/no/such/place", "no such file"),
    ],
)
def test_bad_augment_specs(spec, message):
    with pytest.raises(VoxliftError, match=message):
        list(iter_models(spec))


def test_voxelize_cli_writes_the_variants(tmp_path, capsys):
    rc = main(["voxelize", "augment:1:synthetic:2:4", "--out", str(tmp_path / "vox"), "--resolution", "16"])
    out, _ = capsys.readouterr()
    assert rc == 0 and out.strip().endswith("4 written, 0 already there, 0 skipped")
    (variant,) = variant_ids("synthetic:4/1", 1)
    path = tmp_path / "vox" / "synthetic" / "4" / f"1_aug{variant.rsplit('#aug', 1)[1]}.binvox"
    assert read_binvox(path).voxels.any()


def test_real_chairs_keep_facing_minus_y(sh3f_libraries):
    wanted = {"sh3f:KatorLegaz/dining-chair", "sh3f:Scopia/chair4", "sh3f:BlendSwap-CC-0/chair2"}
    seen = Counter()
    for lib in sh3f_libraries:
        for r in iter_models(f"augment:3:{lib}", ["chair"]):
            if base_id(r.id) not in wanted:
                continue
            v = r.load().vertices
            top = v[:, 2] > v[:, 2].max() - 0.05
            assert v[top, 1].mean() > 0.1, f"{r.id}: backrest not on +Y"
            assert np.allclose((v.min(0) + v.max(0)) / 2, 0) and np.isclose(np.ptp(v, 0).max(), 1)
            assert split_of(r.id) == split_of(base_id(r.id))
            seen[base_id(r.id)] += 1
    assert seen == dict.fromkeys(wanted, 4)  # the model and its 3 variants
