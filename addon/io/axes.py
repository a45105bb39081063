"""Blender's Z-up frame and the Y-up convention of OBJ and glTF files.

voxlift's frame (README, canonical frame) is Blender's: Z up, the front towards -Y. OBJ files are Y up by
convention (Blender's OBJ importer defaults to Y up, -Z forward, as do most tools) and glTF is Y up by its
specification: both store a point (x, y, z) as (x, z, -y), which those importers turn back into (x, y, z).
"""

from __future__ import annotations

import numpy as np


def z_up_to_y_up(vertices: np.ndarray) -> np.ndarray:
    """Blender's Z-up (x, y, z) as the Y-up (x, z, -y) of OBJ and glTF files, float32 [V, 3]."""
    v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    return np.ascontiguousarray(np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1), dtype=np.float32)


def y_up_to_z_up(vertices: np.ndarray) -> np.ndarray:
    """The inverse: a Y-up file's (x, y, z) as Blender's (x, -z, y), float32 [V, 3]."""
    v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    return np.ascontiguousarray(np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1), dtype=np.float32)
