"""How a model looks in a dataset render (`voxlift render --appearance plain|random`), decided without bpy.

plain: one gray colour, Workbench's default studio light turning with the camera, nothing else (the look of
every dataset before this option; its bytes do not change).

random: the model's own materials where the source has them (MTL colours; textures where the faces have
texture coordinates), else random base colours; a random roughness and metallic sheen; and per view a
lighting of Workbench's: one of Blender's bundled studio lights (fixed to the camera or to the world,
turned), a matcap (which tints), or flat light; specular highlights, cavity, hard shadows and the exposure
(darker or brighter pictures) drawn per view. Workbench cannot light with world HDRIs (only Cycles and
EEVEE do; both are too slow here), so those are not used.

Every draw comes from a generator seeded by the model's id (SHA-256), so a model looks the same in every run,
in any worker, and a resumed render writes the same bytes. blender/render.py applies a ModelLook.

Camera jitter (`--camera-jitter`): each model's views get their own elevation, distance and field of view
(`jittered_views`), stored as per-model cameras; the parent draws them, so they are in the job it sends.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass

import numpy as np

from .dataset_tools.camera import View, fits_in_frame, make_view

APPEARANCES = ("plain", "random")
# Lightings, shares of views: studio lights shade like a photo studio, matcaps tint and gloss, flat light is
# the colour alone (no shading: the hardest case for a shape reader).
LIGHTS = {"STUDIO": 0.55, "MATCAP": 0.3, "FLAT": 0.15}
# Blender's bundled studio lights (datafiles/studiolights/studio) and matcaps (.../matcap), except the
# check_* test patterns; a name missing from the running Blender falls back to its default light.
STUDIO_LIGHTS = ("Default", "basic.sl", "outdoor.sl", "paint.sl", "rim.sl", "studio.sl")
MATCAPS = (
    "basic_bright.exr",
    "basic_dark.exr",
    "basic_grey.exr",
    "basic_side.exr",
    "ceramic_dark.exr",
    "ceramic_lightbulb.exr",
    "clay_brown.exr",
    "clay_green.exr",
    "clay_studio.exr",
    "clay_warm.exr",
    "fullmetal.exr",
    "hard_surface_grey.exr",
    "hard_surface_red.exr",
    "metal_bronze.exr",
    "metal_carpaint.exr",
    "pearl.exr",
    "red_wax.exr",
    "resin.exr",
    "toon_dark.exr",
    "toon_light.exr",
)
PLAIN_GRAY = (0.8, 0.8, 0.8)  # plain's colour (linear), as before the option existed
SOURCE_COLOURS = 0.7  # share of models with materials shown in their own colours (else random ones)
GRAY_MODELS = 0.15  # share of models without materials left plain gray (random lighting still)
WORLD_LIGHT = 0.5  # share of studio-lit views whose light is fixed to the world (turned at random)
# Shares of views (of models for metallic). Shadows are few: Workbench draws them as stencil volumes, whose
# cost grows with the mesh: on the CPU a view of a 5k-triangle Sweet Home 3D chair takes 2-4x as long with
# them, one of 23k triangles 5x. Meshes above SHADOW_MAX_FACES get none. The hard light of a studio light (rim, outdoor)
# and specular highlights come without that cost.
SPECULAR, CAVITY, SHADOWS, METALLIC = 0.5, 0.25, 0.05, 0.15
SHADOW_MAX_FACES = 20_000
EXPOSURE = (-0.6, 0.9)  # stops, around plain's 0: darker and brighter pictures
ROUGHNESS = (0.15, 1.0)
# Random colours: a hue, a saturation and the colour's luma (sRGB), drawn apart: drawn by HSV value, most
# saturated colours would be dark in gray (a pure blue has luma 0.11).
SATURATION, LUMA = (0.0, 0.9), (0.35, 1.0)
SHADOW_INTENSITY = (0.2, 0.6)
CAVITY_FACTOR = (0.4, 1.6)
CAVITY_TYPES = ("WORLD", "SCREEN", "BOTH")
# Camera jitter (--camera-jitter): elevation +- degrees, distance times [1, 1 + x], field of view +- degrees.
JITTER_ELEVATION, JITTER_DISTANCE, JITTER_FOV = 8.0, 0.15, 4.0
FRAME_GROWTH = 1.03  # distance steps when a jittered view would cut the unit cube off


@dataclass
class ViewLook:
    light: str  # STUDIO, MATCAP or FLAT
    studio_light: str  # a STUDIO_LIGHTS or MATCAPS name
    world_lighting: bool  # the studio light is fixed to the world (else it turns with the camera)
    light_rotation: float  # radians about Z (world lighting only)
    specular: bool
    cavity: bool
    cavity_type: str
    cavity_ridge: float
    cavity_valley: float
    shadows: bool
    shadow_intensity: float
    light_direction: tuple[float, float, float]  # where the shadows' light comes from
    exposure: float  # stops


@dataclass
class ModelLook:
    """One model's look: a colour per material slot (slot 0: faces without a material), linear RGB."""

    colors: list[tuple[float, float, float]]
    use_textures: bool  # show the source's textures (Workbench's texture colour) where it has them
    roughness: float
    metallic: float
    luma: tuple[int, int, int]  # weights of R, G, B in the stored gray, in 1/256
    views: list[ViewLook]


