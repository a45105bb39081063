"""Reconstructions into a .blend file: one object per grid, side by side along X, with a camera that frames
them and a sun, in a file that opens like any saved scene.

The file is a whole main file (bpy.ops.wm.save_as_mainfile), not a library write: Blender opens a library
file with "Library file, loading empty scene". Building it needs a main database of its own, so this runs in
background Blender only (`voxlift reconstruct`, `blender -b -c voxlift reconstruct`): the data in memory is
replaced by an empty file, the scene built and saved as a copy, and the startup file loaded again. Nothing
on disk is touched but the output, written atomically.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from .. import meshing
from ..dataset_tools.errors import VoxliftError
from ..dataset_tools.fileio import atomic_write_bytes
from . import mesh as blender_mesh

SPACING = 1.25  # between neighbouring objects along X: each fills a unit cube
SCENE_NAME = "voxlift"
CAMERA_AZIMUTH, CAMERA_ELEVATION = 30.0, 20.0  # degrees: front right, a little above (the dataset's views)
CAMERA_FOV = 40.0  # degrees
CAMERA_MARGIN = 1.15  # the objects' bounding sphere fills this much less than the view
SUN_ROTATION = (math.radians(40), 0.0, math.radians(30))  # from above, front right
SUN_STRENGTH = 3.0


def camera_placement(count: int, aspect: float = 1.0) -> tuple[Vector, Vector]:
    """(location, point looked at) of a camera that sees `count` unit cubes spaced along X, in a picture
    `aspect` (height / width, at most 1: CAMERA_FOV spans the width) as high as wide."""
    centre = Vector((SPACING * (count - 1) / 2, 0.0, 0.0))
    half = Vector((SPACING * (count - 1) / 2 + 0.5, 0.5, 0.5))
    half_fov = math.atan(math.tan(math.radians(CAMERA_FOV) / 2) * min(1.0, aspect))  # the narrower side
    distance = CAMERA_MARGIN * half.length / math.sin(half_fov)
    az, el = math.radians(CAMERA_AZIMUTH), math.radians(CAMERA_ELEVATION)
    # voxlift's views (README): azimuth 0 looks at the front, from -Y.
    direction = Vector((math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)))
    return centre + distance * direction, centre


def add_camera_and_light(scene: bpy.types.Scene, count: int) -> None:
    render = scene.render
    location, target = camera_placement(count, render.resolution_y / render.resolution_x)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.angle = math.radians(CAMERA_FOV)
    cam.location = location
    cam.rotation_euler = (target - location).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(cam)
    scene.camera = cam
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = SUN_STRENGTH
    sun.rotation_euler = SUN_ROTATION
    scene.collection.objects.link(sun)


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
    """One object per (name, grid of `probs` [B, R, R, R]), a camera and a sun, written atomically."""
    path = Path(path)
    if not bpy.app.background:
        raise VoxliftError(
            f"{path}: .blend files are written from the command line (voxlift reconstruct, or blender -b -c "
            "voxlift reconstruct); in an open Blender, the Reconstruct panel adds the objects to your scene"
        )
    bpy.ops.wm.read_homefile(use_empty=True)  # a main of our own: only what this file is to hold
    registered = hasattr(bpy.types.Object, "voxlift")
    if not registered:  # bpy as a plain module, the add-on not enabled: the object settings are needed
        blender_mesh.register()
    try:
        scene = bpy.context.scene
        scene.name = SCENE_NAME
        for i, (name, p) in enumerate(zip(names, probs, strict=True)):
            obj = blender_mesh.new_object(
                name, p, mode=mode, threshold=threshold, greedy=greedy, rotation_z=rotation_z
            )
            obj.location = (SPACING * i, 0.0, 0.0)
            scene.collection.objects.link(obj)
        add_camera_and_light(scene, len(names))
        # Blender writes to a path: write into a private folder, then put the bytes in place atomically.
        with tempfile.TemporaryDirectory(prefix="voxlift-") as tmp:
            staged = Path(tmp) / path.name
            bpy.ops.wm.save_as_mainfile(filepath=str(staged), copy=True, check_existing=False)
            atomic_write_bytes(path, staged.read_bytes())
    finally:
        if not registered:
            blender_mesh.unregister()
        bpy.ops.wm.read_homefile()  # the startup file again, as the command found Blender
