"""Shape augmentation of meshes before voxelising: seeded variants of a model, still in the canonical frame.

A variant of model `<id>` is `<id>#aug<n>`. Its shape depends only on that id (a hash seeds it), so it is the
same on every run and machine: the mesh is stretched below and above its seat or top height (longer or
shorter legs, a taller or lower backrest), scaled anisotropically, mirrored across x on half of them, then
brought back to the canonical frame (centred, longest side 1; Z up and the front towards -Y are kept: a
mirror across x keeps both).

Splits: a dataset's split is a hash of the model id (dataset.split_of), and a variant must land in the split
of its model, or the test set would hold stretched copies of training models. So the variant numbers n are
not 1, 2, 3...: variant_ids keeps, in order, the n whose id hashes into the model's own split. Variant ids
stay put as more are asked for (the first K of augment:K+1 are those of augment:K).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from .dataset import split_of
from .errors import VoxliftError
from .mesh import Mesh, normalize_to_unit_cube

SEPARATOR = "#aug"
MAX_VARIANTS = 64
# How far the search for ids in the model's split may go (a 10% split needs about 10 tries a variant).
_MAX_TRIES_PER_VARIANT = 1000
# Stretch and scale factors are exp(uniform(-a, a)): about 0.74-1.35 for legs, 0.78-1.28 above the seat,
# 0.82-1.22 for each axis.
LEG_STRETCH, BACK_STRETCH, AXIS_SCALE = 0.3, 0.25, 0.2
MIRROR_SHARE = 0.5
# Which parts are stretched: neither, the legs (below the seat or top), the back (above), or both.
STRETCH_MODES = ("none", "legs", "back", "both")
STRETCH_WEIGHTS = (0.2, 0.35, 0.2, 0.25)
# The seat or top is looked for between these shares of the height (a table's top is at the very top).
SUPPORT_RANGE = (0.15, 1.0)
SUPPORT_BINS = 40
HORIZONTAL = 0.9  # |normal z| above this: a horizontal face


@dataclass(frozen=True)
class ShapeAugmentation:
    below: float  # stretch along z of what is under the support height (legs)
    above: float  # stretch along z of what is over it (a backrest)
    scale: tuple[float, float, float]  # then x, y, z scale
    mirror: bool  # then x -> -x


def variant_ids(model_id: str, count: int) -> list[str]:
    """The ids of the first `count` variants of a model: `<model_id>#aug<n>`, every one in its split."""
    if not 0 <= count <= MAX_VARIANTS:
        raise VoxliftError(f"augment: ask for 0 to {MAX_VARIANTS} variants a model, not {count}")
    if SEPARATOR in model_id:
        raise VoxliftError(f"{model_id}: already a variant (augment: cannot be nested)")
    split = split_of(model_id)
    ids, n = [], 0
    while len(ids) < count:
        n += 1
        if n > _MAX_TRIES_PER_VARIANT * count:  # a hash that never lands there: cannot happen with SHA-1
            raise VoxliftError(f"{model_id}: no variant id falls in its split {split!r}")
        candidate = f"{model_id}{SEPARATOR}{n}"
        if split_of(candidate) == split:
            ids.append(candidate)
    return ids


def base_id(model_id: str) -> str:
    """The model a variant id was made from (the id itself when it is no variant)."""
    return model_id.split(SEPARATOR, 1)[0]


def augmentation_for(variant_id: str) -> ShapeAugmentation:
    """The deterministic parameters of one variant, from a hash of its id."""
    seed = int.from_bytes(hashlib.sha256(variant_id.encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    mode = STRETCH_MODES[int(rng.choice(len(STRETCH_MODES), p=STRETCH_WEIGHTS))]
    below = float(np.exp(rng.uniform(-LEG_STRETCH, LEG_STRETCH)))
    above = float(np.exp(rng.uniform(-BACK_STRETCH, BACK_STRETCH)))
    scale = tuple(float(s) for s in np.exp(rng.uniform(-AXIS_SCALE, AXIS_SCALE, 3)))
    return ShapeAugmentation(
        below if mode in ("legs", "both") else 1.0,
        above if mode in ("back", "both") else 1.0,
        scale,
        bool(rng.random() < MIRROR_SHARE),
    )


def support_height(mesh: Mesh) -> float:
    """The z of a seat or table top: the height with the most horizontal surface (area-weighted), looked
    for from SUPPORT_RANGE[0] of the height up."""
    v, f = mesh.vertices, mesh.faces
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1) / 2
    flat = np.abs(cross[:, 2]) > HORIZONTAL * np.maximum(2 * area, 1e-300)
    z = (a[:, 2] + b[:, 2] + c[:, 2]) / 3
    lo, hi = float(v[:, 2].min()), float(v[:, 2].max())
    h = hi - lo
    edges = lo + h * np.linspace(SUPPORT_RANGE[0], SUPPORT_RANGE[1], SUPPORT_BINS + 1)
    weights, _ = np.histogram(z[flat], bins=edges, weights=area[flat])
    if not weights.any():
        return lo + 0.45 * h  # no flat surface at all: about where seats are
    k = int(weights.argmax())
    in_bin = flat & (z >= edges[k]) & (z <= edges[k + 1])
    return float(np.average(z[in_bin], weights=area[in_bin]))


def apply_augmentation(mesh: Mesh, aug: ShapeAugmentation) -> Mesh:
    """The mesh stretched, scaled and mirrored as `aug` says, back in the canonical frame."""
    v = mesh.vertices.copy()
    split = support_height(mesh)
    dz = v[:, 2] - split
    v[:, 2] = split + dz * np.where(dz < 0, aug.below, aug.above)
    v *= np.asarray(aug.scale)
    faces = mesh.faces.copy()
    if aug.mirror:
        v[:, 0] *= -1
        faces = faces[:, [0, 2, 1]]  # a mirror turns faces inside out: swap two corners back
    out = dataclasses.replace(mesh, vertices=v, faces=faces)  # keeps the source's materials loader, if any
    if aug.mirror and getattr(out, "materials_loader", None) is not None:
        out.materials_loader = _mirrored_materials(out.materials_loader)
    return normalize_to_unit_cube(out)


def _mirrored_materials(loader):
    """A materials loader whose per-corner texture coordinates follow the faces' swapped corners."""

    def load():
        found = loader()
        uv = getattr(found, "uv", None)
        if uv is None:
            return found
        return dataclasses.replace(found, uv=np.asarray(uv)[:, [0, 2, 1]])

    return load


def augment_mesh(mesh: Mesh, variant_id: str) -> Mesh:
    """The variant `variant_id` (`<model id>#aug<n>`) of a canonical-frame mesh of that model."""
    return apply_augmentation(mesh, augmentation_for(variant_id))
