"""The Reconstruct panel (voxlift sidebar tab) and bpy.ops.voxlift.reconstruct: an image in, a mesh out.

The picture is, in order: a reference image selected in the 3D viewport (an image empty, Add > Image >
Reference or Background), the image picked in the panel, or the image shown in an Image Editor; or an image
file, or the current render result. Preprocessing (gray, background or alpha removal, framing like the
renderings) happens next to the model (reconstruct.py, backend/framing.py), in this process when torch
imports here, else in the Python environment set in the preferences.

The model is the one chosen in the panel, else the one trained last, else the starter model that ships with
voxlift; the panel says which, what the starter knows, and its threshold (the model's own, chosen on
validation, unless the panel sets one). The new object, named after the image, is selected and active: at a
selected reference image it stands where the picture's object is, sized and turned to it (placement.py);
otherwise it sits at the 3D cursor. It keeps its probabilities, so its threshold and mesh mode change
without running the network again (the "Active object" box, or the object's `voxlift` settings).
"""

from __future__ import annotations

import math
import os
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from .. import placement, reconstruct
from ..backend.starter import is_starter, starter_checkpoint
from ..dataset_tools.errors import VoxliftError
from ..io.images import check_image_file
from . import images, prefs
from . import mesh as blender_mesh

CATEGORY = "voxlift"
MAX_AZIMUTH = 360.0  # degrees either way
LABEL_CHARS = 44  # a sidebar line: longer texts are wrapped
_thresholds: dict = {}  # checkpoint file -> (mtime, its threshold): the panel redraws often


# ---------------------------------------------------------------------------------------------- inputs


@dataclass
class Picture:
    pixels: np.ndarray
    name: str  # the new object's
    azimuth: float  # degrees: where the picture was seen from
    reference: bpy.types.Object | None = None  # the image empty it came from, if any


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


def is_reference_image(obj) -> bool:
    """An image empty with a picture (Add > Image > Reference or Background)."""
    return (
        obj is not None
        and obj.type == "EMPTY"
        and obj.empty_display_type == "IMAGE"
        and isinstance(obj.data, bpy.types.Image)
    )


def selected_reference(context) -> bpy.types.Object | None:
    """The selected reference image: the active object when it is one, else the first selected one."""
    active = context.view_layer.objects.active
    if is_reference_image(active) and active.select_get():
        return active
    return next((o for o in context.selected_objects if is_reference_image(o)), None)


def reference_angles(obj, update: bool = True) -> tuple[float, float]:
    """(azimuth, elevation) in degrees the reference image is seen from: its local +Z in the world.
    `update`: first bring matrix_world up to date with the object's transform (not while drawing)."""
    if update:
        bpy.context.view_layer.update()
    return placement.viewing_angles(np.array(obj.matrix_world)[:3, 2])


def gather_input(context, settings) -> Picture:
    """The panel's chosen picture: its values as its file holds them (images.py), already shrunk to what the
    model's framing needs (a big photo never blocks Blender)."""
    small = reconstruct.WORKING_SIDE
    if settings.source == "RENDER":
        return Picture(
            images.render_result_pixels(context.scene, small), "Render", camera_azimuth(context.scene)
        )
    if settings.source == "FILE":
        if not settings.filepath:
            raise VoxliftError("no image file chosen in the Reconstruct panel")
        path = check_image_file(bpy.path.abspath(settings.filepath))
        return Picture(images.file_pixels(path, small), path.stem, settings.azimuth)
    ref = selected_reference(context)
    if ref is not None:
        img = ref.data
        return Picture(images.image_pixels(img, small), _stem(img), reference_angles(ref)[0], ref)
    img = settings.image or image_in_editor(context)
    if img is None:
        raise VoxliftError(
            "no image: select a reference image in the 3D viewport, open one in an Image Editor, or pick an "
            "image or a file in the Reconstruct panel"
        )
    return Picture(images.image_pixels(img, small), _stem(img), settings.azimuth)


def _stem(img: bpy.types.Image) -> str:
    return Path(img.name).stem or img.name


# ---------------------------------------------------------------------------------------------- models


def _clean(path: str) -> str:
    return path.rstrip("/\\") if len(path) > 1 else path


def model_in_use(settings, context) -> tuple[str | None, str]:
    """(checkpoint, why): the panel's model; else the model trained last, while it is still there; else None,
    the starter model. `why` ("chosen", "trained last", "starter") is for the panel."""
    if settings.checkpoint:
        ckpt = _clean(bpy.path.abspath(settings.checkpoint))
        return ckpt, "starter" if is_starter(ckpt) else "chosen"
    p = prefs.get_prefs(context)
    last = _clean(bpy.path.abspath(p.last_checkpoint)) if p and p.last_checkpoint else ""
    if last and os.path.exists(last):
        return last, "trained last"
    return None, "starter"


