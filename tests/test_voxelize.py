"""The voxeliser against exact references: convex shapes (inside = behind every face plane) plus trimesh's
dense surface samples, thin parts, holes, closed parts that must stay apart, ties on grid planes."""

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.mesh import Mesh
from voxlift.dataset_tools.voxelize import (
    _triangles_in_grid,
    is_closed,
    parity_votes,
    voxelize,
    voxelize_mesh,
)


def centres(r):
    i = np.arange(r)
    return (np.stack(np.meshgrid(i, i, i, indexing="ij"), -1).reshape(-1, 3) + 0.5) / r - 0.5


def inside_convex(part, points):
    """Exact inside test for a convex watertight mesh: behind the plane of every face."""
    offsets = np.einsum("fj,fj->f", part.face_normals, part.triangles[:, 0])
    inside = np.ones(len(points), bool)
    for k in range(0, len(offsets), 64):  # in slices of faces: [points, faces] would be large
        inside &= (points @ part.face_normals[k : k + 64].T <= offsets[k : k + 64]).all(axis=1)
    return inside


def surface_samples(part, r, n=60_000):
    pts, _ = trimesh.sample.sample_surface(part, n, seed=0)
    grid = np.zeros((r, r, r), bool)
    grid[tuple(np.clip(np.floor((pts + 0.5) * r).astype(int), 0, r - 1).T)] = True
    return grid


def reference(parts, r):
    """trimesh's surface voxels (dense samples) united with the voxels whose centre is inside a part."""
    grid = np.zeros((r, r, r), bool)
    for part in parts:
        grid |= surface_samples(part, r) | inside_convex(part, centres(r)).reshape(r, r, r)
    return grid


def concat(parts):
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
    return (
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.faces + o for p, o in zip(parts, offsets)]),
    )


def rotated(mesh, seed, scale=1.0):
    m = trimesh.transformations.random_rotation_matrix(np.random.default_rng(seed).random(3))
    mesh = mesh.copy()
    mesh.apply_transform(m @ np.diag([scale, scale, scale, 1.0]))
    return mesh


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


SHAPES = {
    "box": lambda: [trimesh.creation.box((0.5, 0.3, 0.7))],
    "icosphere": lambda: [trimesh.creation.icosphere(2, 0.42)],
    "cylinder": lambda: [trimesh.creation.cylinder(0.15, 0.8, sections=24)],
    # Overlapping closed parts, as furniture is modelled: the overlaps are crossed twice by rays.
    "union": lambda: [
        trimesh.creation.box((0.8, 0.15, 0.15)),
        trimesh.creation.box((0.15, 0.8, 0.15)),
        trimesh.creation.box((0.15, 0.15, 0.8), trimesh.transformations.translation_matrix((0.3, 0.1, 0))),
    ],
}


@pytest.mark.parametrize("r", [32, 64])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_exact_reference_on_watertight_shapes(shape, r):
    for seed in range(2 if r == 32 else 1):
        parts = [rotated(p, seed) for p in SHAPES[shape]()]
        ref = reference(parts, r)
        ours = voxelize(*concat(parts), r)
        assert ours.shape == (r, r, r) and ours.dtype == bool
        assert iou(ours, ref) >= 0.97
        # Conservative: no sampled surface point and no inside centre is left out.
        assert (ref & ~ours).sum() <= 0.001 * ref.sum()


def test_surface_is_conservative_and_tight_for_single_triangles():
    rng = np.random.default_rng(5)
    r = 16
    for _ in range(20):
        tri = rng.uniform(-0.45, 0.45, (3, 3)) * rng.choice([0.05, 0.3, 1.0])
        got = voxelize(tri, [[0, 1, 2]], r, fill=False)
        bary = rng.dirichlet([1, 1, 1], 20_000)
        pts = bary @ tri
        sampled = np.zeros_like(got)
        sampled[tuple(np.floor((pts + 0.5) * r).astype(int).T)] = True
        assert (sampled & ~got).sum() == 0
        # Every marked voxel is within half a voxel diagonal (+ sampling slack) of the triangle.
        c = centres(r).reshape(r, r, r, 3)[got]
        dist = np.sqrt(((c[:, None, :] - pts[None, ::10]) ** 2).sum(-1)).min(axis=1) * r
        assert dist.max() <= np.sqrt(3) / 2 + 0.05


