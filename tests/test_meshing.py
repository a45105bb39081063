"""addon/meshing.py: cubes (exposed sides, shared vertices, greedy merging) and the smooth surface, in numpy,
checked against independent counts and against scikit-image's marching cubes."""

from collections import Counter

import numpy as np
import pytest
from _paired_util import furniture_grid
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes, mesh_surface_area

from voxlift.meshing import cubes_mesh, mesh_from_probs, smooth_mesh, triangulate


def volume(verts, quads_or_tris):
    f = np.asarray(quads_or_tris)
    t = triangulate(f) if f.shape[1] == 4 else f
    a, b, c = (verts[t[:, i]].astype(np.float64) for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def area(verts, quads):
    t = triangulate(quads)
    a, b, c = (verts[t[:, i]].astype(np.float64) for i in range(3))
    return float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2)


def directed_edges(faces):
    f = np.asarray(faces)
    return Counter(map(tuple, np.stack([f, np.roll(f, -1, axis=1)], -1).reshape(-1, 2).tolist()))


def closed_and_oriented(faces):
    """Every directed edge is matched by as many reversed ones: closed, consistently wound."""
    e = directed_edges(faces)
    return all(e.get((b, a), 0) == n for (a, b), n in e.items())


def exposed_sides(occ):
    """Occupied/empty neighbour pairs along each axis, the grid's outside counting as empty."""
    p = np.pad(occ, 1).astype(np.int8)
    return int(sum(np.abs(np.diff(p, axis=a)).sum() for a in range(3)))


def random_blobs(r, seed, fill=0.35):
    rng = np.random.default_rng(seed)
    g = rng.random((r, r, r))
    for _ in range(2):  # a little smoothing: blobs, not salt and pepper
        g = (g + np.roll(g, 1, 0) + np.roll(g, 1, 1) + np.roll(g, 1, 2)) / 4
    return g > np.quantile(g, 1 - fill)


def test_single_voxel_and_block():
    occ = np.zeros((4, 4, 4), bool)
    occ[1, 2, 3] = True
    v, q = cubes_mesh(occ)
    assert v.shape == (8, 3) and q.shape == (6, 4)
    assert np.allclose(v.min(0), [-0.25, 0.0, 0.25]) and np.allclose(v.max(0), [0.0, 0.25, 0.5])
    assert volume(v, q) == pytest.approx(1 / 64)  # positive: normals point out
    occ[:] = False
    occ[1:3, 1:3, 1:3] = True
    v, q = cubes_mesh(occ)
    assert (len(v), len(q)) == (26, 24)  # 2x2 per side, vertices shared: 3x3x3 lattice minus the centre
    v, q = cubes_mesh(occ, greedy=True)
    assert (len(v), len(q)) == (8, 6)
    assert volume(v, q) == pytest.approx(8 / 64)


def test_two_voxels_share_no_inner_face():
    occ = np.zeros((3, 3, 3), bool)
    occ[0, 0, 0] = occ[1, 0, 0] = True
    v, q = cubes_mesh(occ)
    assert len(q) == 10 and len(v) == 12


@pytest.mark.parametrize("seed", [0, 1])
def test_cubes_match_independent_counts(seed):
    r = 24
    occ = random_blobs(r, seed)
    v, q = cubes_mesh(occ)
    assert len(q) == exposed_sides(occ)
    assert len(np.unique(v, axis=0)) == len(v), "vertices are shared, never duplicated"
    assert closed_and_oriented(q)
    assert volume(v, q) == pytest.approx(occ.sum() / r**3, rel=1e-5)
    # All corners on the voxel lattice inside the unit cube.
    lattice = (v + 0.5) * r
    assert np.allclose(lattice, np.round(lattice), atol=1e-4) and v.min() >= -0.5 and v.max() <= 0.5
    # Every quad is one voxel side: four distinct corners, area 1/r^2.
    assert (np.sort(q, axis=1)[:, 1:] != np.sort(q, axis=1)[:, :-1]).all()
    assert area(v, q) == pytest.approx(len(q) / r**2, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 3])
def test_greedy_keeps_the_shape_with_fewer_faces(seed):
    r = 24
    occ = random_blobs(r, seed)
    v, q = cubes_mesh(occ)
    gv, gq = cubes_mesh(occ, greedy=True)
    assert len(gq) < 0.7 * len(q)
    assert volume(gv, gq) == pytest.approx(volume(v, q), rel=1e-5)
    assert area(gv, gq) == pytest.approx(area(v, q), rel=1e-5)
    # Rectangles cover exactly the exposed sides: sampled points of each merged face lie on the voxel mesh.
    assert set(map(tuple, np.round((gv + 0.5) * r).astype(int).tolist())) <= set(
        map(tuple, np.round((v + 0.5) * r).astype(int).tolist())
    )


