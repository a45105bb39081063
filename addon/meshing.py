"""Voxel grids and probability grids to meshes, in numpy alone (Blender's Python has no scikit-image).

Everything is vectorised: no Python object per voxel, so a 32^3 grid takes milliseconds and 128^3 stays fast.
Coordinates follow the canonical frame (README): voxel (i, j, k) of an R^3 grid spans
[-0.5 + i/R, -0.5 + (i+1)/R] on x (likewise y, z), so the grid fills the cube [-0.5, 0.5]^3.

* `cubes_mesh(occupancy, greedy=False)`: one quad per exposed voxel side, vertices shared on the voxel
  lattice, no inner faces; `greedy=True` merges coplanar sides into rectangles (far fewer faces, same shape).
* `smooth_mesh(probs, threshold)`: a watertight smooth surface through the probability field at `threshold`
  by surface nets (the dual of marching cubes: one vertex per cell the surface crosses, at the mean of the
  linearly interpolated edge crossings, one quad per crossed lattice edge). It lies within a cell of the
  marching-cubes surface (tests compare it with skimage's) and gives quads, which Blender shades smoothly.

Faces are returned as int32 quads [F, 4] wound counter-clockwise seen from outside (normals point out).
"""

from __future__ import annotations

import numpy as np

# Mesh modes as Blender enum items (identifier, name, description): the Reconstruct panel, each object's
# settings and the .binvox importer offer them; the CLI's --mode takes the identifiers in lower case.
MODE_ITEMS = (
    ("CUBES", "Cubes", "One face per exposed voxel side"),
    ("SMOOTH", "Smooth", "Smooth surface through the probabilities"),
)
MODES = tuple(identifier.lower() for identifier, _, _ in MODE_ITEMS)
DEFAULT_THRESHOLD = 0.5  # occupancy probability above which a voxel counts as filled


def _grid(values: np.ndarray, name: str = "grid") -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 3 or len(set(a.shape)) != 1 or a.shape[0] == 0:
        raise ValueError(f"{name}: expected a cubic R x R x R array, got shape {a.shape}")
    return a


def _lattice_to_world(points: np.ndarray, resolution: int) -> np.ndarray:
    return (points.astype(np.float64) / resolution - 0.5).astype(np.float32)


# For a face normal along axis a, the in-plane axes (u, v) are the next two axes in cyclic order, so that
# e_u x e_v = e_a: corners (u, v) = (0,0), (1,0), (1,1), (0,1) then wind counter-clockwise around +e_a.
_CYCLIC = ((0, 1, 2), (1, 2, 0), (2, 0, 1))