# Luma weights in 1/256: plain keeps Rec. 709 (its gray images are unchanged); random stores Rec. 601, as
# backend/framing.py converts users' pictures.
REC709 = (54, 183, 19)
REC601 = (77, 150, 29)


def rng_for(model_id: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on the model's id and what it is for."""
    digest = hashlib.sha256(f"{purpose}\0{model_id}".encode()).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


def srgb_to_linear(c: float) -> float:
    """MTL colours are display colours (Sweet Home 3D shows Kd as is); Blender's material colours are
    linear."""
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """Linear RGB of a random hue and saturation whose sRGB luma (Rec. 601) is drawn from LUMA (a colour
    that cannot be that light at its saturation is mixed with white until it is)."""
    weights = np.array(REC601) / 256
    rgb = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*SATURATION), 1.0))
    target = rng.uniform(*LUMA)
    rgb = np.minimum(rgb * target / float(rgb @ weights), 1.0)
    luma = float(rgb @ weights)
    if luma < target:
        rgb += (1.0 - rgb) * (target - luma) / (1.0 - luma)
    return tuple(srgb_to_linear(float(c)) for c in rgb)


def model_look(
    model_id: str,
    views: int,
    source_colors: list[tuple[float, float, float]] | None,
    textured: bool,
    faces: int = 0,
) -> ModelLook:
    """The random look of one model. `source_colors`: the Kd of each of its materials (None: it has none);
    `faces`: its triangle count (shadows only up to SHADOW_MAX_FACES)."""
    rng = rng_for(model_id, "look")
    own = source_colors is not None and rng.random() < SOURCE_COLOURS
    gray = source_colors is None and rng.random() < GRAY_MODELS
    slots = 1 + (len(source_colors) if source_colors is not None else 0)
    if own:
        colors = [PLAIN_GRAY] + [tuple(srgb_to_linear(c) for c in rgb) for rgb in source_colors]
    elif gray:
        colors = [PLAIN_GRAY] * slots
    else:
        colors = [random_color(rng) for _ in range(slots)]
    roughness = float(rng.uniform(*ROUGHNESS))
    metallic = float(rng.uniform(0, 1)) if rng.random() < METALLIC else 0.0
    return ModelLook(
        colors,
        own and textured,
        roughness,
        metallic,
        REC601,
        [view_look(rng, shadows=faces <= SHADOW_MAX_FACES) for _ in range(views)],
    )


def view_look(rng: np.random.Generator, shadows: bool = True) -> ViewLook:
    light = str(rng.choice(list(LIGHTS), p=list(LIGHTS.values())))
    names = MATCAPS if light == "MATCAP" else STUDIO_LIGHTS
    direction = rng.normal(size=3)
    direction[2] = abs(direction[2]) + 0.3  # from above
    direction /= np.linalg.norm(direction)
    return ViewLook(
        light=light,
        studio_light=str(names[rng.integers(len(names))]),
        world_lighting=bool(rng.random() < WORLD_LIGHT),
        light_rotation=float(rng.uniform(-np.pi, np.pi)),
        specular=bool(rng.random() < SPECULAR),
        cavity=bool(rng.random() < CAVITY),
        cavity_type=str(CAVITY_TYPES[rng.integers(len(CAVITY_TYPES))]),
        cavity_ridge=float(rng.uniform(*CAVITY_FACTOR)),
        cavity_valley=float(rng.uniform(*CAVITY_FACTOR)),
        shadows=bool(rng.random() < SHADOWS) and shadows,
        shadow_intensity=float(rng.uniform(*SHADOW_INTENSITY)),
        light_direction=tuple(float(x) for x in direction),
        exposure=float(rng.uniform(*EXPOSURE)),
    )


def jittered_views(model_id: str, views: list[View], size: int) -> list[View]:
    """The model's own cameras: each view's elevation, distance and field of view drawn around the shared
    view's; a view that would cut the unit cube off is moved back until the cube fits the frame."""
    rng = rng_for(model_id, "camera")
    out = []
    for v in views:
        elevation = float(np.clip(v.elevation + rng.uniform(-JITTER_ELEVATION, JITTER_ELEVATION), -80, 80))
        distance = v.distance * float(rng.uniform(1.0, 1.0 + JITTER_DISTANCE))
        fov = float(np.clip(v.fov + rng.uniform(-JITTER_FOV, JITTER_FOV), 1.0, 170.0))
        view = make_view(v.azimuth, elevation, distance, fov, size)
        while fits_in_frame(v, size) and not fits_in_frame(view, size):
            distance *= FRAME_GROWTH
            view = make_view(v.azimuth, elevation, distance, fov, size)
        out.append(view)
    return out
