"""Rendering one model's fixed views in Blender: one scene per process, all views in one render call.

Only render workers (and the add-on in Blender) import this module: it needs bpy.

Choices, measured with bpy 5.0.1 on the 2-core test machine (Workbench, 8 views):
  * Pixels come back through uncompressed TGA files in a RAM-backed folder (/dev/shm). The compositor's
    Viewer node is not evaluated in background mode and `Render Result` has no readable pixels there, so a
    raw 18-byte-header file that numpy maps directly is the cheapest way out: no PNG encode/decode.
  * The V views are V frames of one animation render: the camera is keyframed once per process, so each
    model costs one `render(animation=True)` call (identical pixels to V still renders, ~10% faster).
  * Thin parts: Workbench's own anti-aliasing costs 30 ms a view at 128 px (8 samples) against 9 ms for
    rendering at 2x without it, so the default is supersampling K=2 with AA off and an exact box filter:
    every part wider than 1/K pixel hits at least one sample and leaves coverage in alpha.
  * Lighting: Workbench studio light that follows the camera (same shading in every view), one gray
    colour, no shadows or cavity: untextured, even light that shows the shape. Standard view transform so
    no tone curve changes the grays.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix

from .dataset_tools.camera import View, camera_matrix_world
from .render_worker import tmp_prefix

TGA_HEADER = 18
# Background the grayscale image is composited on (alpha keeps the exact coverage).
BACKGROUND = 255


@dataclass
class RenderSettings:
    views: list[View]
    image_size: int = 128
    supersample: int = 2
    engine: str = "workbench"  # or "cycles"
    cycles_samples: int = 16
    threads: int = 0  # render threads (0: Blender's default, all cores)
    purge_every: int = 50  # models between orphan purges (meshes are removed one by one anyway)


def tmp_root() -> str:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


class Renderer:
    """One scene, one camera keyframed at the V views; `render(vertices, faces)` -> (gray, alpha).

    Build it once per process: it resets Blender to factory settings (empty scene) on creation only."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.size = settings.image_size
        self.hi = settings.image_size * settings.supersample
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix(os.getpid()), dir=tmp_root())
        self.count = 0
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.scene = bpy.context.scene
        self._setup_scene()
        self._setup_camera()

    def _setup_scene(self) -> None:
        sc, s = self.scene, self.settings
        r = sc.render
        r.resolution_x = r.resolution_y = self.hi
        r.resolution_percentage = 100
        r.film_transparent = True
        r.use_compositing = False
        r.use_sequencer = False
        r.use_overwrite = True
        r.use_file_extension = True
        r.image_settings.file_format = "TARGA_RAW"
        r.image_settings.color_mode = "RGBA"
        r.filepath = os.path.join(self.tmp, "v_####")
        if s.threads:  # several workers share the cores: each keeps to its share
            r.threads_mode = "FIXED"
            r.threads = s.threads
        sc.view_settings.view_transform = "Standard"
        sc.view_settings.look = "None"
        if s.engine == "workbench":
            r.engine = "BLENDER_WORKBENCH"
            sc.display.render_aa = "OFF"  # the supersampling does the anti-aliasing (see module doc)
            sh = sc.display.shading
            sh.light = "STUDIO"
            sh.color_type = "SINGLE"
            sh.single_color = (0.8, 0.8, 0.8)
            sh.show_shadows = False
            sh.show_cavity = False
            sh.show_specular_highlight = False
            sh.use_world_space_lighting = False  # the light turns with the camera: same look in every view
        elif s.engine == "cycles":
            r.engine = "CYCLES"
            sc.cycles.device = "CPU"
            sc.cycles.samples = s.cycles_samples
            sc.cycles.use_denoising = False
            sc.cycles.use_adaptive_sampling = False
            sc.cycles.max_bounces = 2
            sc.cycles.filter_width = 0.01  # box filtering is done by the supersampling
            world = bpy.data.worlds.new("voxlift")
            world.use_nodes = True
            bg = world.node_tree.nodes.get("Background")
            bg.inputs["Color"].default_value = (1, 1, 1, 1)
            bg.inputs["Strength"].default_value = 0.35  # soft fill light from every side; the sun shapes
            sc.world = world
            self.material = bpy.data.materials.new("voxlift-gray")
            self.material.use_nodes = True
            bsdf = self.material.node_tree.nodes.get("Principled BSDF")
            if bsdf is not None:
                bsdf.inputs["Base Color"].default_value = (0.8, 0.8, 0.8, 1)
                bsdf.inputs["Roughness"].default_value = 0.8
            sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
            sun.data.energy = 2.5
            sun.rotation_euler = (0.6, 0.2, 0.8)
            sc.collection.objects.link(sun)
        else:
            raise ValueError(f"unknown engine {s.engine!r} (workbench or cycles)")

    def _setup_camera(self) -> None:
        sc, views = self.scene, self.settings.views
        fovs = {v.fov for v in views}
        if len(fovs) != 1:
            raise ValueError("all views of a dataset share one field of view")
        data = bpy.data.cameras.new("voxlift")
        data.sensor_fit = "HORIZONTAL"  # the fov spans the image width (camera.intrinsics)
        data.angle = np.radians(fovs.pop())
        data.clip_start, data.clip_end = 0.01, 100.0
        cam = bpy.data.objects.new("voxlift-camera", data)
        sc.collection.objects.link(cam)
        sc.camera = cam
        for i, v in enumerate(views):
            cam.matrix_world = Matrix(camera_matrix_world(v.azimuth, v.elevation, v.distance).tolist())
            cam.keyframe_insert("location", frame=i + 1)
            cam.keyframe_insert("rotation_euler", frame=i + 1)
        sc.frame_start, sc.frame_end = 1, len(views)

    def render(self, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gray and alpha, uint8 [V, S, S] each, rows top first; gray is composited on BACKGROUND."""
        obj = self._add_mesh(vertices, faces)
        try:
            for name in os.listdir(self.tmp):  # a stale frame must never pass for this model's
                os.unlink(os.path.join(self.tmp, name))
            bpy.ops.render.render(animation=True)
            rgba = np.stack([self._read(i + 1) for i in range(len(self.settings.views))])
        finally:
            mesh = obj.data
            bpy.data.objects.remove(obj, do_unlink=True)
            bpy.data.meshes.remove(mesh, do_unlink=True)
            self.count += 1
            if self.count % self.settings.purge_every == 0:
                bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=True, do_recursive=True)
        return downsample(rgba, self.settings.supersample)

    def _add_mesh(self, vertices: np.ndarray, faces: np.ndarray):
        """A Blender mesh straight from numpy (no importer, no per-vertex Python): same geometry as the voxels."""
        v = np.ascontiguousarray(vertices, dtype=np.float32).reshape(-1)
        f = np.ascontiguousarray(faces, dtype=np.int32).reshape(-1)
        mesh = bpy.data.meshes.new("voxlift-model")
        mesh.vertices.add(len(v) // 3)
        mesh.vertices.foreach_set("co", v)
        mesh.loops.add(len(f))
        mesh.loops.foreach_set("vertex_index", f)
        mesh.polygons.add(len(f) // 3)
        mesh.polygons.foreach_set("loop_start", np.arange(0, len(f), 3, dtype=np.int32))
        mesh.update()
        if self.settings.engine == "cycles":
            mesh.materials.append(self.material)
        obj = bpy.data.objects.new("voxlift-model", mesh)
        self.scene.collection.objects.link(obj)
        return obj

    def _read(self, frame: int) -> np.ndarray:
        path = os.path.join(self.tmp, f"v_{frame:04d}.tga")
        n = self.hi * self.hi * 4
        raw = np.fromfile(path, dtype=np.uint8, count=TGA_HEADER + n)
        if raw.size != TGA_HEADER + n or raw[2] != 2 or raw[16] != 32:
            raise RuntimeError(f"{path}: not the uncompressed 32-bit TGA Blender was asked for")
        # TGA stores BGRA, bottom row first unless bit 5 of the descriptor says top first.
        img = raw[TGA_HEADER:].reshape(self.hi, self.hi, 4)
        if not raw[17] & 0x20:
            img = img[::-1]
        return img[..., [2, 1, 0, 3]]

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def downsample(rgba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-filter [V, kS, kS, 4] straight-alpha RGBA to gray and alpha uint8 [V, S, S].

    Averages premultiplied luminance, so the gray is exactly the supersampled image composited on
    BACKGROUND. Integer sums at full size, floats only at the final size (4x fewer pixels at K=2)."""
    c = rgba.astype(np.uint32)
    a = c[..., 3]
    # Rec. 709 luminance in 1/256 steps; times alpha it stays below 2^24.
    pm = (c[..., 0] * 54 + c[..., 1] * 183 + c[..., 2] * 19) * a
    if k > 1:  # k*k strided adds: much faster than a reduction over reshaped axes
        a = sum(a[:, i::k, j::k] for i in range(k) for j in range(k))
        pm = sum(pm[:, i::k, j::k] for i in range(k) for j in range(k))
    cov = a.astype(np.float32) / np.float32(255 * k * k)
    gray = pm.astype(np.float32) / np.float32(256 * 255 * 255 * k * k) + (1.0 - cov) * np.float32(
        BACKGROUND / 255
    )

    def to_u8(z):
        return np.clip(np.rint(z * 255.0), 0, 255).astype(np.uint8)

    return to_u8(gray), to_u8(cov)