def _runs(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Runs of True along the last axis of a 3D mask: (layer, u, v0, v1), v1 exclusive, in C order."""
    pad = np.zeros(mask.shape[:2] + (1,), dtype=np.int8)
    d = np.diff(np.concatenate([pad, mask.astype(np.int8), pad], axis=2), axis=2)
    layer, u, v0 = np.nonzero(d == 1)
    v1 = np.nonzero(d == -1)[2]  # same rows, same order: each start pairs with the next end
    return layer, u, v0, v1


def _greedy_rects(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Merge a stack of 2D masks [L, U, V] into rectangles (layer, u0, u1, v0, v1): runs along v first, then
    runs with the same (v0, v1) in consecutive rows u are stacked. Not the minimum cover, but close and
    fully vectorised."""
    layer, u, v0, v1 = _runs(mask)
    if len(layer) == 0:
        e = np.zeros(0, np.int64)
        return e, e, e, e, e
    order = np.lexsort((u, v1, v0, layer))
    layer, u, v0, v1 = layer[order], u[order], v0[order], v1[order]
    same = np.zeros(len(u), dtype=bool)
    same[1:] = (layer[1:] == layer[:-1]) & (v0[1:] == v0[:-1]) & (v1[1:] == v1[:-1]) & (u[1:] == u[:-1] + 1)
    starts = np.flatnonzero(~same)
    ends = np.r_[starts[1:], len(u)] - 1
    return layer[starts], u[starts], u[ends] + 1, v0[starts], v1[starts]


def cubes_mesh(occupancy: np.ndarray, greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exposed voxel sides of a boolean grid: (vertices float32 [V, 3], quads int32 [F, 4])."""
    occ = _grid(occupancy, "occupancy").astype(bool)
    r = occ.shape[0]
    padded = np.pad(occ, 1)
    corners_all = []
    for axis, (a, ua, va) in enumerate(_CYCLIC):
        inner = padded[1:-1, 1:-1, 1:-1]
        for sign in (1, -1):
            shift = [slice(1, -1)] * 3
            shift[axis] = slice(2, None) if sign > 0 else slice(0, -2)
            exposed = inner & ~padded[tuple(shift)]
            m = exposed.transpose(a, ua, va)  # [layer along the normal, u, v]
            if greedy:
                layer, u0, u1, v0, v1 = _greedy_rects(m)
            else:
                layer, u0, v0 = np.nonzero(m)
                u1, v1 = u0 + 1, v0 + 1
            plane = layer + (1 if sign > 0 else 0)
            quad_uv = [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]
            if sign < 0:
                quad_uv = quad_uv[::-1]
            corners = np.empty((len(layer), 4, 3), dtype=np.int64)
            for c, (cu, cv) in enumerate(quad_uv):
                corners[:, c, a], corners[:, c, ua], corners[:, c, va] = plane, cu, cv
            corners_all.append(corners)
    corners = np.concatenate(corners_all)
    n = r + 1
    flat = (corners[..., 0] * n + corners[..., 1]) * n + corners[..., 2]
    # Share vertices through a lookup table over the lattice (cheaper than np.unique's sort).
    used = np.zeros(n**3, dtype=bool)
    used[flat.ravel()] = True
    ids = np.flatnonzero(used)
    remap = np.full(n**3, -1, dtype=np.int64)
    remap[ids] = np.arange(len(ids))
    lattice = np.stack(np.unravel_index(ids, (n, n, n)), axis=1)
    return _lattice_to_world(lattice, r), remap[flat].astype(np.int32).reshape(-1, 4)


def smooth_mesh(probs: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Surface nets through `probs` at `threshold`: (vertices float32 [V, 3], quads int32 [F, 4]).

    Samples sit at voxel centres; the grid is padded with empty space so the surface is always closed."""
    p = _grid(probs, "probabilities").astype(np.float32)
    r = p.shape[0]
    f = np.pad(p - np.float32(threshold), 1, constant_values=-np.float32(threshold))
    if threshold <= 0:  # everything is inside: still close the surface at the padding
        f = np.pad(p - np.float32(threshold), 1, constant_values=-1.0)
    inside = f > 0
    n = r + 2  # samples per axis; cells are (n-1)^3
    cell_sum = np.zeros((n - 1, n - 1, n - 1, 3), dtype=np.float32)
    cell_cnt = np.zeros((n - 1, n - 1, n - 1), dtype=np.float32)
    quads = []
    edge_cells = {}
    for axis, (_, ua, va) in enumerate(_CYCLIC):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        f0, f1 = f[tuple(lo)], f[tuple(hi)]
        crossed = inside[tuple(lo)] != inside[tuple(hi)]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(crossed, f0 / (f0 - f1), 0.0).astype(np.float32)
        # Crossing position in sample units, relative to the cell whose corner is the edge's start.
        idx = np.indices(crossed.shape, dtype=np.float32)
        pos = np.stack([idx[0], idx[1], idx[2]], axis=-1)
        pos[..., axis] += t
        pos *= crossed[..., None]
        w = crossed.astype(np.float32)
        # Each edge touches the 4 cells around it: offsets 0/-1 on the two other axes.
        for du in (0, 1):
            for dv in (0, 1):
                src = [slice(None)] * 3
                src[ua] = slice(du, du + n - 1)
                src[va] = slice(dv, dv + n - 1)
                cell_sum += pos[tuple(src)]
                cell_cnt += w[tuple(src)]
        edge_cells[axis] = (crossed, inside[tuple(lo)])
    active = cell_cnt > 0
    cell_id = np.full(active.shape, -1, dtype=np.int64)
    cell_id[active] = np.arange(int(active.sum()))
    verts = cell_sum[active] / cell_cnt[active][:, None]
    for axis, (_, ua, va) in enumerate(_CYCLIC):
        crossed, start_inside = edge_cells[axis]
        e = np.nonzero(crossed)
        # Padding keeps crossings off the outer faces, so all four neighbouring cells exist.
        cu, cv = e[ua], e[va]
        ring = []
        for du, dv in ((-1, -1), (0, -1), (0, 0), (-1, 0)):
            c = [e[0], e[1], e[2]]
            c[ua], c[va] = cu + du, cv + dv
            c[axis] = e[axis]
            ring.append(cell_id[c[0], c[1], c[2]])
        q = np.stack(ring, axis=1)
        # Ring order winds around +axis; flip where the inside is at the far end (normal points -axis).
        flip = ~start_inside[e]
        q[flip] = q[flip][:, ::-1]
        quads.append(q)
    faces = np.concatenate(quads).astype(np.int32) if quads else np.zeros((0, 4), np.int32)
    # Sample index s (padded) sits at the centre of voxel s - 1: world = -0.5 + (s - 0.5) / R.
    world = ((verts.astype(np.float64) - 0.5) / r - 0.5).astype(np.float32)
    return world, faces


def mesh_from_probs(
    probs: np.ndarray, mode: str = "cubes", threshold: float = 0.5, greedy: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The mesh of a probability (or 0/1) grid in one of MODES."""
    if mode == "cubes":
        return cubes_mesh(np.asarray(probs) >= threshold, greedy=greedy)
    if mode == "smooth":
        return smooth_mesh(probs, threshold)
    raise ValueError(f"unknown mesh mode {mode!r}; choose one of {', '.join(MODES)}")


def triangulate(quads: np.ndarray) -> np.ndarray:
    """Split quads [F, 4] into triangles [2F, 3] keeping their winding."""
    q = np.asarray(quads).reshape(-1, 4)
    return np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]]).reshape(-1, 3)