def test_one_voxel_thin_rod_survives_in_one_piece():
    rod = trimesh.creation.cylinder(0.002, 0.9, sections=6)
    rod.apply_transform(trimesh.transformations.rotation_matrix(0.7, [1, 1, 0.3]))
    grid = voxelize(rod.vertices, rod.faces, 32)
    _, n = ndimage.label(grid, np.ones((3, 3, 3)))
    assert n == 1
    ends = np.floor((rod.vertices[[np.argmin(rod.vertices[:, 2]), np.argmax(rod.vertices[:, 2])]] + 0.5) * 32)
    for e in ends.astype(int):
        assert grid[tuple(e)]
    assert grid.sum() >= 0.9 * 32 * np.abs(rod.vertices.max(0) - rod.vertices.min(0)).max()


@pytest.mark.parametrize("drop", ["a whole face", "one triangle"])
def test_box_with_a_hole_still_fills(drop):
    box = rotated(trimesh.creation.box((0.6, 0.5, 0.4)), 3)
    up = np.argmax(box.face_normals[:, 2])
    keep = (
        ~np.isclose(box.face_normals @ box.face_normals[up], 1)
        if drop == "a whole face"
        else np.arange(len(box.faces)) != up
    )
    assert keep.sum() in (10, 11)
    grid = voxelize(box.vertices, box.faces[keep], 32)
    c = centres(32)
    inside = inside_convex(box, c).reshape(32, 32, 32)
    # Every voxel inside, except within two voxels of the missing face, where the vote is close to even.
    top = box.triangles[up, 0]
    deep = inside & ((top - c) @ box.face_normals[up] > 2 / 32).reshape(32, 32, 32)
    assert (deep & ~grid).sum() == 0
    assert (inside & ~grid).sum() <= 0.1 * inside.sum()
    assert iou(grid, reference([box], 32)) >= 0.9
    # ... while the surface alone, flood-filled, would leave the box hollow
    assert (inside & ~voxelize(box.vertices, box.faces[keep], 32, parity=False)).sum() > 0.5 * inside.sum()


def test_closed_parts_do_not_fill_the_space_between_them():
    # A table: a top, four aprons under its edges and four legs, each a closed box. The space under the
    # top, boxed in by the aprons on four sides, is outside and must stay empty.
    parts = [trimesh.creation.box((0.9, 0.6, 0.05), trimesh.transformations.translation_matrix((0, 0, 0.2)))]
    for x, y, ex, ey in [
        (0, 0.28, 0.9, 0.03),
        (0, -0.28, 0.9, 0.03),
        (0.43, 0, 0.03, 0.6),
        (-0.43, 0, 0.03, 0.6),
    ]:
        parts.append(
            trimesh.creation.box((ex, ey, 0.1), trimesh.transformations.translation_matrix((x, y, 0.125)))
        )
    for x in (-0.42, 0.42):
        for y in (-0.27, 0.27):
            parts.append(
                trimesh.creation.box(
                    (0.04, 0.04, 0.45), trimesh.transformations.translation_matrix((x, y, -0.0))
                )
            )
    grid = voxelize(*concat(parts), 32)
    ref = reference(parts, 32)
    assert iou(grid, ref) >= 0.97
    under_top = centres(32).reshape(32, 32, 32, 3)
    pocket = (
        (np.abs(under_top[..., 0]) < 0.35)
        & (np.abs(under_top[..., 1]) < 0.2)
        & (under_top[..., 2] > 0.09)
        & (under_top[..., 2] < 0.16)
    )
    assert pocket.sum() > 100 and not grid[pocket].any()


