"""The procedural furniture: deterministic, varied, closed parts, canonical frame, one-voxel rods; the first
generator's shapes kept for the models that still draw its kinds; the later kinds voxelise to furniture
(legs on the floor, a five-arm star, runners, a footrest, a kneehole, tops over their footprint)."""

import hashlib
from collections import Counter

import numpy as np
import pytest
from _sources_util import assert_chair_canonical
from scipy import ndimage

from voxlift.dataset_tools.shapenet import NAME_TO_SYNSET
from voxlift.dataset_tools.synthetic import (
    KINDS,
    LEGACY_KINDS,
    LEGACY_SHARE,
    NEW_KINDS,
    THIN,
    cylinder,
    synthetic_model,
    synthetic_models,
)
from voxlift.dataset_tools.voxelize import voxelize

R = 32
# Kinds with a backrest taller than they are wide or deep: assert_chair_canonical holds for all of them.
TALL_CHAIRS = {
    "chair",
    "armchair",
    "high-back chair",
    "swivel chair",
    "dining chair",
    "sled chair",
    "cantilever chair",
    "folding chair",
    "shell chair",
    "office chair",
}
# Seats whose highest part is a backrest on +Y, though they may be wider than tall.
BACKED_SEATS = {"club armchair", "tub chair", "sofa", "park bench"}
TABLE_KINDS = {k for k, (category, _) in KINDS.items() if category == "table"}


def _models_by_kind(seed: int, per_kind: int, kinds) -> dict[str, list]:
    """The first `per_kind` models of each kind in family `seed`."""
    found = {k: [] for k in kinds}
    for k in range(5000):
        m = synthetic_model(seed, k)
        if m.kind in found and len(found[m.kind]) < per_kind:
            found[m.kind].append(m)
        if all(len(v) == per_kind for v in found.values()):
            return found
    raise AssertionError(
        f"kinds missing from 5000 models: {[k for k, v in found.items() if len(v) < per_kind]}"
    )


def _grid(m) -> np.ndarray:
    return voxelize(m.mesh.vertices, m.mesh.faces, R)


def _pieces(layer: np.ndarray) -> int:
    """Separate 8-connected pieces of a 2D layer."""
    return ndimage.label(layer, structure=np.ones((3, 3)))[1]


def _floor_layer(grid: np.ndarray) -> np.ndarray:
    return grid[:, :, np.nonzero(grid.any(axis=(0, 1)))[0].min()]


def test_deterministic_and_independent_of_count():
    a = list(synthetic_models(12, seed=3))
    b = list(synthetic_models(30, seed=3))[:12]
    for x, y in zip(a, b):
        assert x.kind == y.kind
        np.testing.assert_array_equal(x.mesh.vertices, y.mesh.vertices)
        np.testing.assert_array_equal(x.mesh.faces, y.mesh.faces)
    c = list(synthetic_models(12, seed=4))
    assert any(
        x.mesh.vertices.shape != y.mesh.vertices.shape or not np.allclose(x.mesh.vertices, y.mesh.vertices)
        for x, y in zip(a, c)
    )


# (seed, index, kind, fingerprint) of models made before the generator was widened: they draw the first
# generator's kinds and must keep their exact shapes (datasets rendered then still hold them).
FIRST_GENERATOR = [
    (0, 3, "pedestal table", "d7549b63d334"),
    (0, 7, "chair", "38ed14345329"),
    (0, 11, "stool", "4daee9928ebe"),
    (0, 14, "rectangular table", "2b8af7ffd0c8"),
    (0, 21, "swivel chair", "c27852685292"),
    (0, 25, "high-back chair", "059f2ed5d5b5"),
    (0, 27, "square table", "f68393ec1944"),
    (0, 28, "bench", "90353234e6ea"),
    (0, 41, "armchair", "36bcc879d8e0"),
    (0, 44, "round table", "b65ffaf3c6a0"),
]


def test_first_generators_shapes_are_kept_for_its_share_of_the_models():
    for seed, index, kind, fingerprint in FIRST_GENERATOR:
        m = synthetic_model(seed, index)
        digest = hashlib.sha1(np.round(m.mesh.vertices, 6).tobytes() + m.mesh.faces.tobytes()).hexdigest()
        assert (m.kind, digest[:12]) == (kind, fingerprint), (seed, index)
    share = np.mean([synthetic_model(5, k).kind in LEGACY_KINDS for k in range(400)])
    assert abs(share - LEGACY_SHARE) < 0.07, share


