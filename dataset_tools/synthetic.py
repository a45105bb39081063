"""Procedural chairs, armchairs, stools, sofas, benches, tables and desks built from simple closed parts
(numpy only).

Every model is made in the canonical frame directly: Z up, the front (the side one sits down from, the
seat's opening; the side a desk is sat at) towards -Y, so a backrest is always on the +Y side. Parts are closed
triangle meshes that may intersect (the voxeliser fills their union). Sizes are in metres before
`to_canonical` scales the longest side to 1; rods are as thin as 1.2 cm, i.e. about one voxel of a 32^3 grid.

Two families of kinds: the first generator's (LEGACY_KINDS, built here, box-and-cylinder chairs, stools,
benches and tables) and the later ones (NEW_KINDS: synthetic_seating.py and synthetic_tables.py: dining,
sled, cantilever, folding and shell chairs, club and tub armchairs, office chairs, bar stools, sofas, park
benches, dining, coffee, trestle and side tables, desks). A first draw on its own random stream sends a model
to one family; a model sent to the first keeps the exact shape it had before the second existed.

Model k of seed s depends only on (s, k), never on how many models are asked for, so
`synthetic:100:7` and `synthetic:10:7` share their first ten models (ids `synthetic:7/0` ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mesh import Mesh, to_canonical
from .synthetic_parts import THIN, box, centered_box, cylinder, merge
from .synthetic_parts import rod as _rod
from .synthetic_seating import SEATING
from .synthetic_tables import TABLES

# The shapes behind the ids `synthetic:<seed>/<k>`: 1 = the first generator's kinds only, 2 = with NEW_KINDS.
# A dataset records it (manifest "render"), so a resumed render never mixes two meanings of one id.
GENERATOR_VERSION = 2

__all__ = [
    "KINDS",
    "THIN",
    "SyntheticModel",
    "box",
    "centered_box",
    "cylinder",
    "merge",
    "synthetic_model",
    "synthetic_models",
]


@dataclass
class SyntheticModel:
    index: int
    kind: str  # e.g. "swivel chair", "pedestal table"
    category: str  # ShapeNet taxonomy name: chair, table, sofa or bench
    mesh: Mesh  # canonical frame


# ---------------------------------------------------------------- supports
def _legs(rng, top_z, half_w, half_d, count, thick, round_legs, splay=0.0, circle=False) -> list[Mesh]:
    """`count` legs (3-5) from the floor to top_z under a rectangle of half sizes half_w, half_d (at its
    corners), or on a circle (`circle`, or 3 and 5 legs) of radius min(half_w, half_d) less an inset."""
    inset = thick / 2 + 0.01
    if count == 4 and not circle:
        spots = [(sx * (half_w - inset), sy * (half_d - inset)) for sx in (-1, 1) for sy in (-1, 1)]
    else:  # 3 or 5 legs on a circle (round tops, stools)
        r = min(half_w, half_d) - inset
        a0 = rng.uniform(0, 2 * np.pi / count)
        spots = [
            (r * np.cos(a0 + 2 * np.pi * i / count), r * np.sin(a0 + 2 * np.pi * i / count))
            for i in range(count)
        ]
    parts = []
    for x, y in spots:
        foot = np.array([x * (1 + splay), y * (1 + splay), 0.0])
        head = np.array([x, y, top_z])
        if round_legs or splay:
            parts.append(cylinder(foot, head, thick / 2, 8))
        else:
            parts.append(box([x - thick / 2, y - thick / 2, 0], [x + thick / 2, y + thick / 2, top_z]))
    return parts


def _star_base(rng, top_z, reach, arms=5) -> list[Mesh]:
    """Swivel base: a central column and `arms` spokes near the floor, small casters at their ends."""
    col = float(rng.uniform(0.02, 0.035))
    spoke_z = float(rng.uniform(0.05, 0.08))
    parts = [cylinder([0, 0, spoke_z], [0, 0, top_z], col, 12)]
    a0 = rng.uniform(0, 2 * np.pi / arms)
    for i in range(arms):
        a = a0 + 2 * np.pi * i / arms
        end = np.array([reach * np.cos(a), reach * np.sin(a), spoke_z])
        parts.append(cylinder([0, 0, spoke_z], end, float(rng.uniform(THIN / 2, 0.02)), 8))
        parts.append(cylinder(end - [0, 0, spoke_z], end, 0.02, 8))  # caster
    return parts


def _pedestal(rng, top_z, reach) -> list[Mesh]:
    """One column on a disc or a cross of feet."""
    col = float(rng.uniform(0.03, 0.07))
    parts = [cylinder([0, 0, 0], [0, 0, top_z], col, 16)]
    if rng.random() < 0.5:
        parts.append(cylinder([0, 0, 0], [0, 0, 0.03], reach, 24))
    else:
        for sx, sy in ((1, 0), (0, 1)):
            parts.append(
                centered_box([0, 0, 0.02], [2 * reach if sx else 0.05, 2 * reach if sy else 0.05, 0.04])
            )
    return parts


# ---------------------------------------------------------------- furniture
def _chair(rng, kind: str) -> list[Mesh]:
    w = float(rng.uniform(0.4, 0.55))
    d = float(rng.uniform(0.4, 0.55))
    seat_z = float(rng.uniform(0.4, 0.5))
    seat_t = float(rng.uniform(0.02, 0.07))
    back_h = float(rng.uniform(0.3, 0.45)) if kind != "high-back chair" else float(rng.uniform(0.6, 0.85))
    parts = []
    round_seat = kind == "swivel chair" and rng.random() < 0.3
    if round_seat:
        parts.append(cylinder([0, 0, seat_z - seat_t], [0, 0, seat_z], w / 2, 24))
    else:
        parts.append(box([-w / 2, -d / 2, seat_z - seat_t], [w / 2, d / 2, seat_z]))
    # Backrest on the +Y side (the back): the front, where one sits down, faces -Y.
    back_t = float(rng.uniform(0.02, 0.06))
    y0 = d / 2 - back_t
    if rng.random() < 0.6:  # solid panel
        parts.append(box([-w / 2, y0, seat_z], [w / 2, d / 2, seat_z + back_h]))
    else:  # two posts and slats or spindles
        post = _rod(rng, THIN, 0.035)
        for sx in (-1, 1):
            x = sx * (w / 2 - post / 2)
            parts.append(box([x - post / 2, y0, seat_z], [x + post / 2, d / 2, seat_z + back_h]))
        if rng.random() < 0.5:
            for k in range(int(rng.integers(1, 4))):
                z = seat_z + back_h * (1 - 0.3 * k) - 0.06
                parts.append(box([-w / 2, y0, z], [w / 2, d / 2, z + 0.06]))
        else:
            parts.append(box([-w / 2, y0, seat_z + back_h - 0.05], [w / 2, d / 2, seat_z + back_h]))
            spindles = int(rng.integers(2, 6))
            for k in range(spindles):
                x = -w / 2 + w * (k + 1) / (spindles + 1)
                yb = d / 2 - back_t / 2
                parts.append(cylinder([x, yb, seat_z], [x, yb, seat_z + back_h], THIN / 2, 6))
    if kind == "armchair":
        arm_h = float(rng.uniform(0.18, 0.28))
        arm_w = _rod(rng, THIN, 0.06)
        for sx in (-1, 1):
            x = sx * (w / 2 - arm_w / 2)
            parts.append(
                box([x - arm_w / 2, -d / 2, seat_z + arm_h - 0.03], [x + arm_w / 2, d / 2, seat_z + arm_h])
            )
            parts.append(
                box([x - arm_w / 2, -d / 2, seat_z], [x + arm_w / 2, -d / 2 + arm_w, seat_z + arm_h])
            )
    if kind == "swivel chair":
        parts += _star_base(rng, seat_z - seat_t, float(rng.uniform(0.25, 0.33)), int(rng.choice([4, 5, 5])))
    else:
        count = int(rng.choice([3, 4, 4, 4, 5])) if not round_seat else 4
        count = 4 if count != 4 and kind != "chair" else count
        parts += _legs(
            rng,
            seat_z - seat_t,
            w / 2,
            d / 2,
            count,
            _rod(rng),
            rng.random() < 0.5,
            splay=float(rng.choice([0.0, 0.0, 0.15])),
        )
    return parts


def _stool(rng) -> list[Mesh]:
    r = float(rng.uniform(0.15, 0.22))
    seat_z = float(rng.uniform(0.45, 0.8))
    t = float(rng.uniform(0.03, 0.06))
    parts = []
    round_seat = rng.random() < 0.6
    if round_seat:
        parts.append(cylinder([0, 0, seat_z - t], [0, 0, seat_z], r, 24))
    else:
        parts.append(box([-r, -r, seat_z - t], [r, r, seat_z]))
    if rng.random() < 0.25:
        parts += _pedestal(rng, seat_z - t, r)
    else:
        count = int(rng.choice([3, 4]))
        thick = _rod(rng)
        splay = float(rng.uniform(0.0, 0.25))
        parts += _legs(rng, seat_z - t, r, r, count, thick, True, splay=splay, circle=round_seat)
        if rng.random() < 0.6:  # foot plate at a third of the height, reaching the legs' axes there
            z = seat_z * 0.35
            reach = (r - thick / 2 - 0.01) * (1 + splay * (1 - z / (seat_z - t)))
            if round_seat or count == 3:
                parts.append(cylinder([0, 0, z], [0, 0, z + THIN], reach, 24))
            else:
                parts.append(box([-reach, -reach, z], [reach, reach, z + THIN]))
    # A low backrest on some stools (bar stools): still on +Y, the back.
    if rng.random() < 0.3:
        parts.append(box([-r, r * 0.8, seat_z], [r, r, seat_z + float(rng.uniform(0.15, 0.3))]))
    return parts


def _bench(rng) -> list[Mesh]:
    w = float(rng.uniform(1.0, 1.8))
    d = float(rng.uniform(0.3, 0.5))
    seat_z = float(rng.uniform(0.4, 0.48))
    t = float(rng.uniform(0.03, 0.07))
    parts = [box([-w / 2, -d / 2, seat_z - t], [w / 2, d / 2, seat_z])]
    thick = _rod(rng, 0.03, 0.06)
    if rng.random() < 0.5:  # slab ends
        for sx in (-1, 1):
            x = sx * (w / 2 - 0.1)
            parts.append(box([x - thick / 2, -d / 2, 0], [x + thick / 2, d / 2, seat_z - t]))
    else:
        parts += _legs(rng, seat_z - t, w / 2, d / 2, 4, thick, rng.random() < 0.5)
        if rng.random() < 0.5:  # a middle pair of legs on long benches
            for sy in (-1, 1):
                y = sy * (d / 2 - thick)
                parts.append(box([-thick / 2, y - thick / 2, 0], [thick / 2, y + thick / 2, seat_z - t]))
    if rng.random() < 0.5:  # backrest on the +Y side
        back_h = float(rng.uniform(0.3, 0.45))
        parts.append(box([-w / 2, d / 2 - 0.04, seat_z + 0.1], [w / 2, d / 2, seat_z + back_h]))
        for sx in (-1, 1):
            x = sx * (w / 2 - 0.1)
            parts.append(box([x - 0.02, d / 2 - 0.04, seat_z], [x + 0.02, d / 2, seat_z + 0.1]))
    return parts


def _table(rng, kind: str) -> list[Mesh]:
    top_z = float(rng.uniform(0.45, 0.78))
    t = float(rng.uniform(0.02, 0.06))
    parts = []
    if kind in ("round table", "pedestal table") and (kind == "round table" or rng.random() < 0.6):
        r = float(rng.uniform(0.35, 0.6))
        parts.append(cylinder([0, 0, top_z - t], [0, 0, top_z], r, 32))
        half_w = half_d = r / np.sqrt(2) if kind == "round table" else r
    else:
        half_w = float(rng.uniform(0.35, 0.9))
        half_d = half_w if kind == "square table" else float(rng.uniform(0.3, 0.55))
        parts.append(box([-half_w, -half_d, top_z - t], [half_w, half_d, top_z]))
    if kind == "pedestal table":
        parts += _pedestal(rng, top_z - t, min(half_w, half_d) * 0.6)
    else:
        count = int(rng.choice([3, 4])) if kind == "round table" else 4
        thick = _rod(rng, THIN, 0.07)
        parts += _legs(rng, top_z - t, half_w, half_d, count, thick, rng.random() < 0.5)
        if count == 4 and rng.random() < 0.4:  # apron under the top
            a = 0.06
            parts.append(
                box(
                    [-half_w + 0.02, -half_d + 0.02, top_z - t - a],
                    [half_w - 0.02, -half_d + 0.04, top_z - t],
                )
            )
            parts.append(
                box([-half_w + 0.02, half_d - 0.04, top_z - t - a], [half_w - 0.02, half_d - 0.02, top_z - t])
            )
        if count == 4 and rng.random() < 0.2:  # a lower shelf, reaching the legs' centres
            sw, sd = half_w - thick / 2 - 0.01, half_d - thick / 2 - 0.01
            parts.append(box([-sw, -sd, 0.12], [sw, sd, 0.14]))
    return parts


# The first generator's kinds, kept exactly (same random draws, same shapes) for the models whose family draw
# picks them. kind -> (category, weight): mostly chairs and tables, a few benches.
LEGACY_KINDS = {
    "chair": ("chair", 4),
    "armchair": ("chair", 2),
    "high-back chair": ("chair", 2),
    "swivel chair": ("chair", 2),
    "stool": ("chair", 2),
    "rectangular table": ("table", 3),
    "square table": ("table", 2),
    "round table": ("table", 2),
    "pedestal table": ("table", 2),
    "bench": ("bench", 1),
}
# The kinds added later (synthetic_seating, synthetic_tables): kind -> (builder, category, weight).
NEW_KINDS = {**SEATING, **TABLES}
# Share of models drawn from the first generator's kinds. With it, the whole mix resembles what KatorLegaz,
# Scopia and BlendSwap-CC-0 hold (chairs ~45%, tables ~35%, sofas ~17%, benches ~6%): about 50% chairs (of
# which a fifth upholstered armchairs, a sixth stools and office chairs), 36% tables, 9% sofas, 5% benches.
LEGACY_SHARE = 0.35
# Seed-sequence words that make the family draw and the new kinds' draws independent of the first
# generator's stream (which is [seed, index] alone, as it always was).
_FAMILY_STREAM, _NEW_STREAM = 1, 2


def _kind_shares() -> dict[str, tuple[str, float]]:
    """kind -> (category, probability) over both families."""
    legacy_total = sum(w for _, w in LEGACY_KINDS.values())
    new_total = sum(w for _, _, w in NEW_KINDS.values())
    shares = {k: (c, LEGACY_SHARE * w / legacy_total) for k, (c, w) in LEGACY_KINDS.items()}
    shares.update({k: (c, (1 - LEGACY_SHARE) * w / new_total) for k, (_, c, w) in NEW_KINDS.items()})
    return shares


# kind -> (ShapeNet category, probability of the kind).
KINDS = _kind_shares()


def _legacy_parts(seed: int, index: int) -> tuple[str, list[Mesh]]:
    """The first generator, untouched: its kind draw and builders on the [seed, index] stream."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])
    names = list(LEGACY_KINDS)
    weights = np.array([LEGACY_KINDS[k][1] for k in names], float)
    kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if kind == "stool":
        parts = _stool(rng)
    elif kind == "bench":
        parts = _bench(rng)
    elif LEGACY_KINDS[kind][0] == "chair":
        parts = _chair(rng, kind)
    else:
        parts = _table(rng, kind)
    return kind, parts


def synthetic_model(seed: int, index: int) -> SyntheticModel:
    """Model `index` of the family `seed`; deterministic, independent of other indices.

    A first draw on its own stream picks the first generator's kinds (LEGACY_SHARE of the models, whose shapes
    are those `synthetic:<seed>/<index>` always had) or the later ones (NEW_KINDS)."""
    s = int(seed) & 0xFFFFFFFF
    if np.random.default_rng([s, int(index), _FAMILY_STREAM]).random() < LEGACY_SHARE:
        kind, parts = _legacy_parts(seed, index)
        return SyntheticModel(index, kind, LEGACY_KINDS[kind][0], to_canonical(merge(parts)))
    rng = np.random.default_rng([s, int(index), _NEW_STREAM])
    names = list(NEW_KINDS)
    weights = np.array([NEW_KINDS[k][2] for k in names], float)
    kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    builder, category, _ = NEW_KINDS[kind]
    return SyntheticModel(index, kind, category, to_canonical(merge(builder(rng))))


def synthetic_models(n: int, seed: int = 0):
    """The first n models of family `seed` (a generator: meshes are built as they are asked for)."""
    for k in range(int(n)):
        yield synthetic_model(seed, k)