def test_faces_on_grid_planes_give_exact_boxes():
    # Faces exactly on grid planes: the voxels inside, no extra layer; a model filling the cube fills it.
    box = trimesh.creation.box((0.5, 0.25, 0.75))
    grid = voxelize(box.vertices, box.faces, 32)
    assert grid.sum() == 16 * 8 * 24
    assert grid[8:24, 12:20, 4:28].all()
    cube = trimesh.creation.box((1, 1, 1))
    assert voxelize(cube.vertices, cube.faces, 32).all()
    assert voxelize(cube.vertices, cube.faces, 32, fill=False).sum() == 32**3 - 30**3


def test_surface_only_is_hollow_and_inside_the_solid():
    ball = trimesh.creation.icosphere(3, 0.4)
    shell = voxelize(ball.vertices, ball.faces, 32, fill=False)
    solid = voxelize_mesh(Mesh(ball.vertices, ball.faces), 32)
    assert not shell[16, 16, 16] and solid[16, 16, 16]
    assert (shell & ~solid).sum() == 0 and solid.sum() > 2 * shell.sum()


def test_geometry_outside_the_cube_is_clipped():
    box = trimesh.creation.box((1.6, 0.4, 0.4))  # sticks out on both sides along x
    far = trimesh.creation.box((0.1, 0.1, 0.1), trimesh.transformations.translation_matrix((3, 3, 3)))
    grid = voxelize(*concat([box, far]), 32)
    assert grid.shape == (32, 32, 32)
    # +-0.2 is grid plane 9.6 and 22.4: voxels 9..22
    assert grid[:, 9:23, 9:23].all() and grid.sum() == 32 * 14 * 14


def test_degenerate_and_empty_input():
    assert not voxelize(np.zeros((0, 3)), np.zeros((0, 3), int), 8).any()
    # zero-area triangles (a segment, a point) still mark the voxels they touch
    seg = voxelize([[-0.3, 0.01, 0.01], [0.3, 0.01, 0.01], [0.0, 0.01, 0.01]], [[0, 1, 2]], 8)
    assert seg[1:7, 4, 4].all() and seg.sum() == 6


def test_bad_input_raises():
    with pytest.raises(VoxliftError, match="resolution"):
        voxelize(np.zeros((3, 3)), [[0, 1, 2]], 0)
    with pytest.raises(VoxliftError, match="resolution"):
        voxelize(np.zeros((3, 3)), [[0, 1, 2]], 5000)
    with pytest.raises(VoxliftError, match="vertex"):
        voxelize(np.zeros((3, 3)), [[0, 1, 3]], 8)
    with pytest.raises(VoxliftError, match="NaN"):
        voxelize([[0, 0, 0], [np.nan, 0, 0], [0, 1, 0]], [[0, 1, 2]], 8)


def test_closed_meshes_skip_the_vote_without_changing_the_result():
    box = rotated(trimesh.creation.box((0.5, 0.4, 0.3)), 9)
    assert is_closed(box.faces, box.vertices)
    assert not is_closed(box.faces[1:], box.vertices)
    # one vertex per corner of every face (as some exporters write): still closed once merged by position
    split = box.vertices[box.faces].reshape(-1, 3)
    assert is_closed(np.arange(len(split)).reshape(-1, 3), split)
    parts = [box, rotated(trimesh.creation.icosphere(1, 0.3), 4)]
    v, f = concat(parts)
    assert is_closed(f, v)
    assert np.array_equal(voxelize(v, f, 32), voxelize(v, f, 32, parity=False))
    # For one closed part the vote agrees with enclosure: every interior voxel gets all 18 votes. (Where
    # closed parts overlap, rays cross two surfaces and the vote says "outside": enclosure is what fills
    # the overlap.)
    shell = voxelize(box.vertices, box.faces, 32, fill=False)
    interior = voxelize(box.vertices, box.faces, 32) & ~shell
    votes = parity_votes(_triangles_in_grid(box.vertices, box.faces, 32), 32)
    assert interior.sum() > 1000 and (votes[interior] == 18).all() and (votes[~interior & ~shell] == 0).all()
