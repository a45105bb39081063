"""The procedural furniture: deterministic, varied, closed parts, canonical frame, one-voxel rods."""

from collections import Counter

import numpy as np
from _sources_util import assert_chair_canonical

from voxlift.dataset_tools.synthetic import KINDS, THIN, cylinder, synthetic_model, synthetic_models
from voxlift.dataset_tools.voxelize import voxelize


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


def test_variety():
    models = list(synthetic_models(150, seed=0))
    kinds = Counter(m.kind for m in models)
    assert set(kinds) == set(KINDS), kinds  # every kind shows up in 150
    cats = Counter(m.category for m in models)
    assert cats["chair"] > 40 and cats["table"] > 40 and cats["bench"] > 0
    # No two models alike: the sorted extents differ.
    extents = {tuple(np.round(np.ptp(m.mesh.vertices, axis=0), 4)) for m in models}
    assert len(extents) == len(models)
    # Leg counts vary: chairs with 3, 4 and 5 legs exist (count the separate parts reaching the floor).
    floor_parts = Counter()
    for m in models:
        if m.kind == "chair":
            v = m.mesh.vertices
            feet = v[v[:, 2] < v[:, 2].min() + 1e-9][:, :2]
            # each leg contributes a cluster of foot vertices; count clusters 0.05 apart
            clusters = []
            for p in feet:
                if all(np.linalg.norm(p - q) > 0.05 for q in clusters):
                    clusters.append(p)
            floor_parts[len(clusters)] += 1
    assert {3, 4, 5} <= set(floor_parts), floor_parts


def test_canonical_frame_and_backrest_on_plus_y():
    for m in synthetic_models(80, seed=1):
        v = m.mesh.vertices
        lo, hi = v.min(0), v.max(0)
        assert np.allclose((lo + hi) / 2, 0, atol=1e-9)
        assert np.isclose((hi - lo).max(), 1.0)
        if m.kind in ("chair", "armchair", "high-back chair", "swivel chair"):
            assert_chair_canonical(v, m.kind)


def test_parts_are_closed_meshes():
    for m in synthetic_models(20, seed=2):
        f = m.mesh.faces
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        directed = Counter(map(tuple, edges))
        # closed and consistently oriented: every directed edge has its reverse, exactly as often
        assert all(directed[(b, a)] == n for (a, b), n in directed.items()), m.kind


def test_thin_rods_survive_voxelisation_at_32():
    # A rod THIN thick in a model whose longest side is ~1 m is about one voxel wide at 32^3.
    rod = cylinder([0, 0, 0], [0, 0, 1.0], THIN / 2, 8)
    grid = voxelize(rod.vertices - [0, 0, 0.5], rod.faces, 32)
    assert grid[:, :, 2:30].any(axis=(0, 1)).all()  # continuous along its length
    assert grid.sum() <= 4 * 32  # and thin: at most a 2x2 cross-section


def test_every_model_voxelises_to_one_piece_touching_its_floor():
    from scipy import ndimage

    for k in range(8):
        m = synthetic_model(9, k)
        grid = voxelize(m.mesh.vertices, m.mesh.faces, 32)
        labels, count = ndimage.label(grid, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(labels.ravel())[1:]
        assert sizes.max() > 0.97 * grid.sum(), f"{m.kind}: falls apart into {count} pieces"
        zs = np.nonzero(grid.any(axis=(0, 1)))[0]
        assert zs.min() == int(np.floor((m.mesh.vertices[:, 2].min() + 0.5) * 32)), m.kind
