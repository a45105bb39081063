"""The Reconstruct panel (voxlift sidebar tab) and bpy.ops.voxlift.reconstruct: an image in, a mesh out.

The image is the one picked in the panel (by default the image shown in an Image Editor), an image file, or
the current render result. Preprocessing (gray, background or alpha removal, framing like the renderings)
happens next to the model (reconstruct.py, backend/framing.py), in this process when torch
imports here, else in the Python environment set in the preferences. The new object sits at the 3D cursor,
named after the image, selected and active; it keeps its probabilities, so its threshold and mesh mode
change without running the network again (the "Active object" box, or the object's `voxlift` settings).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import bpy
import numpy as np

from .. import reconstruct
from ..dataset_tools.errors import VoxliftError
from ..io.images import check_image_file
from . import images, prefs
from . import mesh as blender_mesh

CATEGORY = "voxlift"
MAX_AZIMUTH = 360.0  # degrees either way


# ---------------------------------------------------------------------------------------------- inputs


def camera_azimuth(scene) -> float:
    """Azimuth (degrees) of the scene camera around the origin: 0 looks at the front (from -Y)."""
    cam = scene.camera
    if cam is None:
        return 0.0
    x, y = cam.matrix_world.translation[:2]
    return math.degrees(math.atan2(x, -y)) if abs(x) + abs(y) > 1e-9 else 0.0


def image_in_editor(context) -> bpy.types.Image | None:
    screen = context.screen
    for area in screen.areas if screen else []:
        if area.type == "IMAGE_EDITOR" and area.spaces.active.image is not None:
            return area.spaces.active.image
    return None


def gather_input(context, settings) -> tuple[np.ndarray, str, float]:
    """(pixels, object name, azimuth of the view) for the panel's chosen source: the values its file holds
    (images.py), already shrunk to what the model's framing needs (a big photo never blocks Blender)."""
    small = reconstruct.PREPARED_MAX_SIDE
    if settings.source == "RENDER":
        return images.render_result_pixels(context.scene, small), "Render", camera_azimuth(context.scene)
    if settings.source == "FILE":
        if not settings.filepath:
            raise VoxliftError("no image file chosen in the Reconstruct panel")
        path = check_image_file(bpy.path.abspath(settings.filepath))
        return images.file_pixels(path, small), path.stem, settings.azimuth
    img = settings.image or image_in_editor(context)
    if img is None:
        raise VoxliftError(
            "no image: open one in an Image Editor, or pick an image or a file in the Reconstruct panel"
        )
    return images.image_pixels(img, small), Path(img.name).stem or img.name, settings.azimuth


def checkpoint_of(settings, context) -> str:
    ckpt = bpy.path.abspath(settings.checkpoint) if settings.checkpoint else ""
    if not ckpt:
        p = prefs.get_prefs(context)
        ckpt = bpy.path.abspath(p.last_checkpoint) if p and p.last_checkpoint else ""
    if not ckpt:
        raise VoxliftError(
            "no model: choose a checkpoint (a run folder or .safetensors file) in the "
            "Reconstruct panel, or train one in the Train panel"
        )
    return ckpt.rstrip("/\\") if len(ckpt) > 1 else ckpt


# ---------------------------------------------------------------------------------------------- operator


class VOXLIFT_OT_reconstruct(bpy.types.Operator):
    bl_idname = "voxlift.reconstruct"
    bl_label = "Reconstruct"
    bl_description = "Turn the chosen image into a voxel mesh at the 3D cursor"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.voxlift_reconstruct
        t0 = time.perf_counter()
        try:
            ckpt = checkpoint_of(settings, context)
            pixels, name, azimuth = gather_input(context, settings)
            p = prefs.get_prefs(context)
            probs, viewer_centred = reconstruct.predict(
                [pixels], ckpt, p.device if p else "auto", prefs.current_backend(context)
            )
            grid = probs[0]
            if not (grid >= settings.threshold).any():
                raise VoxliftError(
                    f"{name}: the model sees nothing in this image at threshold "
                    f"{settings.threshold:.2f} (try a lower threshold or another image)"
                )
            obj = blender_mesh.create_object(
                context,
                name,
                grid,
                mode=settings.mode,
                threshold=settings.threshold,
                greedy=settings.greedy,
                rotation_z=reconstruct.scene_rotation(viewer_centred, azimuth),
            )
        except VoxliftError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings.last_seconds = time.perf_counter() - t0
        warning = reconstruct.checkpoint_warning(ckpt)
        if warning:
            self.report({"WARNING"}, warning)
        self.report(
            {"INFO"},
            f"{obj.name}: {grid.shape[0]}³ grid, {len(obj.data.polygons)} faces in "
            f"{settings.last_seconds:.2f} s",
        )
        return {"FINISHED"}


