"""Building blocks of the procedural furniture (numpy only): closed, outward-facing triangle meshes.

Every part is a closed mesh on its own (parts may intersect: the voxeliser fills their union), so a chair is
a list of parts merged at the end. Sizes are in metres, Z up, the front towards -Y (synthetic.py's frame).
Besides boxes and cylinders: hexahedra with any 8 corners (tilted slabs, tapered square legs), frusta (tapered
round legs), turned legs (a stack of frusta), rods along a polyline (tubular frames, sled runners, rings), and
swept strips (a curved backrest, a moulded shell): one hexahedron per segment of a polyline.
"""

from __future__ import annotations

import itertools

import numpy as np

from .mesh import Mesh

# One voxel of a 32^3 grid is 1/32 of the longest side; furniture about 1 m long gives 3 cm voxels.
THIN = 0.012

# Triangles of a hexahedron whose corners are numbered like a box's: bit 0 the +u side, bit 1 +v, bit 2 +w.
_HEX_FACES = np.array(
    [
        [0, 2, 1],
        [1, 2, 3],
        [4, 5, 6],
        [5, 7, 6],
        [0, 1, 4],
        [1, 5, 4],
        [2, 6, 3],
        [3, 6, 7],
        [0, 4, 2],
        [2, 4, 6],
        [1, 3, 5],
        [3, 7, 5],
    ]
)


# ---------------------------------------------------------------- primitives
def box(lo, hi) -> Mesh:
    """Closed axis-aligned box between corners lo and hi, outward-facing triangles."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array(
        [[hi[0] if i & 1 else lo[0], hi[1] if i & 2 else lo[1], hi[2] if i & 4 else lo[2]] for i in range(8)]
    )
    return Mesh(v, _HEX_FACES.tolist())


def centered_box(center, size) -> Mesh:
    c, s = np.asarray(center, float), np.asarray(size, float) / 2
    return box(c - s, c + s)


def cylinder(p0, p1, radius: float, segments: int = 12) -> Mesh:
    """Closed cylinder (capped) from p0 to p1 along any axis."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    axis = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    t = 2 * np.pi * np.arange(segments) / segments
    ring = radius * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * w)
    v = np.vstack([p0 + ring, p1 + ring, p0, p1])
    n, c0, c1 = segments, 2 * segments, 2 * segments + 1
    f = []
    for i in range(n):
        j = (i + 1) % n
        f += [[i, j, n + i], [j, n + j, n + i], [c0, j, i], [c1, n + i, n + j]]
    return Mesh(v, f)


def merge(parts: list[Mesh]) -> Mesh:
    verts, faces, offset = [], [], 0
    for p in parts:
        verts.append(p.vertices)
        faces.append(p.faces + offset)
        offset += len(p.vertices)
    return Mesh(np.vstack(verts), np.vstack(faces))


def rod(rng, lo=THIN, hi=0.035) -> float:
    """A leg or rod thickness; a quarter of them as thin as one voxel at 32^3."""
    return THIN if rng.random() < 0.25 else float(rng.uniform(lo, hi))


