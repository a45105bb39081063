"""Procedural tables of the kinds real furniture libraries hold and the first generator lacked: dining tables
with aprons, tapered or turned legs and stretchers, low coffee tables, desks with drawer pedestals, side
panels and modesty panels, trestle tables and small side tables (nightstands, which Sweet Home 3D's libraries
also file under tables).

Each builder takes a numpy Generator and returns a list of closed parts in metres (Z up, front towards -Y:
the side a desk is sat at).
"""

from __future__ import annotations

import numpy as np

from .mesh import Mesh
from .synthetic_parts import (
    BOX_RAILS,
    LEG_STYLES,
    SIDE_RAILS,
    THIN,
    box,
    corner_spots,
    cylinder,
    legs_at,
    mirrored_x,
    rails_between,
    rod_path,
    tapered_box,
)


def _u(rng, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _top(rng, shape: str, half_w: float, half_d: float, z: float, t: float) -> list[Mesh]:
    """A table top: a slab, a disc (radius half_w), or an oval (a slab with round ends)."""
    if shape == "round":
        return [cylinder([0, 0, z - t], [0, 0, z], half_w, 32)]
    if shape == "oval":
        r = half_d
        return [
            box([-half_w + r, -half_d, z - t], [half_w - r, half_d, z]),
            cylinder([-half_w + r, 0, z - t], [-half_w + r, 0, z], r, 24),
            cylinder([half_w - r, 0, z - t], [half_w - r, 0, z], r, 24),
        ]
    return [box([-half_w, -half_d, z - t], [half_w, half_d, z])]


def _aprons(half_w: float, half_d: float, z: float, height: float, t: float = 0.02) -> list[Mesh]:
    """Four boards under a top, between (and over) the legs, their outer faces at half_w, half_d."""
    return [
        box([-half_w, -half_d, z - height], [half_w, -half_d + t, z]),
        box([-half_w, half_d - t, z - height], [half_w, half_d, z]),
        box([-half_w, -half_d, z - height], [-half_w + t, half_d, z]),
        box([half_w - t, -half_d, z - height], [half_w, half_d, z]),
    ]


def dining_table(rng) -> list[Mesh]:
    """A rectangular, oval or round top on four (or six) legs of any LEG_STYLES, an apron on most,
    stretchers on some."""
    shape = str(rng.choice(["rect", "rect", "rect", "rect", "rect", "round", "oval"]))
    top_z, t = _u(rng, 0.72, 0.78), _u(rng, 0.02, 0.05)
    if shape == "round":
        half_w = half_d = _u(rng, 0.5, 0.65)
        leg_w, leg_d = half_w / np.sqrt(2), half_d / np.sqrt(2)
    else:
        half_w, half_d = _u(rng, 0.6, 1.0), _u(rng, 0.38, 0.5)
        leg_w, leg_d = half_w - (half_d if shape == "oval" else 0.0) * 0.5, half_d
    parts = _top(rng, shape, half_w, half_d, top_z, t)
    thick, style = _u(rng, 0.04, 0.09), str(rng.choice(LEG_STYLES))
    inset = thick / 2 + _u(rng, 0.02, 0.15)
    spots = corner_spots(leg_w, leg_d, inset)
    splay = float(rng.choice([0.0, 0.0, 0.0, 0.1]))
    under = top_z - t
    parts += legs_at(rng, spots, under, thick, style, splay)
    if shape == "rect" and half_w > 0.85 and rng.random() < 0.3:  # a middle pair on long tables
        parts += legs_at(rng, [(0.0, -(leg_d - inset)), (0.0, leg_d - inset)], under, thick, style, splay)
    if rng.random() < 0.7:
        parts += _aprons(leg_w - inset + thick / 2, leg_d - inset + thick / 2, under, _u(rng, 0.06, 0.12))
    if rng.random() < 0.25:
        pairs = BOX_RAILS if rng.random() < 0.5 else SIDE_RAILS
        parts += rails_between(spots, under, splay, _u(rng, 0.1, 0.2), max(THIN, thick * 0.5), pairs)
    return parts


def coffee_table(rng) -> list[Mesh]:
    """A low top (rectangular, square or round) on legs with a shelf under, on slab ends, on a solid block,
    or on tubular sled frames."""
    shape = str(rng.choice(["rect", "rect", "rect", "square", "round"]))
    top_z, t = _u(rng, 0.3, 0.46), _u(rng, 0.02, 0.08)
    if shape == "round":
        half_w = half_d = _u(rng, 0.4, 0.55)
    elif shape == "square":
        half_w = half_d = _u(rng, 0.35, 0.55)
    else:
        half_w, half_d = _u(rng, 0.4, 0.7), _u(rng, 0.23, 0.4)
    parts = _top(rng, shape, half_w, half_d, top_z, t)
    under = top_z - t
    leg_w, leg_d = (half_w / np.sqrt(2), half_d / np.sqrt(2)) if shape == "round" else (half_w, half_d)
    base = rng.random()
    if base < 0.5:  # legs, a shelf under half of them
        thick = _u(rng, 0.03, 0.08)
        inset = thick / 2 + _u(rng, 0.0, 0.06)
        parts += legs_at(rng, corner_spots(leg_w, leg_d, inset), under, thick, str(rng.choice(LEG_STYLES)))
        if rng.random() < 0.5:
            z = _u(rng, 0.06, 0.15)
            parts.append(box([-leg_w + inset, -leg_d + inset, z], [leg_w - inset, leg_d - inset, z + 0.02]))
    elif base < 0.7 and shape != "round":  # slab ends
        slab = _u(rng, 0.03, 0.08)
        for sx in (-1, 1):
            x = sx * (half_w - _u(rng, 0.0, 0.08) - slab / 2)
            parts.append(box([x - slab / 2, -half_d + 0.02, 0], [x + slab / 2, half_d - 0.02, under]))
    elif base < 0.85:  # a solid block
        inset = _u(rng, 0.04, 0.15)
        block = [box([-leg_w + inset, -leg_d + inset, 0], [leg_w - inset, leg_d - inset, under])]
        parts += block if shape != "round" else [cylinder([0, 0, 0], [0, 0, under], half_w - inset, 24)]
    else:  # two tubular frames (sled)
        r = _u(rng, 0.008, 0.014)
        for sx in (-1, 1):
            x = sx * (leg_w - 0.04)
            loop = [
                [x, -leg_d + 0.03, r],
                [x, -leg_d + 0.03, under - r],
                [x, leg_d - 0.03, under - r],
                [x, leg_d - 0.03, r],
            ]
            parts += rod_path(loop, r, closed=True)
    return parts


def _drawer_block(x0: float, x1: float, half_d: float, z0: float, z1: float) -> Mesh:
    """A pedestal of drawers: a block from x0 to x1, its front a little behind the top's front edge."""
    return box([x0, -half_d + 0.02, z0], [x1, half_d - 0.01, z1])


def desk(rng) -> list[Mesh]:
    """A desk top on one or two drawer pedestals, side panels or legs, a modesty panel at the back (+Y, away
    from the person sitting at the front), and a shelf riser on some."""
    half_w, half_d = _u(rng, 0.5, 0.9), _u(rng, 0.28, 0.4)
    top_z, t = _u(rng, 0.72, 0.78), _u(rng, 0.025, 0.045)
    under = top_z - t
    parts = _top(rng, "rect", half_w, half_d, top_z, t)
    block_w, slab = _u(rng, 0.35, 0.45), _u(rng, 0.025, 0.05)
    plinth = _u(rng, 0.0, 0.1) if rng.random() < 0.5 else 0.0
    layout = str(rng.choice(["two pedestals", "pedestal", "pedestal", "panels", "legs"]))
    modesty = layout in ("two pedestals", "panels") or rng.random() < 0.5
    right: list[Mesh] = [_drawer_block(half_w - 0.02 - block_w, half_w - 0.02, half_d, plinth, under)]
    if plinth > 0:  # the pedestal on four short feet
        centre = half_w - 0.02 - block_w / 2
        feet = [(centre + x, y) for x, y in corner_spots(block_w / 2, half_d - 0.03, 0.03)]
        right += legs_at(rng, feet, plinth, 0.04, "square")
    side_panel = [box([-half_w + 0.02, -half_d + 0.02, 0], [-half_w + 0.02 + slab, half_d - 0.01, under])]
    if layout == "two pedestals":
        parts += right + mirrored_x(right)
    elif layout == "pedestal":
        if rng.random() < 0.5:
            other = side_panel
        else:
            other = legs_at(
                rng,
                [(-half_w + 0.06, -half_d + 0.06), (-half_w + 0.06, half_d - 0.06)],
                under,
                0.045,
                "square",
            )
        placed = right + other
        parts += placed if rng.random() < 0.5 else mirrored_x(placed)
    elif layout == "panels":
        parts += side_panel + mirrored_x(side_panel)
        if rng.random() < 0.5:  # a drawer under the top
            parts.append(box([-0.3, -half_d + 0.03, under - 0.12], [0.3, half_d - 0.05, under]))
    else:  # legs and a drawer apron across the front
        thick = _u(rng, 0.035, 0.06)
        parts += legs_at(
            rng, corner_spots(half_w, half_d, thick / 2 + 0.02), under, thick, str(rng.choice(LEG_STYLES))
        )
        parts.append(
            box(
                [-half_w + 0.04, -half_d + 0.03, under - _u(rng, 0.1, 0.15)],
                [half_w - 0.04, half_d - 0.03, under],
            )
        )
    if modesty:
        low = _u(rng, 0.25, 0.45)
        parts.append(box([-half_w + 0.03, half_d - 0.04, low], [half_w - 0.03, half_d - 0.02, under]))
    if rng.random() < 0.15:  # a shelf riser at the back of the top
        rise, depth = _u(rng, 0.2, 0.4), _u(rng, 0.2, 0.3)
        for sx in (-1, 1):
            parts.append(
                box(
                    [sx * half_w - 0.02 * (sx > 0), half_d - depth, top_z],
                    [sx * half_w + 0.02 * (sx < 0), half_d, top_z + rise],
                )
            )
        parts.append(box([-half_w, half_d - depth, top_z + rise - 0.02], [half_w, half_d, top_z + rise]))
    return parts


def trestle_table(rng) -> list[Mesh]:
    """A long top on two end supports: A-shaped trestles, T-feet (a post on a foot beam) with a stretcher,
    or slab ends."""
    half_w, half_d = _u(rng, 0.7, 1.1), _u(rng, 0.35, 0.5)
    top_z, t = _u(rng, 0.72, 0.78), _u(rng, 0.03, 0.06)
    under = top_z - t
    parts = _top(rng, "rect", half_w, half_d, top_z, t)
    ends = [sx * (half_w - _u(rng, 0.15, 0.3)) for sx in (-1, 1)]
    style = str(rng.choice(["trestle", "t-foot", "slab"]))
    beam = _u(rng, 0.04, 0.07)
    for x in ends:
        if style == "trestle":
            for sy in (-1, 1):
                parts.append(
                    tapered_box(
                        [x, sy * half_d * 0.85, 0], [x, sy * half_d * 0.35, under], beam / 2, beam / 2
                    )
                )
            parts.append(
                box([x - beam / 2, -half_d * 0.8, under - 0.06], [x + beam / 2, half_d * 0.8, under])
            )
            z = _u(rng, 0.12, 0.3)
            spread = half_d * (0.85 - 0.5 * z / under)
            parts.append(box([x - beam / 2, -spread, z - 0.03], [x + beam / 2, spread, z]))
        elif style == "t-foot":
            post = _u(rng, 0.06, 0.12)
            parts.append(
                box([x - beam / 2, -half_d * 0.8, 0], [x + beam / 2, half_d * 0.8, _u(rng, 0.05, 0.1)])
            )
            parts.append(box([x - post / 2, -post / 2, 0], [x + post / 2, post / 2, under]))
            parts.append(
                box([x - beam / 2, -half_d * 0.8, under - 0.06], [x + beam / 2, half_d * 0.8, under])
            )
        else:
            parts.append(
                box([x - beam / 2, -half_d + _u(rng, 0.03, 0.12), 0], [x + beam / 2, half_d - 0.05, under])
            )
    if style != "trestle" and rng.random() < 0.7:  # a stretcher between the ends
        z = _u(rng, 0.15, 0.45)
        parts.append(box([ends[0], -0.03, z - 0.05], [ends[1], 0.03, z]))
    return parts


def side_table(rng) -> list[Mesh]:
    """A nightstand or side table: a closed cabinet, a drawer over an open niche, or a small table with a
    drawer under the top; on short legs or a plinth."""
    half_w, half_d, h = _u(rng, 0.19, 0.3), _u(rng, 0.16, 0.25), _u(rng, 0.45, 0.7)
    legs_h = 0.0 if rng.random() < 0.4 else _u(rng, 0.08, 0.2)
    style = str(rng.choice(["cabinet", "cabinet", "niche", "table"]))
    parts = []
    if style == "table":
        top_t, thick = _u(rng, 0.02, 0.04), _u(rng, 0.025, 0.045)
        parts.append(box([-half_w, -half_d, h - top_t], [half_w, half_d, h]))
        parts += legs_at(
            rng, corner_spots(half_w, half_d, thick / 2 + 0.01), h - top_t, thick, str(rng.choice(LEG_STYLES))
        )
        parts.append(
            box(
                [-half_w + 0.02, -half_d + 0.02, h - top_t - _u(rng, 0.1, 0.15)],
                [half_w - 0.02, half_d - 0.02, h - top_t],
            )
        )
        if rng.random() < 0.5:
            parts.append(box([-half_w + 0.02, -half_d + 0.02, 0.1], [half_w - 0.02, half_d - 0.02, 0.12]))
        return parts
    if style == "cabinet":
        parts.append(box([-half_w, -half_d, legs_h], [half_w, half_d, h]))
    else:  # panels around an open niche under a drawer
        panel, drawer_h = 0.02, _u(rng, 0.12, 0.2)
        parts += [
            box([-half_w, -half_d, h - drawer_h], [half_w, half_d, h]),  # top and drawer
            box([-half_w, -half_d, legs_h], [half_w, half_d, legs_h + panel]),  # bottom
            box([-half_w, -half_d, legs_h], [-half_w + panel, half_d, h]),
            box([half_w - panel, -half_d, legs_h], [half_w, half_d, h]),
            box([-half_w, half_d - panel, legs_h], [half_w, half_d, h]),  # back
        ]
    if legs_h > 0:
        thick = _u(rng, 0.025, 0.05)
        style = str(rng.choice(LEG_STYLES[:4]))
        parts += legs_at(rng, corner_spots(half_w, half_d, thick / 2 + 0.01), legs_h, thick, style)
    return parts


# kind -> (builder, ShapeNet category, weight within the new family); see synthetic_seating.SEATING.
TABLES = {
    "dining table": (dining_table, "table", 5),
    "coffee table": (coffee_table, "table", 6),
    "desk": (desk, "table", 6),
    "trestle table": (trestle_table, "table", 3),
    "side table": (side_table, "table", 2),
}