def test_variety_and_a_mix_like_real_libraries():
    models = list(synthetic_models(400, seed=0))
    kinds = Counter(m.kind for m in models)
    assert set(kinds) == set(KINDS), set(KINDS) - set(kinds)  # every kind shows up in 400
    assert set(KINDS) == set(LEGACY_KINDS) | set(NEW_KINDS) and len(KINDS) >= 25
    # KatorLegaz + Scopia + BlendSwap-CC-0 hold chairs 42%, tables 35%, sofas 17%, benches 6%.
    expected = Counter()
    for category, p in KINDS.values():
        expected[category] += p
    assert 0.42 <= expected["chair"] <= 0.56 and 0.3 <= expected["table"] <= 0.42
    assert 0.05 <= expected["sofa"] <= 0.2 and 0.02 <= expected["bench"] <= 0.1
    cats = Counter(m.category for m in models)
    for category, p in expected.items():
        assert abs(cats[category] / len(models) - p) < 0.06, (category, cats)
    upholstered = sum(kinds[k] for k in ("club armchair", "tub chair"))
    assert upholstered > 0.1 * cats["chair"]  # real libraries: a third of the chairs are armchairs
    # No two models alike: the extents differ.
    extents = {tuple(np.round(np.ptp(m.mesh.vertices, axis=0), 4)) for m in models}
    assert len(extents) == len(models)
    # Leg counts vary: chairs of the first generator with 3, 4 and 5 legs (clusters of foot vertices).
    floor_parts = Counter()
    for m in models:
        if m.kind == "chair":
            v = m.mesh.vertices
            feet = v[v[:, 2] < v[:, 2].min() + 1e-9][:, :2]
            clusters = []
            for p in feet:
                if all(np.linalg.norm(p - q) > 0.05 for q in clusters):
                    clusters.append(p)
            floor_parts[len(clusters)] += 1
    assert {3, 4, 5} <= set(floor_parts), floor_parts


def test_categories_are_shapenet_names():
    assert {c for c, _ in KINDS.values()} == {"chair", "table", "sofa", "bench"}
    assert all(c in NAME_TO_SYNSET for c, _ in KINDS.values())
    for kind in ("club armchair", "office chair", "bar stool", "tub chair", "dining chair"):
        assert KINDS[kind][0] == "chair"
    for kind in ("desk", "coffee table", "side table", "trestle table", "dining table"):
        assert KINDS[kind][0] == "table"
    assert KINDS["sofa"][0] == "sofa" and KINDS["park bench"][0] == "bench"  # as .sh3f libraries file them
    assert np.isclose(sum(p for _, p in KINDS.values()), 1.0)


def test_canonical_frame_and_backrest_on_plus_y():
    for kind, models in _models_by_kind(1, 3, KINDS).items():
        for m in models:
            v = m.mesh.vertices
            lo, hi = v.min(0), v.max(0)
            assert np.allclose((lo + hi) / 2, 0, atol=1e-9), kind
            assert np.isclose((hi - lo).max(), 1.0), kind
            if kind in TALL_CHAIRS:
                assert_chair_canonical(v, f"{kind} {m.index}")
            elif kind in BACKED_SEATS:
                top = v[:, 2] > hi[2] - 0.01
                assert v[top, 1].mean() > 0.05 and abs(v[top, 0].mean()) < 0.05, f"{kind} {m.index}"


def test_parts_are_closed_meshes():
    for kind, models in _models_by_kind(2, 2, KINDS).items():
        for m in models:
            f = m.mesh.faces
            edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
            directed = Counter(map(tuple, edges))
            # closed and consistently oriented: every directed edge has its reverse, exactly as often
            assert all(directed[(b, a)] == n for (a, b), n in directed.items()), kind
            a, b, c = (m.mesh.vertices[f[:, k]] for k in range(3))
            assert np.einsum("ij,ij->i", a, np.cross(b, c)).sum() > 0, f"{kind}: faces point inwards"


def test_thin_rods_survive_voxelisation_at_32():
    # A rod THIN thick in a model whose longest side is ~1 m is about one voxel wide at 32^3.
    rod = cylinder([0, 0, 0], [0, 0, 1.0], THIN / 2, 8)
    grid = voxelize(rod.vertices - [0, 0, 0.5], rod.faces, 32)
    assert grid[:, :, 2:30].any(axis=(0, 1)).all()  # continuous along its length
    assert grid.sum() <= 4 * 32  # and thin: at most a 2x2 cross-section


def test_every_kind_voxelises_to_one_piece_standing_on_its_floor():
    for kind, models in _models_by_kind(9, 2, KINDS).items():
        for m in models:
            grid = _grid(m)
            labels, count = ndimage.label(grid, structure=np.ones((3, 3, 3)))
            sizes = np.bincount(labels.ravel())[1:]
            assert sizes.max() > 0.97 * grid.sum(), f"{kind}: falls apart into {count} pieces"
            zs = np.nonzero(grid.any(axis=(0, 1)))[0]
            floor = int(np.floor((m.mesh.vertices[:, 2].min() + 0.5) * R + 1e-9))  # -0.5 may be -0.5000...1
            assert zs.min() == floor, kind
            assert grid.sum() > 30, kind