class VOXLIFT_OT_remesh(bpy.types.Operator):
    bl_idname = "voxlift.remesh"
    bl_label = "Re-mesh"
    bl_description = "Rebuild the active object's mesh from its stored probabilities"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and blender_mesh.PROBS_KEY in obj

    def execute(self, context):
        blender_mesh.rebuild(context.active_object)
        return {"FINISHED"}


class VoxliftReconstructSettings(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(
        name="Input",
        description="Where the picture to reconstruct comes from",
        items=[
            ("IMAGE", "Image", "An image in Blender (default: the one in an Image Editor)"),
            ("FILE", "File", "An image file"),
            ("RENDER", "Render", "The current render result (seen from the scene camera)"),
        ],
        default="IMAGE",
    )
    image: bpy.props.PointerProperty(
        name="Image",
        type=bpy.types.Image,
        description="The image to reconstruct (empty: the one shown in an Image Editor)",
    )
    filepath: bpy.props.StringProperty(
        name="File",
        subtype="FILE_PATH",
        description="An image file to reconstruct (PNG, JPEG, ...: anything Blender opens)",
    )
    checkpoint: bpy.props.StringProperty(
        name="Model",
        subtype="FILE_PATH",
        description="A run folder or .safetensors checkpoint (empty: the model trained last)",
    )
    mode: blender_mesh.mode_property()
    threshold: blender_mesh.threshold_property()
    greedy: blender_mesh.greedy_property()
    azimuth: bpy.props.FloatProperty(
        name="Seen from",
        default=0.0,
        min=-MAX_AZIMUTH,
        max=MAX_AZIMUTH,
        description="Azimuth (degrees) the picture was taken from: 0 is the front. Turns viewer-centred "
        "results back into the scene",
    )
    last_seconds: bpy.props.FloatProperty(options={"HIDDEN", "SKIP_SAVE"})


class VOXLIFT_PT_reconstruct(bpy.types.Panel):
    bl_label = "Reconstruct"
    bl_idname = "VOXLIFT_PT_reconstruct"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY

    def draw(self, context):
        layout = self.layout
        s = context.scene.voxlift_reconstruct
        layout.prop(s, "source", expand=True)
        if s.source == "IMAGE":
            layout.template_ID(s, "image", open="image.open")
        elif s.source == "FILE":
            layout.prop(s, "filepath")
        if s.source != "RENDER":
            layout.prop(s, "azimuth")
        layout.prop(s, "checkpoint")
        if not s.checkpoint:
            p = prefs.get_prefs(context)
            layout.label(
                text=f"Using: {Path(p.last_checkpoint).name}"
                if p and p.last_checkpoint
                else "No model yet: train one below",
                icon="INFO",
            )
        row = layout.row(align=True)
        row.prop(s, "mode", expand=True)
        layout.prop(s, "threshold", slider=True)
        if s.mode == "CUBES":
            layout.prop(s, "greedy")
        layout.operator(VOXLIFT_OT_reconstruct.bl_idname, icon="MESH_CUBE")
        obj = context.active_object
        if obj is not None and blender_mesh.PROBS_KEY in obj:
            box = layout.box()
            box.label(text=f"{obj.name} ({obj.get(blender_mesh.RES_KEY, '?')}³)", icon="OBJECT_DATA")
            box.row(align=True).prop(obj.voxlift, "mode", expand=True)
            box.prop(obj.voxlift, "threshold", slider=True)
            if obj.voxlift.mode == "CUBES":
                box.prop(obj.voxlift, "greedy")


CLASSES = (VoxliftReconstructSettings, VOXLIFT_OT_reconstruct, VOXLIFT_OT_remesh, VOXLIFT_PT_reconstruct)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.voxlift_reconstruct = bpy.props.PointerProperty(type=VoxliftReconstructSettings)


def unregister():
    del bpy.types.Scene.voxlift_reconstruct
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