def test_furniture_grid_greedy_is_much_smaller():
    occ = furniture_grid("chair", np.random.default_rng(0), 32)
    _v, q = cubes_mesh(occ)
    gv, gq = cubes_mesh(occ, greedy=True)
    assert len(q) == exposed_sides(occ) and len(gq) * 5 < len(q)
    assert volume(gv, gq) == pytest.approx(occ.sum() / 32**3, rel=1e-5)


def sphere_probs(r, radius=0.3, sharp=40.0):
    x = (np.arange(r) + 0.5) / r - 0.5
    xx, yy, zz = np.meshgrid(x, x, x, indexing="ij")
    return 1 / (1 + np.exp(-(radius - np.sqrt(xx**2 + yy**2 + zz**2)) * sharp))


def surface_points(verts, tris, n=6):
    """Points spread over every triangle (a barycentric grid): distances to them approximate distances to
    the surface within a small fraction of a cell."""
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = i + j <= n
    w = np.stack([i[keep], j[keep], n - i[keep] - j[keep]], 1) / n
    tri = verts[np.asarray(tris)].astype(np.float64)  # [F, 3, 3]
    return np.einsum("kc,fcd->fkd", w, tri).reshape(-1, 3)


def skimage_surface(probs, level):
    r = probs.shape[0]
    v, f, _, _ = marching_cubes(np.pad(probs, 1), level)
    return (v - 0.5) / r - 0.5, f  # padded sample s sits at the centre of voxel s - 1


@pytest.mark.parametrize("field", ["sphere", "chair"])
def test_smooth_matches_marching_cubes(field):
    r = 32
    if field == "sphere":
        probs = sphere_probs(r)
    else:  # a blurred chair grid: thin legs, a back, sharp corners
        g = furniture_grid("chair", np.random.default_rng(1), r).astype(np.float32)
        for a in range(3):
            g = (np.roll(g, 1, a) + 2 * g + np.roll(g, -1, a)) / 4
        probs = g
    v, q = smooth_mesh(probs, 0.5)
    mv, mf = skimage_surface(probs, 0.5)
    assert closed_and_oriented(q)
    ref_vol = abs(volume(mv, mf[:, ::-1]))
    assert volume(v, q) == pytest.approx(ref_vol, rel=0.06)
    assert area(v, q) == pytest.approx(mesh_surface_area(mv, mf), rel=0.08)
    # Both surfaces are close: every vertex of ours lies within a cell of the marching-cubes surface and back.
    d_ours, _ = cKDTree(surface_points(mv, mf)).query(v)
    d_mc, _ = cKDTree(surface_points(v, triangulate(q))).query(mv)
    assert d_ours.max() < 0.5 / r and d_mc.max() < 0.5 / r
    assert np.median(d_ours) < 0.1 / r and np.median(d_mc) < 0.1 / r
    if field == "sphere":
        radii = np.linalg.norm(v, axis=1)
        assert abs(radii.mean() - 0.3) < 0.25 / r and radii.std() < 0.2 / r


def test_smooth_is_closed_at_the_grid_border_and_for_noise():
    r = 12
    full = np.ones((r, r, r), np.float32)
    v, q = smooth_mesh(full, 0.5)
    assert closed_and_oriented(q) and volume(v, q) > 0.8
    noise = np.random.default_rng(0).random((r, r, r)).astype(np.float32)
    v, q = smooth_mesh(noise, 0.5)
    assert closed_and_oriented(q) and volume(v, q) > 0
    assert len(np.unique(q, axis=0)) == len(q)


def test_threshold_and_modes():
    probs = sphere_probs(16)
    lo = mesh_from_probs(probs, "cubes", 0.2)
    hi = mesh_from_probs(probs, "cubes", 0.8)
    assert volume(*lo) > volume(*hi) > 0
    assert len(mesh_from_probs(probs, "cubes", 0.5)[1]) == exposed_sides(probs >= 0.5)
    _sv, sq = mesh_from_probs(probs, "smooth", 0.5)
    assert len(sq) > 0
    assert mesh_from_probs(np.zeros((8, 8, 8)), "cubes", 0.5)[1].shape == (0, 4)
    assert mesh_from_probs(np.zeros((8, 8, 8)), "smooth", 0.5)[1].shape == (0, 4)
    with pytest.raises(ValueError, match="mode"):
        mesh_from_probs(probs, "blocky", 0.5)
    with pytest.raises(ValueError, match="cubic"):
        cubes_mesh(np.zeros((4, 4, 5), bool))


def test_triangulate_keeps_winding():
    occ = random_blobs(10, 5)
    v, q = cubes_mesh(occ)
    t = triangulate(q)
    assert t.shape == (2 * len(q), 3)
    assert volume(v, t) == pytest.approx(volume(v, q))
    assert closed_and_oriented(t)
