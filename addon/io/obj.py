"""A reconstruction as a Wavefront .obj: vertices and triangles, Y up as OBJ files are by convention.

The scene's Z-up (x, y, z) is written as (x, z, -y) (axes.py), so Blender's OBJ importer with its defaults
(up Y, forward -Z) and other tools put the object upright, front towards the viewer of Blender's Front view.
"""

from __future__ import annotations

import os

import numpy as np

from ..dataset_tools.mesh import Mesh
from ..dataset_tools.obj import write_obj
from .axes import z_up_to_y_up


def write_mesh_obj(path: str | os.PathLike, vertices: np.ndarray, triangles: np.ndarray, comment: str = ""):
    """`vertices` [V, 3] in the scene's Z-up frame, written Y up, atomically by dataset_tools.obj (17
    significant digits: read back and turned by axes.y_up_to_z_up, the same floats)."""
    write_obj(path, Mesh(z_up_to_y_up(vertices), triangles), comment=comment or None)
