"""A reconstruction as a Wavefront .obj (vertices and triangles, Z up, as in the scene)."""

from __future__ import annotations

import os

import numpy as np

from ..dataset_tools.mesh import Mesh
from ..dataset_tools.obj import write_obj


def write_mesh_obj(path: str | os.PathLike, vertices: np.ndarray, triangles: np.ndarray, comment: str = ""):
    """Written atomically by dataset_tools.obj (17 significant digits: read back, the same floats)."""
    write_obj(path, Mesh(vertices, triangles), comment=comment or None)