def threshold_of(checkpoint) -> float | None:
    """The model's own threshold, read from its file once per change of the file."""
    try:
        path = reconstruct.model_path(checkpoint)
        mtime = path.stat().st_mtime_ns
    except (VoxliftError, OSError):
        return None
    if _thresholds.get(str(path), (None,))[0] != mtime:
        _thresholds[str(path)] = (mtime, reconstruct.model_threshold(path))
    return _thresholds[str(path)][1]


def model_lines(settings, context) -> list[tuple[str, str]]:
    """(text, icon) lines for the panel: the model in use, what it knows, its threshold."""
    ckpt, why = model_in_use(settings, context)
    if ckpt is None and starter_checkpoint() is None:
        return [("No model: choose a checkpoint, or train one below", "ERROR")]
    label = reconstruct.model_label(ckpt)
    lines = [(f"Model: {label}" + ("" if why in ("chosen", "starter") else f" ({why})"), "INFO")]
    reach = reconstruct.model_reach(ckpt)
    if reach:
        lines += [
            (text, "BLANK1")
            for text in textwrap.wrap("Shipped with voxlift, " + reach, LABEL_CHARS, break_on_hyphens=False)
        ]
    if not settings.own_threshold:
        t = threshold_of(ckpt)
        lines.append(
            (f"Threshold: the model's own ({t:.2f})" if t else "Threshold: the model's own", "BLANK1")
        )
    return lines


# ---------------------------------------------------------------------------------------------- placing


def place_at_reference(obj: bpy.types.Object, ref: bpy.types.Object, box, rotation: float) -> None:
    """Put `obj` where its reference image's object is: centred on it, scaled so that its silhouette along
    the picture's normal is as large as the object in the picture, turned by `rotation` degrees about Z."""
    w, h = ref.data.size
    rect = placement.picture_rectangle(
        w, h, ref.empty_display_size, tuple(ref.empty_image_offset), tuple(ref.data.display_aspect)
    )
    co = np.empty(3 * len(obj.data.vertices), np.float32)
    obj.data.vertices.foreach_get("co", co)
    verts = reconstruct.rotate_z(co.reshape(-1, 3), rotation)
    where = placement.place_on_picture(verts, np.array(ref.matrix_world), placement.box_on_picture(box, rect))
    obj.location = tuple(where.location)
    obj.scale = (where.scale,) * 3


def make_object(context, settings, picture: Picture, result: reconstruct.Prediction) -> bpy.types.Object:
    threshold = settings.threshold if settings.own_threshold else result.threshold
    grid = result.probs[0]
    if not (grid >= threshold).any():
        raise VoxliftError(
            f"{picture.name}: the model sees nothing in this image at threshold {threshold:.2f} "
            "(set a lower threshold, or try another image)"
        )
    rotation = reconstruct.scene_rotation(result.viewer_centred, picture.azimuth)
    obj = blender_mesh.create_object(
        context,
        picture.name,
        grid,
        mode=settings.mode,
        threshold=threshold,
        greedy=settings.greedy,
        rotation_z=rotation,
    )
    if picture.reference is not None:
        place_at_reference(obj, picture.reference, result.boxes[0], rotation)
    obj[blender_mesh.MODEL_KEY] = result.model
    obj[blender_mesh.FOUND_KEY] = result.found[0]
    return obj


# ---------------------------------------------------------------------------------------------- operators


class VOXLIFT_OT_reconstruct(bpy.types.Operator):
    bl_idname = "voxlift.reconstruct"
    bl_label = "Reconstruct"
    bl_description = (
        "Turn the chosen picture into a voxel mesh: where a selected reference image stands, or at the 3D "
        "cursor"
    )
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.voxlift_reconstruct
        t0 = time.perf_counter()
        try:
            ckpt, _ = model_in_use(settings, context)
            picture = gather_input(context, settings)
            p = prefs.get_prefs(context)
            result = reconstruct.predict(
                [picture.pixels],
                ckpt,
                p.device if p else "auto",
                prefs.current_backend(context),
                names=[picture.name],
            )
            obj = make_object(context, settings, picture, result)
        except VoxliftError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings.last_seconds = time.perf_counter() - t0
        warning = reconstruct.checkpoint_warning(result.checkpoint)
        if warning:
            self.report({"WARNING"}, warning)
        self.report(
            {"INFO"},
            f"{obj.name}: model {result.model}, object found by {result.found[0]}, threshold "
            f"{obj.voxlift.threshold:.2f}, {len(obj.data.polygons)} faces in {settings.last_seconds:.2f} s",
        )
        return {"FINISHED"}


class VOXLIFT_OT_use_starter(bpy.types.Operator):
    bl_idname = "voxlift.use_starter"
    bl_label = "Use the Starter Model"
    bl_description = "Reconstruct with the starter model that ships with voxlift instead of a trained one"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return starter_checkpoint() is not None

    def execute(self, context):
        context.scene.voxlift_reconstruct.checkpoint = str(starter_checkpoint())
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


