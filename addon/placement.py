"""Where a reconstruction stands when its picture is a reference image in the scene, without bpy.

A reference or background image in Blender's 3D viewport is an empty whose `empty_display_type` is "IMAGE".
Its picture lies in the empty's local XY plane and faces local +Z, towards the viewer who added it ("Add >
Image > Reference" aligned to the view faces that view). Blender draws it `empty_display_size` local units
on its longer side, its corner at `empty_image_offset` times its size (default (-0.5, -0.5): centred).

    az, el = viewing_angles(matrix_world[:3, 2])                      # degrees, voxlift's convention
    box = box_on_picture(found_box, picture_rectangle(w, h, size, offset))
    where = place_on_picture(vertices, matrix_world, box)            # location, uniform scale

voxlift's cameras (README, Canonical frame) sit at distance * (sin az cos el, -cos az cos el, sin el): the
direction from the object to the viewer. For a picture that is the empty's local +Z axis in the world, so
az = atan2(x, -y), el = asin(z). A viewer-centred grid turned back by that azimuth (reconstruct.
scene_rotation) is seen from the picture as the picture shows it.

The object stays upright (Z up) whatever the picture's elevation: the model's grids are upright already
(it learned them from pictures taken about 20 degrees above, and that is what a photograph of furniture
usually is), while the empty's tilt says how the user set the picture in the scene (a reference added from
the Front view faces straight ahead) rather than where the photograph was taken from. Tilting by the
difference would lean every chair off the floor to match a picture's placement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TINY = 1e-9  # lengths below this are zero (a degenerate matrix, a flat silhouette)


@dataclass
class Placement:
    location: np.ndarray  # [3] world position of the object's origin
    scale: float  # uniform
    azimuth: float  # degrees: the picture's viewing direction
    elevation: float


def viewing_angles(towards_viewer) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of the direction from the object to the viewer (any length)."""
    d = np.asarray(towards_viewer, np.float64)
    d = d / max(float(np.linalg.norm(d)), TINY)
    az = math.degrees(math.atan2(d[0], -d[1])) if abs(d[0]) + abs(d[1]) > TINY else 0.0
    return az, math.degrees(math.asin(float(np.clip(d[2], -1.0, 1.0))))


def picture_rectangle(
    width: int, height: int, display_size: float, offset=(-0.5, -0.5), pixel_aspect=(1.0, 1.0)
) -> np.ndarray:
    """(x0, y0, x1, y1): where an image of width x height pixels lies in its empty's local XY plane, as
    Blender draws it (its longer side `display_size`, its lower-left corner at offset * its size; pixels
    `pixel_aspect` = Image.display_aspect wide and high)."""
    ax, ay = (float(a) for a in pixel_aspect)
    wide, high = (
        width * min(1.0, ax / ay),
        height * min(1.0, ay / ax),
    )  # Blender shrinks the longer pixel side
    longer = max(wide, high)
    w, h = display_size * wide / longer, display_size * high / longer
    return np.array([offset[0] * w, offset[1] * h, (offset[0] + 1) * w, (offset[1] + 1) * h])


def box_on_picture(box, rectangle) -> np.ndarray:
    """A box (x0, y0, x1, y1) in fractions of the picture (rows top first, as framing finds it) in the
    empty's local coordinates (x0, y0, x1, y1), y up: the picture's top row is at the rectangle's top."""
    fx0, fy0, fx1, fy1 = (float(v) for v in box)
    rx0, ry0, rx1, ry1 = (float(v) for v in rectangle)
    w, h = rx1 - rx0, ry1 - ry0
    return np.array([rx0 + fx0 * w, ry1 - fy1 * h, rx0 + fx1 * w, ry1 - fy0 * h])


def place_on_picture(vertices, matrix_world, local_box) -> Placement:
    """The uniform scale and location that make `vertices` [V, 3] (the object at scale 1, already turned
    into the scene) look, along the picture's normal, as the picture's object does: the silhouette's side
    along the picture's longer box side as long as that side in world units, its centre on the box's centre.
    The object's middle in depth lies on the picture's plane."""
    m = np.asarray(matrix_world, np.float64).reshape(4, 4)
    columns = m[:3, :3]
    lengths = np.maximum(np.linalg.norm(columns, axis=0), TINY)
    u, v, n = (columns / lengths).T  # the picture's right, up and towards-the-viewer directions
    bx0, by0, bx1, by1 = (float(c) for c in local_box)
    width, height = (bx1 - bx0) * lengths[0], (by1 - by0) * lengths[1]
    centre = (m @ np.array([(bx0 + bx1) / 2, (by0 + by1) / 2, 0.0, 1.0]))[:3]
    pts = np.asarray(vertices, np.float64).reshape(-1, 3)
    along = pts @ np.stack([u, v, n], axis=1)  # [V, 3]: right, up, depth
    lo, hi = along.min(axis=0), along.max(axis=0)
    extent = hi - lo
    # The longer side of the picture's box decides, as framing scaled the object by its longer side.
    if height >= width:
        scale = height / max(extent[1], TINY)
    else:
        scale = width / max(extent[0], TINY)
    middle = (lo + hi) / 2
    location = centre - scale * (middle[0] * u + middle[1] * v + middle[2] * n)
    az, el = viewing_angles(n)
    return Placement(location=location, scale=float(scale), azimuth=az, elevation=el)