def signed_volume(mesh: Mesh) -> float:
    """Volume enclosed by a closed mesh: positive when its triangles face outwards."""
    a, b, c = (mesh.vertices[mesh.faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def hexahedron(corners) -> Mesh:
    """Closed hexahedron of 8 corners numbered like a box's (bit 0: +u, bit 1: +v, bit 2: +w), any shape
    that keeps its faces flat enough; faces turned outwards whichever way the corners run."""
    mesh = Mesh(np.asarray(corners, float).reshape(8, 3), _HEX_FACES)
    if signed_volume(mesh) < 0:
        mesh.faces = mesh.faces[:, ::-1].copy()
    return mesh


def tapered_box(foot, head, half_foot: float, half_head: float) -> Mesh:
    """A square leg from `foot` to `head` (points on its axis, the axis about vertical), half widths
    half_foot at the foot and half_head at the head."""
    foot, head = np.asarray(foot, float), np.asarray(head, float)
    corners = []
    for k in range(8):
        centre, half = (head, half_head) if k & 4 else (foot, half_foot)
        corners.append(centre + [half if k & 1 else -half, half if k & 2 else -half, 0.0])
    return hexahedron(corners)


def frustum(p0, p1, r0: float, r1: float, segments: int = 12) -> Mesh:
    """Closed truncated cone from p0 (radius r0) to p1 (radius r1)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = (p1 - p0) / np.linalg.norm(p1 - p0)
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    t = 2 * np.pi * np.arange(segments) / segments
    ring = np.cos(t)[:, None] * u + np.sin(t)[:, None] * w
    v = np.vstack([p0 + r0 * ring, p1 + r1 * ring, p0, p1])
    n, c0, c1 = segments, 2 * segments, 2 * segments + 1
    f = []
    for i in range(n):
        j = (i + 1) % n
        f += [[i, j, n + i], [j, n + j, n + i], [c0, j, i], [c1, n + i, n + j]]
    return Mesh(v, f)


def turned_leg(foot, head, radius: float, rng, segments: int = 10) -> list[Mesh]:
    """A lathe-turned leg: frusta through a profile of beads and tapers along the axis foot -> head."""
    foot, head = np.asarray(foot, float), np.asarray(head, float)
    stations = np.sort(np.concatenate([[0.0, 1.0], rng.uniform(0.1, 0.9, 4)]))
    radii = radius * np.concatenate([[0.7], rng.uniform(0.6, 1.3, 4), [1.0]])
    return [
        frustum(foot + (head - foot) * a, foot + (head - foot) * b, ra, rb, segments)
        for a, b, ra, rb in zip(stations[:-1], stations[1:], radii[:-1], radii[1:])
        if b - a > 1e-6
    ]


def rod_path(points, radius: float, closed: bool = False, segments: int = 8) -> list[Mesh]:
    """A tube of round rods through the points (a tubular frame, a runner, a ring when closed)."""
    pts = [np.asarray(p, float) for p in points]
    if closed:
        pts.append(pts[0])
    return [
        cylinder(a, b, radius, segments) for a, b in itertools.pairwise(pts) if np.linalg.norm(b - a) > 1e-9
    ]


def ring(center, radius: float, rod_radius: float, pieces: int = 16) -> list[Mesh]:
    """A horizontal ring of rod (a footrest) around a vertical axis through `center`."""
    c = np.asarray(center, float)
    t = 2 * np.pi * np.arange(pieces) / pieces
    return rod_path([c + [radius * np.cos(a), radius * np.sin(a), 0.0] for a in t], rod_radius, closed=True)


def sweep(path, normals, thickness: float, across) -> list[Mesh]:
    """A strip swept along a polyline: point i spans path[i] .. path[i] + thickness * normals[i] in depth
    and path[i] .. path[i] + across[i] in width (one vector, or one per point); one hexahedron a segment."""
    p = np.asarray(path, float)
    n = np.asarray(normals, float) * thickness
    e = np.broadcast_to(np.asarray(across, float), p.shape)
    parts = []
    for i in range(len(p) - 1):
        a0, a1, b0, b1 = p[i], p[i + 1], p[i] + n[i], p[i + 1] + n[i + 1]
        parts.append(hexahedron([a0, a1, b0, b1, a0 + e[i], a1 + e[i + 1], b0 + e[i], b1 + e[i + 1]]))
    return parts


def arc_points(radius: float, start: float, stop: float, count: int, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """`count` points on a horizontal arc (angles in radians from +X, counter-clockwise seen from above)."""
    t = np.linspace(start, stop, count)
    return np.asarray(center, float) + np.stack([radius * np.cos(t), radius * np.sin(t), 0 * t], axis=1)


def sheared(parts: list[Mesh], z0: float, lean: float) -> list[Mesh]:
    """Parts leaned back: y grows by lean * (z - z0) (a shear: volumes and face orientation are kept)."""
    out = []
    for p in parts:
        v = p.vertices.copy()
        v[:, 1] += lean * (v[:, 2] - z0)
        out.append(Mesh(v, p.faces.copy()))
    return out


def mirrored_x(parts: list[Mesh]) -> list[Mesh]:
    """Parts mirrored across the plane x = 0 (faces turned back outwards)."""
    return [Mesh(p.vertices * [-1.0, 1.0, 1.0], p.faces[:, ::-1].copy()) for p in parts]


# ---------------------------------------------------------------- legs and frames
LEG_STYLES = ("square", "round", "tapered square", "tapered round", "turned")
# A tapered leg's foot is this share of its head's width.
TAPER = 0.55


def leg(rng, style: str, foot, head, thick: float) -> list[Mesh]:
    """One leg of `thick` width (at its head) from foot to head, in one of LEG_STYLES."""
    if style == "square":
        return [tapered_box(foot, head, thick / 2, thick / 2)]
    if style == "round":
        return [cylinder(foot, head, thick / 2, 10)]
    if style == "tapered square":
        return [tapered_box(foot, head, thick * TAPER / 2, thick / 2)]
    if style == "tapered round":
        return [frustum(foot, head, thick * TAPER / 2, thick / 2, 10)]
    return turned_leg(foot, head, thick / 2, rng)


def corner_spots(half_w: float, half_d: float, inset: float) -> list[tuple[float, float]]:
    """Leg positions under the corners of a rectangle: front-left, front-right, back-left, back-right."""
    return [(sx * (half_w - inset), sy * (half_d - inset)) for sy in (-1, 1) for sx in (-1, 1)]


def legs_at(rng, spots, top_z: float, thick: float, style: str, splay: float = 0.0) -> list[Mesh]:
    """A leg under each (x, y) spot from the floor to top_z, feet pushed outwards by `splay` (a share)."""
    parts = []
    for x, y in spots:
        parts += leg(rng, style, [x * (1 + splay), y * (1 + splay), 0.0], [x, y, top_z], thick)
    return parts


def leg_axis_at(x: float, y: float, top_z: float, splay: float, z: float) -> np.ndarray:
    """Where the axis of a leg made by legs_at crosses height z."""
    k = (1 + splay) + (z / top_z) * (1 - (1 + splay))
    return np.array([x * k, y * k, z])


def rails_between(spots, top_z: float, splay: float, z: float, thick: float, pairs) -> list[Mesh]:
    """Rails (stretchers, rungs) at height z between the legs of `spots` numbered by `pairs`."""
    axes = [leg_axis_at(x, y, top_z, splay, z) for x, y in spots]
    return [cylinder(axes[a], axes[b], thick / 2, 8) for a, b in pairs]


# Rails between the four corner legs of corner_spots: all round, or an H (two sides and a middle bar).
BOX_RAILS = ((0, 1), (2, 3), (0, 2), (1, 3))
SIDE_RAILS = ((0, 2), (1, 3))


def star_base(
    top_z: float, reach: float, arms: int, column: float, start: float, casters: bool
) -> list[Mesh]:
    """A swivel base: a column up to top_z and `arms` spokes dropping to their ends, casters under them
    (or glides), the first spoke at `start` radians from +X."""
    hub_z, end_z = 0.11, 0.06 if casters else 0.03
    parts = [cylinder([0, 0, hub_z - 0.03], [0, 0, top_z], column, 12)]
    for i in range(arms):
        a = start + 2 * np.pi * i / arms
        end = np.array([reach * np.cos(a), reach * np.sin(a), end_z])
        parts.append(cylinder([0, 0, hub_z - 0.015], end, 0.018, 8))
        parts.append(cylinder(end - [0, 0, end_z], end, 0.022 if casters else 0.015, 8))
    return parts