def _own_threshold(self, context):
    self.own_threshold = True  # a threshold set here (in the panel or by a script) is the user's


class VoxliftReconstructSettings(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(
        name="Input",
        description="Where the picture to reconstruct comes from",
        items=[
            (
                "IMAGE",
                "Image",
                (
                    "A reference image selected in the 3D viewport (the result stands where it does), else "
                    "the image picked here, else the one shown in an Image Editor"
                ),
            ),
            ("FILE", "File", "An image file"),
            ("RENDER", "Render", "The current render result (seen from the scene camera)"),
        ],
        default="IMAGE",
    )
    image: bpy.props.PointerProperty(
        name="Image",
        type=bpy.types.Image,
        description="The image to reconstruct (empty: the one shown in an Image Editor); a selected "
        "reference image comes first",
    )
    filepath: bpy.props.StringProperty(
        name="File",
        subtype="FILE_PATH",
        description="An image file to reconstruct (PNG, JPEG, ...: anything Blender opens)",
    )
    checkpoint: bpy.props.StringProperty(
        name="Model",
        subtype="FILE_PATH",
        description="A run folder or .safetensors checkpoint (empty: the model trained last, else the "
        "starter model that ships with voxlift)",
    )
    mode: blender_mesh.mode_property()
    own_threshold: bpy.props.BoolProperty(
        name="Own threshold",
        description="Use the threshold set here instead of the model's own (chosen on validation when it "
        "was trained)",
        default=False,
    )
    threshold: blender_mesh.threshold_property(update=_own_threshold)
    greedy: blender_mesh.greedy_property()
    azimuth: bpy.props.FloatProperty(
        name="Seen from",
        default=0.0,
        min=-MAX_AZIMUTH,
        max=MAX_AZIMUTH,
        description="Azimuth (degrees) the picture was taken from: 0 is the front. Turns viewer-centred "
        "results back into the scene (a selected reference image says it itself)",
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
        ref = selected_reference(context) if s.source == "IMAGE" else None
        if ref is not None:
            az, el = reference_angles(ref, update=False)
            layout.label(text=f"Selected picture: {ref.name}", icon="IMAGE_REFERENCE")
            layout.label(text=f"seen from {az:.0f}°, {el:.0f}° above: the result stands there", icon="BLANK1")
        elif s.source == "IMAGE":
            layout.template_ID(s, "image", open="image.open")
        elif s.source == "FILE":
            layout.prop(s, "filepath")
        if s.source != "RENDER" and ref is None:
            layout.prop(s, "azimuth")
        row = layout.row(align=True)
        row.prop(s, "checkpoint")
        if model_in_use(s, context)[1] != "starter":
            row.operator(VOXLIFT_OT_use_starter.bl_idname, text="", icon="LOOP_BACK")
        for text, icon in model_lines(s, context):
            layout.label(text=text, icon=icon)
        row = layout.row(align=True)
        row.prop(s, "mode", expand=True)
        row = layout.row(align=True)
        row.prop(s, "own_threshold", text="")
        sub = row.row(align=True)
        sub.enabled = s.own_threshold
        sub.prop(s, "threshold", slider=True)
        if s.mode == "CUBES":
            layout.prop(s, "greedy")
        layout.operator(VOXLIFT_OT_reconstruct.bl_idname, icon="MESH_CUBE")
        obj = context.active_object
        if obj is not None and blender_mesh.PROBS_KEY in obj:
            draw_object_box(layout.box(), obj)


def draw_object_box(box, obj) -> None:
    """The active reconstruction: which model made it, how its picture's object was found, its settings."""
    box.label(text=f"{obj.name} ({obj.get(blender_mesh.RES_KEY, '?')}³)", icon="OBJECT_DATA")
    if blender_mesh.MODEL_KEY in obj:
        box.label(
            text=f"Model {obj[blender_mesh.MODEL_KEY]}, object found by {obj.get(blender_mesh.FOUND_KEY, '?')}",
            icon="BLANK1",
        )
    box.row(align=True).prop(obj.voxlift, "mode", expand=True)
    box.prop(obj.voxlift, "threshold", slider=True)
    if obj.voxlift.mode == "CUBES":
        box.prop(obj.voxlift, "greedy")


CLASSES = (
    VoxliftReconstructSettings,
    VOXLIFT_OT_reconstruct,
    VOXLIFT_OT_use_starter,
    VOXLIFT_OT_remesh,
    VOXLIFT_PT_reconstruct,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.voxlift_reconstruct = bpy.props.PointerProperty(type=VoxliftReconstructSettings)


def unregister():
    del bpy.types.Scene.voxlift_reconstruct
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
