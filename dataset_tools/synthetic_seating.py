"""Procedural seating of the kinds real furniture libraries hold and the first generator lacked: dining chairs
with tapered or turned legs and stretchers, sled, cantilever, folding and moulded-shell chairs, upholstered club,
wing and tub armchairs, office chairs on a five-arm star, bar stools with footrests, sofas and park benches.

Each builder takes a numpy Generator and returns a list of closed parts in metres, in synthetic.py's frame:
Z up, the seat's open side (the front) towards -Y, backrests on +Y. Backrests lean back by shearing (y grows
with height above the seat), which keeps every part closed and outward-facing.
"""

from __future__ import annotations

import numpy as np

from .mesh import Mesh
from .synthetic_parts import (
    BOX_RAILS,
    LEG_STYLES,
    SIDE_RAILS,
    THIN,
    arc_points,
    box,
    corner_spots,
    cylinder,
    hexahedron,
    legs_at,
    mirrored_x,
    rails_between,
    ring,
    rod,
    rod_path,
    sheared,
    star_base,
    sweep,
)


def _u(rng, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _lean(rng, lo_deg: float, hi_deg: float) -> float:
    """A backrest's lean as y per unit of height."""
    return float(np.tan(np.radians(rng.uniform(lo_deg, hi_deg))))


def _trapezoid_seat(w_front: float, w_back: float, d: float, z0: float, z1: float) -> Mesh:
    """A seat board wider at the front than at the back (dining chairs)."""
    corners = []
    for k in range(8):
        y = d / 2 if k & 2 else -d / 2
        half = (w_back if k & 2 else w_front) / 2
        corners.append([half if k & 1 else -half, y, z1 if k & 4 else z0])
    return hexahedron(corners)


# ---------------------------------------------------------------- backrests
BACK_STYLES = ("panel", "upholstered", "slats", "spindles", "ladder", "frame", "curved")


def chair_back(rng, style: str, w: float, y_back: float, z0: float, h: float) -> list[Mesh]:
    """An upright backrest over x in [-w/2, w/2] with its rear face at y_back, from z0 up h (lean it after)."""
    if style in ("panel", "upholstered"):
        t = _u(rng, 0.02, 0.04) if style == "panel" else _u(rng, 0.05, 0.1)
        bottom = z0 if style == "panel" or rng.random() < 0.5 else z0 + _u(rng, 0.05, 0.15)
        parts = [box([-w / 2, y_back - t, bottom], [w / 2, y_back, z0 + h])]
        if bottom > z0:  # an upholstered pad on two posts
            for sx in (-1, 1):
                parts.append(box([sx * w / 2 - 0.02, y_back - 0.03, z0], [sx * w / 2 + 0.02, y_back, bottom]))
        return parts
    if style == "curved":
        radius = _u(rng, 0.45, 0.9)
        half_angle = np.arcsin(min(0.95, w / 2 / radius))
        path = arc_points(radius, np.pi / 2 - half_angle, np.pi / 2 + half_angle, 7, [0, y_back - radius, z0])
        normals = (path - [0, y_back - radius, z0]) / radius
        return sweep(path, -normals, _u(rng, 0.02, 0.05), [0, 0, h])
    post = rod(rng, 0.02, 0.04)
    t = max(post, 0.02)
    parts = [
        box([sx * w / 2 - post / 2, y_back - t, z0], [sx * w / 2 + post / 2, y_back, z0 + h])
        for sx in (-1, 1)
    ]
    rail = _u(rng, 0.04, 0.1)
    parts.append(box([-w / 2, y_back - t, z0 + h - rail], [w / 2, y_back, z0 + h]))  # top rail
    if style == "slats":
        for k in range(int(rng.integers(1, 3))):
            z = z0 + h - rail - (k + 1) * h / 4
            parts.append(box([-w / 2, y_back - t, z - 0.04], [w / 2, y_back, z]))
    elif style == "spindles":
        count = int(rng.integers(2, 6))
        for k in range(count):
            x = -w / 2 + w * (k + 1) / (count + 1)
            parts.append(cylinder([x, y_back - t / 2, z0], [x, y_back - t / 2, z0 + h - rail], THIN / 2, 6))
    elif style == "ladder":
        for k in range(int(rng.integers(2, 4))):
            z = z0 + (h - rail) * (k + 1) / 4
            parts.append(box([-w / 2, y_back - t, z - 0.025], [w / 2, y_back, z]))
    else:  # frame: a low rail too
        parts.append(box([-w / 2, y_back - t, z0 + 0.06], [w / 2, y_back, z0 + 0.1]))
    return parts


# ---------------------------------------------------------------- chairs
def dining_chair(rng) -> list[Mesh]:
    """Four legs (square, round, tapered or turned), an optional cushion and stretchers, one of BACK_STYLES
    leaning back; a few with arms (carver chairs)."""
    w, d = _u(rng, 0.4, 0.52), _u(rng, 0.4, 0.52)
    back_w = w * _u(rng, 0.8, 1.0)
    seat_z, t = _u(rng, 0.42, 0.48), _u(rng, 0.025, 0.06)
    parts = [_trapezoid_seat(w, back_w, d, seat_z - t, seat_z)]
    if rng.random() < 0.35:  # a cushion on the board
        parts.append(
            box([-back_w / 2 + 0.02, -d / 2 + 0.02, seat_z], [back_w / 2 - 0.02, d / 2 - 0.04, seat_z + 0.04])
        )
    thick, style = rod(rng, 0.025, 0.045), str(rng.choice(LEG_STYLES))
    inset = thick / 2 + _u(rng, 0.0, 0.02)
    spots = [(sx * (w / 2 - inset), -(d / 2 - inset)) for sx in (-1, 1)]
    spots += [(sx * (back_w / 2 - inset), d / 2 - inset) for sx in (-1, 1)]
    splay = float(rng.choice([0.0, 0.0, 0.08]))
    parts += legs_at(rng, spots, seat_z - t, thick, style, splay)
    if rng.random() < 0.45:
        pairs = BOX_RAILS if rng.random() < 0.5 else SIDE_RAILS
        parts += rails_between(spots, seat_z - t, splay, _u(rng, 0.1, 0.22), max(THIN, thick * 0.6), pairs)
    back_h = _u(rng, 0.38, 0.55)
    back = chair_back(rng, str(rng.choice(BACK_STYLES)), back_w, d / 2, seat_z, back_h)
    parts += sheared(back, seat_z, _lean(rng, 0, 14))
    if rng.random() < 0.12:
        parts += _carver_arms(rng, w, d, seat_z)
    return parts


def _carver_arms(rng, w: float, d: float, seat_z: float) -> list[Mesh]:
    arm_z, arm_t = seat_z + _u(rng, 0.18, 0.26), _u(rng, 0.03, 0.05)
    parts = []
    for sx in (-1, 1):
        x = sx * (w / 2 - arm_t / 2)
        parts.append(box([x - arm_t / 2, -d / 2 + 0.02, arm_z - 0.03], [x + arm_t / 2, d / 2, arm_z]))
        parts.append(
            box([x - arm_t / 2, -d / 2 + 0.03, seat_z], [x + arm_t / 2, -d / 2 + 0.03 + arm_t, arm_z])
        )
    return parts


def sled_chair(rng) -> list[Mesh]:
    """A seat and back on two rod loops that run along the floor (a sled base)."""
    w, d = _u(rng, 0.42, 0.52), _u(rng, 0.42, 0.52)
    seat_z, t = _u(rng, 0.43, 0.47), _u(rng, 0.02, 0.06)
    r = _u(rng, 0.008, 0.014)
    parts = [box([-w / 2, -d / 2, seat_z - t], [w / 2, d / 2, seat_z])]
    back_h = _u(rng, 0.35, 0.5)
    style = str(rng.choice(["panel", "upholstered", "curved", "frame"]))
    parts += sheared(chair_back(rng, style, w, d / 2, seat_z, back_h), seat_z, _lean(rng, 4, 16))
    reach = _u(rng, 0.0, 0.04)
    for sx in (-1, 1):
        x = sx * (w / 2 - 0.03)
        loop = [
            [x, -d / 2 - reach, r],
            [x, -d / 2 + 0.04, seat_z - t - r],
            [x, d / 2 - 0.04, seat_z - t - r],
            [x, d / 2 + reach, r],
        ]
        parts += rod_path(loop, r, closed=True)
    return parts


def cantilever_chair(rng) -> list[Mesh]:
    """A tubular frame with no back legs: floor runners, the front bent up to the seat, on to the back."""
    w, d = _u(rng, 0.42, 0.5), _u(rng, 0.44, 0.54)
    seat_z, t = _u(rng, 0.44, 0.48), _u(rng, 0.02, 0.05)
    r, lean, back_h = _u(rng, 0.009, 0.015), _lean(rng, 5, 16), _u(rng, 0.35, 0.48)
    rear_foot = d / 2 * _u(rng, 0.1, 0.6)
    parts = [box([-w / 2, -d / 2, seat_z - t], [w / 2, d / 2, seat_z])]
    top = [d / 2 + lean * back_h, seat_z + back_h]
    for sx in (-1, 1):
        x = sx * (w / 2 - r)
        frame = [
            [x, rear_foot, r],
            [x, -d / 2 - 0.03, r],
            [x, -d / 2 - 0.03, seat_z - t - r],
            [x, d / 2 - 0.02, seat_z - t - r],
            [x, top[0], top[1]],
        ]
        parts += rod_path(frame, r)
    parts.append(cylinder([-w / 2 + r, rear_foot, r], [w / 2 - r, rear_foot, r], r, 8))
    back_bottom = seat_z + _u(rng, 0.05, 0.15)
    panel = box([-w / 2 + r, d / 2 - 0.03, back_bottom], [w / 2 - r, d / 2, seat_z + back_h])
    parts += sheared([panel], seat_z, lean)
    if rng.random() < 0.25:  # tubular arms: from the back posts forward and down to the seat
        arm_z = seat_z + _u(rng, 0.18, 0.24)
        for sx in (-1, 1):
            x = sx * (w / 2 - r)
            arm = [
                [x, d / 2 + lean * (arm_z - seat_z), arm_z],
                [x, -d / 2 + 0.05, arm_z],
                [x, -d / 2 + 0.05, seat_z],
            ]
            parts += rod_path(arm, r)
    return parts


def folding_chair(rng) -> list[Mesh]:
    """Two crossed rods a side (an X seen from the side), a slatted or board seat and a short back board."""
    w, d = _u(rng, 0.4, 0.48), _u(rng, 0.4, 0.48)
    seat_z, r = _u(rng, 0.43, 0.47), _u(rng, 0.009, 0.016)
    lean, back_h = _lean(rng, 6, 16), _u(rng, 0.3, 0.42)
    parts = []
    slats = int(rng.integers(1, 5))
    for k in range(slats):  # slats along x, or one board
        y0 = -d / 2 + d * k / slats
        parts.append(
            box([-w / 2 + r, y0 + 0.005, seat_z - 0.025], [w / 2 - r, y0 + d / slats - 0.005, seat_z])
        )
    for sx in (-1, 1):
        x = sx * w / 2
        post_top = [x, d / 2 + lean * back_h, seat_z + back_h]
        parts += rod_path([[x, -d / 2 - 0.02, r], [x, d / 2, seat_z], post_top], r)
        parts += rod_path([[x, d / 2 + 0.04, r], [x, -d / 2 + 0.02, seat_z - 0.02]], r)
    for y in (-d / 2 - 0.02, d / 2 + 0.04):  # floor bars
        parts.append(cylinder([-w / 2, y, r], [w / 2, y, r], r, 8))
    board_h = _u(rng, 0.1, 0.2)
    board = box([-w / 2, d / 2 - 0.02, seat_z + back_h - board_h], [w / 2, d / 2, seat_z + back_h])
    return parts + sheared([board], seat_z, lean)


def shell_chair(rng) -> list[Mesh]:
    """A moulded seat-and-back shell (a side profile swept across the width) on splayed legs, a wire base,
    a tulip pedestal or a four- or five-arm swivel star."""
    w, d = _u(rng, 0.44, 0.52), _u(rng, 0.42, 0.5)
    seat_z, lean, back_h = _u(rng, 0.42, 0.46), _lean(rng, 8, 20), _u(rng, 0.32, 0.45)
    back_w = w * _u(rng, 0.8, 1.05)
    profile = np.array(
        [
            [-d / 2, seat_z - 0.04],
            [-d / 2 + 0.05, seat_z],
            [d / 2 - 0.14, seat_z - 0.015],
            [d / 2 - 0.03, seat_z + 0.07],
            [d / 2 + lean * back_h * 0.5, seat_z + back_h * 0.55],
            [d / 2 + lean * back_h, seat_z + back_h],
        ]
    )
    widths = np.array([w, w, w, (w + back_w) / 2, back_w, back_w * 0.95])
    tangent = np.gradient(profile, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)  # below the seat, behind the back
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    path = np.stack([-widths / 2, profile[:, 0], profile[:, 1]], axis=1)
    normals = np.stack([0 * widths, normal[:, 0], normal[:, 1]], axis=1)
    across = np.stack([widths, 0 * widths, 0 * widths], axis=1)
    parts = sweep(path, normals, _u(rng, 0.012, 0.025), across)
    under = seat_z - 0.03
    base = rng.random()
    if base < 0.4:  # four splayed wooden legs
        spots = corner_spots(w / 2 - 0.04, d / 2 - 0.06, 0.0)
        parts += legs_at(rng, spots, under, _u(rng, 0.025, 0.04), str(rng.choice(LEG_STYLES[:4])), 0.15)
    elif base < 0.6:  # a wire base: four rods and a cross
        spots = corner_spots(w / 2 - 0.03, d / 2 - 0.05, 0.0)
        parts += legs_at(rng, spots, under, 2 * THIN, "round", 0.1)
        parts += rails_between(spots, under, 0.1, under * 0.45, THIN, ((0, 3), (1, 2)))
    elif base < 0.8:  # tulip pedestal
        parts.append(cylinder([0, 0, 0], [0, 0, under], _u(rng, 0.025, 0.045), 12))
        parts.append(cylinder([0, 0, 0], [0, 0, 0.025], _u(rng, 0.2, 0.26), 24))
    else:
        parts += star_base(under, _u(rng, 0.26, 0.32), int(rng.choice([4, 5])), 0.025, _u(rng, 0, 1.2), False)
    return parts


# ---------------------------------------------------------------- upholstered
def _short_feet(rng, half_w: float, half_d: float, foot_h: float) -> list[Mesh]:
    style = str(rng.choice(["square", "round", "tapered square", "tapered round"]))
    thick = _u(rng, 0.03, 0.06)
    return legs_at(rng, corner_spots(half_w, half_d, thick / 2 + 0.02), foot_h, thick, style, 0.0)


def _upholstered_back(
    rng, w: float, d: float, y0: float, z0: float, seat_top: float, back_top: float, lean: float
):
    """A thick back from y0 to the rear and from z0 up: straight below the seat, leaning back above it, with
    an optional loose cushion in front."""
    parts = [box([-w / 2, y0, z0], [w / 2, d / 2, seat_top])]
    upper = [box([-w / 2, y0, seat_top], [w / 2, d / 2, back_top])]
    if rng.random() < 0.5:
        upper.append(
            box([-w / 2 + 0.02, y0 - _u(rng, 0.08, 0.14), seat_top], [w / 2 - 0.02, y0, back_top - 0.06])
        )
    return parts + sheared(upper, seat_top, lean)


def club_armchair(rng) -> list[Mesh]:
    """A box armchair: seat base and cushion, thick arms (some rolled), a thick leaning back, on a plinth or
    short feet; a fifth of the tall ones are wing chairs."""
    w, d = _u(rng, 0.7, 1.0), _u(rng, 0.7, 0.95)
    foot_h = 0.0 if rng.random() < 0.35 else _u(rng, 0.05, 0.16)
    base_top = foot_h + _u(rng, 0.15, 0.25)
    seat_top = max(base_top + 0.08, _u(rng, 0.4, 0.48))
    arm_w, arm_top = _u(rng, 0.09, 0.22), _u(rng, 0.55, 0.7)
    rolled = rng.random() < 0.3
    # The back stands clear above the arms (a rolled arm's roll included): real armchairs' highest part.
    back_t = _u(rng, 0.12, 0.25)
    back_top = max(_u(rng, 0.75, 1.05), arm_top + 0.6 * arm_w * rolled + 0.1)
    lean = _lean(rng, 0, 14)
    inner = w / 2 - arm_w
    parts = [
        box([-inner, -d / 2, foot_h], [inner, d / 2, base_top]),
        box([-inner, -d / 2 + 0.01, base_top], [inner, d / 2 - back_t, seat_top]),
    ]
    parts += _upholstered_back(rng, w, d, d / 2 - back_t, foot_h, seat_top, back_top, lean)
    arm_front = -d / 2 + _u(rng, 0.0, 0.06)
    for sx in (-1, 1):
        x0, x1 = sorted((sx * w / 2, sx * inner))
        parts.append(box([x0, arm_front, foot_h], [x1, d / 2, arm_top]))
        if rolled:
            parts.append(
                cylinder(
                    [(x0 + x1) / 2, arm_front, arm_top], [(x0 + x1) / 2, d / 2, arm_top], arm_w * 0.6, 12
                )
            )
    if back_top > 0.9 and rng.random() < 0.2:  # wings
        depth = _u(rng, 0.2, 0.3)
        wings = [
            box(
                [sx * w / 2 - 0.03, d / 2 - back_t - depth, arm_top],
                [sx * w / 2 + 0.03, d / 2 - back_t, back_top - 0.04],
            )
            for sx in (-1, 1)
        ]
        parts += sheared(wings, seat_top, lean)
    if foot_h > 0:
        parts += _short_feet(rng, w / 2, d / 2, foot_h)
    return parts


def tub_chair(rng) -> list[Mesh]:
    """A round seat inside a curved wall that is high at the back and lower at the arms."""
    radius = _u(rng, 0.33, 0.45)
    foot_h = 0.0 if rng.random() < 0.4 else _u(rng, 0.05, 0.15)
    seat_top, arm_top = _u(rng, 0.4, 0.47), _u(rng, 0.55, 0.68)
    back_top = max(arm_top + 0.05, _u(rng, 0.68, 0.9))
    wall = _u(rng, 0.06, 0.14)
    angles = np.linspace(np.radians(-20), np.radians(200), 12)
    path = arc_points(radius - wall, angles[0], angles[-1], len(angles), [0, 0, foot_h])
    heights = arm_top + (back_top - arm_top) * np.clip(np.sin(angles), 0, 1) ** 2 - foot_h
    across = np.stack([0 * heights, 0 * heights, heights], axis=1)
    normals = (path - [0, 0, foot_h]) / (radius - wall)
    parts = sweep(path, normals, wall, across)
    parts.append(cylinder([0, 0, foot_h], [0, 0, seat_top], radius - wall / 2, 24))
    if foot_h > 0:
        if rng.random() < 0.5:
            parts += _short_feet(rng, radius * 0.75, radius * 0.75, foot_h)
        else:  # swivel disc
            parts.append(cylinder([0, 0, 0], [0, 0, foot_h], _u(rng, 0.04, 0.08), 12))
            parts.append(cylinder([0, 0, 0], [0, 0, 0.02], radius * 0.7, 24))
    return parts


def sofa(rng) -> list[Mesh]:
    """A sofa of 2-3 seat cushions between arms (or none), a thick back with loose cushions on some, on a
    plinth or short feet; a few with a chaise end."""
    w, d = _u(rng, 1.4, 2.4), _u(rng, 0.78, 1.0)
    foot_h = 0.0 if rng.random() < 0.35 else _u(rng, 0.05, 0.15)
    base_top = foot_h + _u(rng, 0.15, 0.25)
    seat_top = max(base_top + 0.08, _u(rng, 0.4, 0.48))
    arm_w, arm_top = _u(rng, 0.1, 0.25), _u(rng, 0.55, 0.7)
    back_t, back_top = _u(rng, 0.15, 0.3), max(_u(rng, 0.7, 0.95), arm_top + 0.1)
    arms = 0 if rng.random() < 0.1 else 2
    inner = w / 2 - arm_w * (arms > 0)
    parts = [box([-inner, -d / 2, foot_h], [inner, d / 2, base_top])]
    seats = 2 if w < 1.9 else 3
    for k in range(seats):
        x0 = -inner + 2 * inner * k / seats
        parts.append(
            box(
                [x0 + 0.005, -d / 2 + 0.01, base_top],
                [x0 + 2 * inner / seats - 0.005, d / 2 - back_t, seat_top],
            )
        )
    lean = _lean(rng, 0, 12)
    parts.append(box([-w / 2, d / 2 - back_t, foot_h], [w / 2, d / 2, seat_top]))
    upper = [box([-w / 2, d / 2 - back_t, seat_top], [w / 2, d / 2, back_top])]
    if rng.random() < 0.6:
        for k in range(seats):
            x0 = -inner + 2 * inner * k / seats
            cushion_t = _u(rng, 0.1, 0.16)
            upper.append(
                box(
                    [x0 + 0.01, d / 2 - back_t - cushion_t, seat_top],
                    [x0 + 2 * inner / seats - 0.01, d / 2 - back_t, back_top - 0.05],
                )
            )
    parts += sheared(upper, seat_top, lean)
    for sx in (-1, 1) if arms else ():
        x0, x1 = sorted((sx * w / 2, sx * inner))
        parts.append(box([x0, -d / 2, foot_h], [x1, d / 2, arm_top]))
    if w > 1.8 and rng.random() < 0.25:  # a chaise end on one side, reaching forward (wider than deep still)
        length = _u(rng, 0.4, min(0.8, w - d - 0.1))
        chaise = [box([inner - 0.7, -d / 2 - length, foot_h], [w / 2, -d / 2 + 0.01, seat_top])]
        parts += chaise if rng.random() < 0.5 else mirrored_x(chaise)
    if foot_h > 0:
        parts += _short_feet(rng, w / 2, d / 2, foot_h)
    return parts


# ---------------------------------------------------------------- office chairs and stools
def office_chair(rng) -> list[Mesh]:
    """A cushioned seat on a gas column and a five-arm star with casters, a leaning back panel on a spine
    (some with a headrest), T-shaped armrests on most."""
    w, d = _u(rng, 0.45, 0.53), _u(rng, 0.42, 0.5)
    seat_z, t = _u(rng, 0.44, 0.52), _u(rng, 0.05, 0.1)
    mech_z = seat_z - t - 0.05
    parts = [
        box([-w / 2, -d / 2, seat_z - t], [w / 2, d / 2, seat_z]),
        box([-0.1, -0.1, mech_z], [0.1, 0.1, seat_z - t]),
    ]
    parts += star_base(mech_z, _u(rng, 0.28, 0.34), 5, _u(rng, 0.022, 0.032), _u(rng, 0, 1.2), True)
    back_w, lean = w * _u(rng, 0.8, 1.0), _lean(rng, 5, 15)
    gap = _u(rng, 0.04, 0.16) if rng.random() < 0.6 else 0.0
    back_top = seat_z + _u(rng, 0.42, 0.72)
    back_t = _u(rng, 0.04, 0.08)
    back = [box([-back_w / 2, d / 2 - back_t, seat_z + gap], [back_w / 2, d / 2, back_top])]
    if gap > 0:  # the spine from under the seat up to the back
        back.append(box([-0.03, d / 2 - 0.02, seat_z - t], [0.03, d / 2 + 0.02, seat_z + gap + 0.05]))
        parts.append(box([-0.03, 0.0, seat_z - t - 0.03], [0.03, d / 2 + 0.02, seat_z - t]))
    if rng.random() < 0.2:  # headrest on a stem
        head_w = back_w * 0.6
        back.append(box([-0.015, d / 2 - 0.03, back_top], [0.015, d / 2, back_top + 0.06]))
        back.append(box([-head_w / 2, d / 2 - 0.06, back_top + 0.06], [head_w / 2, d / 2, back_top + 0.16]))
    parts += sheared(back, seat_z, lean)
    if rng.random() < 0.7:
        arm_z, pad = seat_z + _u(rng, 0.18, 0.26), _u(rng, 0.22, 0.3)
        for sx in (-1, 1):
            x = sx * (w / 2 + 0.02)
            parts.append(box([x - 0.015, -0.02, seat_z - t - 0.02], [x + 0.015, 0.04, arm_z]))
            parts.append(
                box(
                    [min(x, 0) - 0.03 * (sx < 0), -0.02, seat_z - t - 0.02],
                    [max(x, 0) + 0.03 * (sx > 0), 0.04, seat_z - t],
                )
            )
            parts.append(box([x - 0.035, 0.01 - pad / 2, arm_z], [x + 0.035, 0.01 + pad / 2, arm_z + 0.03]))
    return parts


def bar_stool(rng) -> list[Mesh]:
    """A high round or square seat on splayed legs with a footrest ring or rungs, or on a pedestal with a
    ring; a third with a low back."""
    r, seat_z, t = _u(rng, 0.16, 0.21), _u(rng, 0.6, 0.82), _u(rng, 0.03, 0.08)
    round_seat = rng.random() < 0.6
    parts = [
        cylinder([0, 0, seat_z - t], [0, 0, seat_z], r, 24)
        if round_seat
        else box([-r, -r, seat_z - t], [r, r, seat_z])
    ]
    foot_z = _u(rng, 0.22, 0.35)
    if rng.random() < 0.7:  # legs
        count, splay = int(rng.choice([3, 4, 4])), _u(rng, 0.05, 0.3)
        thick = rod(rng, 0.02, 0.04)
        start = np.pi / 4 if count == 4 else _u(rng, 0, 2 * np.pi)
        inset = r - thick / 2 - 0.01
        spots = [
            (inset * np.cos(start + 2 * np.pi * i / count), inset * np.sin(start + 2 * np.pi * i / count))
            for i in range(count)
        ]
        parts += legs_at(rng, spots, seat_z - t, thick, str(rng.choice(LEG_STYLES)), splay)
        reach = inset * (1 + splay * (1 - foot_z / (seat_z - t)))
        if rng.random() < 0.5:
            parts += ring([0, 0, foot_z], reach, _u(rng, 0.008, 0.014))
        else:
            pairs = [(i, (i + 1) % count) for i in range(count)]
            parts += rails_between(spots, seat_z - t, splay, foot_z, max(THIN, thick * 0.6), pairs)
    else:  # pedestal
        parts.append(cylinder([0, 0, 0], [0, 0, seat_z - t], _u(rng, 0.022, 0.04), 12))
        parts.append(cylinder([0, 0, 0], [0, 0, _u(rng, 0.02, 0.04)], _u(rng, 0.17, 0.24), 24))
        reach = _u(rng, 0.14, 0.2)
        parts += ring([0, 0, foot_z], reach, _u(rng, 0.008, 0.014))
        for a in (0.0, np.pi):
            parts.append(cylinder([0, 0, foot_z], [reach * np.cos(a), reach * np.sin(a), foot_z], 0.01, 6))
    if rng.random() < 0.35:  # a low back on two posts
        back_h, post = _u(rng, 0.18, 0.35), _u(rng, 0.015, 0.025)
        y = r * 0.85
        back = [
            box([sx * r * 0.7 - post, y - post, seat_z], [sx * r * 0.7 + post, y + post, seat_z + back_h])
            for sx in (-1, 1)
        ]
        back.append(
            box([-r, y - 0.02, seat_z + back_h - _u(rng, 0.05, 0.12)], [r, y + 0.02, seat_z + back_h])
        )
        parts += sheared(back, seat_z, _lean(rng, 0, 10))
    return parts


# ---------------------------------------------------------------- benches
def park_bench(rng) -> list[Mesh]:
    """A slatted seat and leaning slatted back on two or three side frames (front leg, rear leg continued
    as the back support), armrests on half."""
    w, d = _u(rng, 1.2, 1.9), _u(rng, 0.4, 0.55)
    seat_z, lean, back_h = _u(rng, 0.4, 0.47), _lean(rng, 10, 22), _u(rng, 0.35, 0.5)
    slats, slat_t = int(rng.integers(3, 7)), _u(rng, 0.025, 0.04)
    parts = []
    for k in range(slats):
        y0 = -d / 2 + d * k / slats
        parts.append(box([-w / 2, y0 + 0.006, seat_z - slat_t], [w / 2, y0 + d / slats - 0.006, seat_z]))
    back = []
    boards = int(rng.integers(2, 5))
    for k in range(boards):
        z0 = seat_z + 0.1 + (back_h - 0.1) * k / boards
        back.append(
            box([-w / 2, d / 2 - 0.03, z0 + 0.01], [w / 2, d / 2, z0 + (back_h - 0.1) / boards - 0.01])
        )
    frame_w, frame_t = _u(rng, 0.03, 0.05), _u(rng, 0.04, 0.07)
    inset = _u(rng, 0.05, 0.15)
    frames = [-w / 2 + inset, w / 2 - inset] + ([0.0] if w > 1.5 and rng.random() < 0.5 else [])
    arm_z = seat_z + _u(rng, 0.2, 0.26) if rng.random() < 0.5 else None
    for x in frames:
        x0, x1 = x - frame_w / 2, x + frame_w / 2
        parts.append(box([x0, -d / 2 + 0.03, 0], [x1, -d / 2 + 0.03 + frame_t, seat_z - slat_t]))  # front leg
        parts.append(box([x0, d / 2 - frame_t, 0], [x1, d / 2, seat_z]))  # rear leg
        parts.append(
            box([x0, -d / 2 + 0.03, seat_z - slat_t - 0.05], [x1, d / 2, seat_z - slat_t])
        )  # seat rail
        back.append(box([x0, d / 2 - frame_t, seat_z], [x1, d / 2, seat_z + back_h]))  # back support
        if arm_z is not None and x != 0.0:
            parts.append(box([x0, -d / 2, arm_z - 0.04], [x1, d / 2 + lean * (arm_z - seat_z), arm_z]))
            parts.append(box([x0, -d / 2 + 0.03, seat_z], [x1, -d / 2 + 0.03 + frame_t, arm_z]))
    return parts + sheared(back, seat_z, lean)


# kind -> (builder, ShapeNet category, weight within the new family). The weights, with the first
# generator's kinds beside them (synthetic.py), follow what real libraries hold: about half chairs (a fifth of
# them upholstered), a third tables, sofas and benches.
SEATING = {
    "dining chair": (dining_chair, "chair", 7),
    "sled chair": (sled_chair, "chair", 2),
    "cantilever chair": (cantilever_chair, "chair", 2),
    "folding chair": (folding_chair, "chair", 1),
    "shell chair": (shell_chair, "chair", 2),
    "club armchair": (club_armchair, "chair", 7),
    "tub chair": (tub_chair, "chair", 2),
    "office chair": (office_chair, "chair", 4),
    "bar stool": (bar_stool, "chair", 4),
    "sofa": (sofa, "sofa", 9),
    "park bench": (park_bench, "bench", 3),
}
