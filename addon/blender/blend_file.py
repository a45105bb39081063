"""Reconstructions into a .blend file: one object per grid, side by side along X, in a scene of their own.

The open file (e.g. inside `blender -c voxlift reconstruct`) is left alone: the scene and its objects are
written with bpy.data.libraries.write, then removed again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy
import numpy as np

from .. import meshing
from ..dataset_tools.fileio import atomic_write_bytes
from . import mesh as blender_mesh

SPACING = 1.25  # between neighbouring objects along X: each fills a unit cube


def write_blend(
    path: str | os.PathLike,
    names: list[str],
    probs: np.ndarray,
    *,
    mode: str = "CUBES",
    threshold: float = meshing.DEFAULT_THRESHOLD,
    greedy: bool = False,
    rotation_z: float = 0.0,
) -> None:
    """One object per (name, grid of `probs` [B, R, R, R]), written atomically to `path`."""
    path = Path(path)
    registered = hasattr(bpy.types.Object, "voxlift")
    if not registered:  # bpy as a plain module, the add-on not enabled: the object settings are needed
        blender_mesh.register()
    scene = bpy.data.scenes.new("voxlift")
    objects = []
    try:
        for i, (name, p) in enumerate(zip(names, probs, strict=True)):
            obj = blender_mesh.new_object(
                name, p, mode=mode, threshold=threshold, greedy=greedy, rotation_z=rotation_z
            )
            obj.location = (SPACING * i, 0.0, 0.0)
            scene.collection.objects.link(obj)
            objects.append(obj)
        # Blender writes to a path: write into a private folder, then put the bytes in place atomically.
        with tempfile.TemporaryDirectory(prefix="voxlift-") as tmp:
            staged = Path(tmp) / path.name
            bpy.data.libraries.write(str(staged), {scene}, fake_user=False)
            atomic_write_bytes(path, staged.read_bytes())
    finally:
        for obj in objects:
            blender_mesh.remove_object(obj)
        bpy.data.scenes.remove(scene)
        if not registered:
            blender_mesh.unregister()
