"""The straightforward per-model Blender script bench_render.py compares against (not part of voxlift).

In the style of the common ShapeNet renderers ("render_blender.py"): one process per model, factory
startup scene, OBJ import, camera on a rotating empty with a Track To constraint, one PNG per view. Same
engine and image settings as voxlift's default (Workbench, studio light, rendered at 2x the image size with
Blender's anti-aliasing off, transparent film), so only the way of working differs.

    python render_baseline.py MODEL.obj OUT_DIR [VIEWS] [IMAGE_SIZE]
"""

import math
import os
import sys

import bpy

obj_path, out_dir = sys.argv[1], sys.argv[2]
views = int(sys.argv[3]) if len(sys.argv) > 3 else 8
size = int(sys.argv[4]) if len(sys.argv) > 4 else 128

bpy.ops.wm.read_factory_settings()  # the default startup scene: cube, light, camera
for obj in list(bpy.data.objects):
    if obj.type == "MESH":
        bpy.data.objects.remove(obj, do_unlink=True)
bpy.ops.wm.obj_import(filepath=obj_path)  # Y up, front +Z -> Blender's Z up, front -Y

scene = bpy.context.scene
r = scene.render
r.engine = "BLENDER_WORKBENCH"
r.resolution_x = r.resolution_y = 2 * size
r.resolution_percentage = 100
r.film_transparent = True
r.image_settings.file_format = "PNG"
r.image_settings.color_mode = "RGBA"
scene.display.render_aa = "OFF"
scene.display.shading.light = "STUDIO"
scene.display.shading.color_type = "SINGLE"
scene.view_settings.view_transform = "Standard"

cam = scene.camera
cam.data.sensor_fit = "HORIZONTAL"
cam.data.angle = math.radians(40)
empty = bpy.data.objects.new("pivot", None)
scene.collection.objects.link(empty)
elevation, distance = math.radians(20), 2.5
cam.parent = None
cam.location = (0, -distance * math.cos(elevation), distance * math.sin(elevation))
cam.parent = empty
track = cam.constraints.new(type="TRACK_TO")
track.target = empty
track.track_axis = "TRACK_NEGATIVE_Z"
track.up_axis = "UP_Y"

os.makedirs(out_dir, exist_ok=True)
name = os.path.splitext(os.path.basename(obj_path))[0]
for i in range(views):
    empty.rotation_euler[2] = 2 * math.pi * i / views
    r.filepath = os.path.join(out_dir, f"{name}_{i:03d}.png")
    bpy.ops.render.render(write_still=True)