@pytest.fixture(scope="module")
def grids_of_new_kinds():
    return {
        kind: [(m, _grid(m)) for m in models] for kind, models in _models_by_kind(4, 6, NEW_KINDS).items()
    }


def test_chairs_and_tables_stand_on_separate_legs(grids_of_new_kinds):
    for kind in ("dining chair", "dining table"):
        for m, grid in grids_of_new_kinds[kind]:
            assert _pieces(_floor_layer(grid)) in (4, 6), f"{kind} {m.index}: legs"
    for m, grid in grids_of_new_kinds["sled chair"]:  # two runners on the floor
        assert _pieces(_floor_layer(grid)) == 2, m.index


def test_office_chairs_have_a_five_arm_star_on_casters(grids_of_new_kinds):
    for m, grid in grids_of_new_kinds["office chair"]:
        floor = _floor_layer(grid)
        labels, count = ndimage.label(floor, structure=np.ones((3, 3)))
        assert count == 5, m.index  # one caster under each arm
        # the casters stand on a circle around the column
        centres = np.array(ndimage.center_of_mass(floor, labels, range(1, count + 1)))
        radii = np.linalg.norm(centres - centres.mean(0), axis=1)
        assert radii.min() > 5 and radii.std() < 0.15 * radii.mean(), (m.index, radii)


def test_cantilever_chairs_have_no_back_legs(grids_of_new_kinds):
    for m, grid in grids_of_new_kinds["cantilever chair"]:
        zs = np.nonzero(grid.any(axis=(0, 1)))[0]
        below_seat = grid[:, :, zs.min() + 3 : zs.min() + int(0.35 * len(zs))]
        ys = np.nonzero(below_seat.any(axis=(0, 2)))[0]
        assert ys.max() < R // 2, f"{m.index}: something stands under the back of the seat"


def test_bar_stools_are_high_with_a_footrest(grids_of_new_kinds):
    for m, grid in grids_of_new_kinds["bar stool"]:
        zs = np.nonzero(grid.any(axis=(0, 1)))[0]
        h = len(zs)
        area = grid.sum(axis=(0, 1))
        seat = int(np.argmax(area[zs.min() + h // 2 :])) + zs.min() + h // 2
        assert seat - zs.min() > 0.5 * h, m.index  # the widest layer (the seat) high up
        width = np.ptp(np.nonzero(grid[:, :, seat].any(axis=1))[0]) + 1
        # a footrest: a layer low down that is one piece spanning most of the seat's width
        found = False
        for z in range(zs.min() + int(0.15 * h), zs.min() + int(0.6 * h)):
            layer = grid[:, :, z]
            if layer.any() and _pieces(layer) == 1:
                found |= np.ptp(np.nonzero(layer.any(axis=1))[0]) + 1 >= 0.6 * width
        assert found, f"{m.index}: no footrest"


def test_desks_leave_a_kneehole_at_the_front(grids_of_new_kinds):
    for m, grid in grids_of_new_kinds["desk"]:
        zs = np.nonzero(grid.any(axis=(0, 1)))[0]
        ys = np.nonzero(grid.any(axis=(0, 2)))[0]
        h = len(zs)
        front_half = slice(ys.min(), (ys.min() + ys.max()) // 2)
        knee = grid[R // 2 - 1 : R // 2 + 1, front_half, zs.min() + 3 : zs.min() + int(0.4 * h)]
        assert not knee.any(), f"desk {m.index}: no room for the knees"


def test_table_tops_cover_their_footprint(grids_of_new_kinds):
    for kind in sorted(TABLE_KINDS & set(NEW_KINDS)):
        for m, grid in grids_of_new_kinds[kind]:
            zs = np.nonzero(grid.any(axis=(0, 1)))[0]
            xs, ys = np.nonzero(grid.any(axis=(1, 2)))[0], np.nonzero(grid.any(axis=(0, 2)))[0]
            band = grid[:, :, zs.min() + int(0.55 * len(zs)) : zs.max() + 1]
            cover = band.sum(axis=(0, 1)).max() / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
            assert cover > 0.75, f"{kind} {m.index}: top covers {cover:.0%}"
    for m, _ in grids_of_new_kinds["coffee table"]:
        ext = np.ptp(m.mesh.vertices, axis=0)
        assert ext[2] < 0.8 * ext[:2].max(), m.index  # low


def test_sofas_and_benches_are_long(grids_of_new_kinds):
    for kind in ("sofa", "park bench"):
        for m, _ in grids_of_new_kinds[kind]:
            ext = np.ptp(m.mesh.vertices, axis=0)
            assert np.isclose(ext[0], 1.0) and ext[2] < 0.8, f"{kind} {m.index}"  # wide and low
