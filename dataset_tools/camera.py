"""Cameras of the fixed viewpoints, in Blender's convention, and the matrices that align images and grids.

A view is (azimuth, elevation, distance, fov), angles in degrees. The camera sits at
    distance * (sin(az) cos(el), -cos(az) cos(el), sin(el))
looking at the origin with +Z up: azimuth 0 looks at the model's front (from -Y), azimuth grows
counter-clockwise seen from above (90 looks from +X, the model's right side as seen from the front).

world_to_pixel(view, size) is the 3x4 matrix P with P @ (x, y, z, 1) = w * (u, v, 1): u to the right, v down,
pixel centres at integer + 0.5, for a square image of `size` pixels whose field of view spans its width.
This matches Blender's render once its rows are flipped top first (checked against Workbench renders).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class View:
    azimuth: float
    elevation: float
    distance: float
    fov: float
    world_to_pixel: np.ndarray = field(default=None, repr=False)  # float64 [3, 4]

    def to_json(self) -> dict:
        return {
            "azimuth": self.azimuth,
            "elevation": self.elevation,
            "distance": self.distance,
            "fov": self.fov,
            "world_to_pixel": np.asarray(self.world_to_pixel).tolist(),
        }

    @classmethod
    def from_json(cls, d: dict) -> View:
        return cls(
            float(d["azimuth"]),
            float(d["elevation"]),
            float(d["distance"]),
            float(d["fov"]),
            np.asarray(d["world_to_pixel"], dtype=np.float64).reshape(3, 4),
        )


def camera_matrix_world(azimuth: float, elevation: float, distance: float) -> np.ndarray:
    """4x4 matrix_world of a Blender camera (looks down its local -Z, +Y up) aimed at the origin."""
    az, el = np.radians(azimuth), np.radians(elevation)
    if abs(np.cos(el)) < 1e-6:
        raise ValueError("elevation must not be +-90 degrees (the view direction would be vertical)")
    pos = distance * np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    forward = -pos / np.linalg.norm(pos)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, -forward, pos
    return m


def intrinsics(fov: float, size: int) -> np.ndarray:
    f = (size / 2) / np.tan(np.radians(fov) / 2)
    return np.array([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]])


def world_to_pixel(matrix_world: np.ndarray, fov: float, size: int) -> np.ndarray:
    """P = K . diag(1, -1, -1) . (M^-1)[:3] for a camera with matrix_world M."""
    return intrinsics(fov, size) @ np.diag([1.0, -1.0, -1.0]) @ np.linalg.inv(matrix_world)[:3]


def make_view(azimuth: float, elevation: float, distance: float, fov: float, size: int) -> View:
    m = camera_matrix_world(azimuth, elevation, distance)
    return View(float(azimuth), float(elevation), float(distance), float(fov), world_to_pixel(m, fov, size))


def fixed_views(
    count: int = 8,
    elevation: float = 20.0,
    distance: float = 2.5,
    fov: float = 40.0,
    size: int = 128,
    first_azimuth: float = 0.0,
) -> list[View]:
    """`count` azimuths evenly spaced around the model at one elevation (voxlift's default viewpoints).

    With distance 2.5 and fov 40 the whole cube [-0.5, 0.5]^3 stays inside the frame from every such view."""
    return [
        make_view(first_azimuth + 360.0 * i / count, elevation, distance, fov, size) for i in range(count)
    ]


def project(points: np.ndarray, world_to_pixel_matrix: np.ndarray) -> np.ndarray:
    """Pixel coordinates (u, v) of points [N, 3] (u right, v down; pixel centres at integer + 0.5)."""
    h = np.c_[points, np.ones(len(points))] @ np.asarray(world_to_pixel_matrix).T
    return h[:, :2] / h[:, 2:3]


UNIT_CUBE_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])


def fits_in_frame(view: View, size: int) -> bool:
    """Whether the whole cube [-0.5, 0.5]^3 (where every model lies) is in front of the camera and inside
    the image."""
    h = np.c_[UNIT_CUBE_CORNERS, np.ones(8)] @ np.asarray(view.world_to_pixel).T
    if not (h[:, 2] > 0).all():
        return False
    uv = h[:, :2] / h[:, 2:3]
    return bool(((uv >= 0) & (uv <= size)).all())
