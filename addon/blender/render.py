"""Rendering one model's fixed views in Blender: one scene per process, all views in one render call.

Only render workers (blender/render_worker.py) import this module: it needs bpy.

Choices, measured with bpy 5.0.1 on the 2-core test machine (Workbench, 8 views):
  * Pixels come back through uncompressed TGA files in a RAM-backed folder (/dev/shm). The compositor's
    Viewer node is not evaluated in background mode and `Render Result` has no readable pixels there, so a
    raw 18-byte-header file that numpy maps directly is the cheapest way out: no PNG encode/decode.
  * The V views are V frames of one animation render: the camera is keyframed once per process, so each
    model costs one `render(animation=True)` call (identical pixels to V still renders, ~10% faster).
  * Thin parts: Workbench's own anti-aliasing costs 30 ms a view at 128 px (8 samples) against 9 ms for
    rendering at 2x without it, so the default is supersampling K=2 with AA off and an exact box filter:
    every part wider than 1/K pixel hits at least one sample and leaves coverage in alpha.
  * Lighting (appearance plain): Workbench studio light that follows the camera (same shading in every
    view), one gray colour, no shadows or cavity: untextured, even light that shows the shape. Standard view
    transform so no tone curve changes the grays.
  * Appearance random (../render_appearance.py decides, this module applies): the model's materials become
    Blender materials (Workbench shows their viewport colour, or their image texture over the mesh's UVs).
    Most of Workbench's lighting settings cannot be keyframed, so a frame_change_pre handler sets each
    frame's camera and lighting (light, studio light or matcap, specular, cavity, shadows, exposure) as the
    animation render reaches it: still one render call per model (one call per view costs ~10% more and
    gives the same pixels). Every setting that varies is set for every view, so nothing of one model or
    view leaks into the next.
  * Per-model cameras (camera jitter) are placed by the same handler rather than keyframed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix

from ..dataset_tools.camera import View, camera_matrix_world
from ..dataset_tools.mesh import MeshMaterials
from ..render_appearance import REC709, ModelLook, ViewLook
from ..render_protocol import tmp_prefix, tmp_root

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
    appearance: str = "plain"  # or "random" (render_appearance.py)
    per_model_views: bool = False  # each model brings its own cameras (camera jitter)


class Renderer:
    """One scene, one camera keyframed at the V views (or placed frame by frame); `render(vertices, faces)`
    -> (gray, alpha).

    Build it once per process: it resets Blender to factory settings (empty scene) on creation only."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.size = settings.image_size
        self.hi = settings.image_size * settings.supersample
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix(os.getpid()), dir=tmp_root())
        self.count = 0
        # Camera and lighting set frame by frame when views or looks differ per model (see the module doc).
        self.per_frame = settings.appearance != "plain" or settings.per_model_views
        if settings.appearance != "plain" and settings.engine != "workbench":
            raise ValueError(f"appearance {settings.appearance!r} needs the workbench engine")
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.scene = bpy.context.scene
        self._setup_scene()
        self._setup_camera()
        lights = bpy.context.preferences.studio_lights
        self.lights = {
            kind: sorted(lt.name for lt in lights if lt.type == kind) for kind in ("STUDIO", "MATCAP")
        }

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
        if len(fovs) != 1 and not self.per_frame:
            raise ValueError("all views of a dataset share one field of view")
        data = bpy.data.cameras.new("voxlift")
        data.sensor_fit = "HORIZONTAL"  # the fov spans the image width (camera.intrinsics)
        data.angle = np.radians(views[0].fov)
        data.clip_start, data.clip_end = 0.01, 100.0
        cam = bpy.data.objects.new("voxlift-camera", data)
        sc.collection.objects.link(cam)
        sc.camera = cam
        self.camera = cam
        sc.frame_start, sc.frame_end = 1, len(views)
        self._frames: list[tuple[View, ViewLook | None]] = []  # the model's (view, look) per frame
        if self.per_frame:  # placed frame by frame instead (see the module doc)

            def on_frame(scene, *_):
                if 1 <= scene.frame_current <= len(self._frames):
                    self._set_frame(*self._frames[scene.frame_current - 1])

            self._handler = on_frame
            bpy.app.handlers.frame_change_pre.append(on_frame)
            return
        for i, v in enumerate(views):
            cam.matrix_world = Matrix(camera_matrix_world(v.azimuth, v.elevation, v.distance).tolist())
            cam.keyframe_insert("location", frame=i + 1)
            cam.keyframe_insert("rotation_euler", frame=i + 1)

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        look: ModelLook | None = None,
        materials: MeshMaterials | None = None,
        views: list[View] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gray and alpha, uint8 [V, S, S] each, rows top first; gray is composited on BACKGROUND.

        `look` (appearance random) dresses the model, with `materials` (the source's, or None);
        `views` are the model's own cameras (None: the settings' views)."""
        obj = self._add_mesh(vertices, faces)
        made: list = []  # materials and images made for this model, removed with it
        try:
            self._clear_frames()
            if self.per_frame:
                if look is not None:
                    made = self._dress(obj.data, look, materials)
                views = views if views is not None else self.settings.views
                looks = look.views if look is not None else [None] * len(views)
                self._frames = list(zip(views, looks, strict=True))
                self._set_frame(*self._frames[0])  # the frame the scene is at: set without the handler too
            try:
                bpy.ops.render.render(animation=True)
            finally:
                self._frames = []
            rgba = np.stack([self._read(i + 1) for i in range(len(self.settings.views))])
        finally:
            mesh = obj.data
            bpy.data.objects.remove(obj, do_unlink=True)
            bpy.data.meshes.remove(mesh, do_unlink=True)
            for block in made:
                (bpy.data.images if isinstance(block, bpy.types.Image) else bpy.data.materials).remove(block)
            self.count += 1
            if self.count % self.settings.purge_every == 0:
                bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=True, do_recursive=True)
        luma = look.luma if look is not None else REC709
        return downsample(rgba, self.settings.supersample, luma)

    def _clear_frames(self) -> None:
        for name in os.listdir(self.tmp):  # a stale frame must never pass for this model's
            os.unlink(os.path.join(self.tmp, name))

    def _set_frame(self, view: View, look: ViewLook | None) -> None:
        """Camera and lighting of one frame (one view)."""
        self.camera.matrix_world = Matrix(
            camera_matrix_world(view.azimuth, view.elevation, view.distance).tolist()
        )
        self.camera.data.angle = np.radians(view.fov)
        if look is not None:
            self._light(look)

    def _light(self, look: ViewLook) -> None:
        """Workbench's lighting for one view; every setting that any view changes is set here."""
        sc = self.scene
        sh = sc.display.shading
        names = self.lights.get(look.light, [])
        if look.light == "MATCAP" and not names:  # a Blender without matcaps: its studio light instead
            sh.light, names = "STUDIO", self.lights["STUDIO"]
        else:
            sh.light = look.light
        if sh.light != "FLAT" and names:
            sh.studio_light = look.studio_light if look.studio_light in names else names[0]
        sh.use_world_space_lighting = look.world_lighting
        sh.studiolight_rotate_z = look.light_rotation
        sh.show_specular_highlight = look.specular
        sh.show_cavity = look.cavity
        sh.cavity_type = look.cavity_type
        sh.cavity_ridge_factor = sh.curvature_ridge_factor = look.cavity_ridge
        sh.cavity_valley_factor = sh.curvature_valley_factor = look.cavity_valley
        sh.show_shadows = look.shadows
        sh.shadow_intensity = look.shadow_intensity
        sc.display.light_direction = look.light_direction
        sc.view_settings.exposure = look.exposure

    def _dress(self, mesh, look: ModelLook, materials: MeshMaterials | None) -> list:
        """One Blender material per colour slot (slot 0: faces without a material), the faces assigned, and
        the source's textures over its UVs when the look shows them. Returns the datablocks made."""
        made = []
        for k, color in enumerate(look.colors):
            mat = bpy.data.materials.new(f"voxlift-{k}")
            mat.diffuse_color = (*color, 1.0)
            mat.roughness = look.roughness
            mat.metallic = look.metallic
            mesh.materials.append(mat)
            made.append(mat)
        if materials is not None and len(look.colors) == len(materials.materials) + 1:
            slots = np.ascontiguousarray(materials.face_material + 1, dtype=np.int32)
            mesh.polygons.foreach_set("material_index", slots)
        textured = look.use_textures and materials is not None and materials.uv is not None
        sh = self.scene.display.shading
        sh.color_type = "TEXTURE" if textured else "MATERIAL"
        if textured:
            layer = mesh.uv_layers.new(name="uv")
            layer.data.foreach_set("uv", np.ascontiguousarray(materials.uv, dtype=np.float32).reshape(-1))
            for k, material in enumerate(materials.materials):
                data = materials.textures.get(material.texture) if material.texture else None
                if data:
                    made.append(_texture(made[k + 1], data, material.texture))
        mesh.update()
        return made

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
        handler = getattr(self, "_handler", None)
        if handler in bpy.app.handlers.frame_change_pre:
            bpy.app.handlers.frame_change_pre.remove(handler)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _texture(material, data: bytes, name: str):
    """An image from file bytes (PNG, JPEG...: Blender decodes them), packed (no file), as the material's
    active image node: what Workbench's texture colour shows."""
    image = bpy.data.images.new(f"voxlift-{os.path.basename(name)}", 8, 8)
    image.pack(data=data, data_len=len(data))
    image.source = "FILE"
    image.alpha_mode = "NONE"  # a texture's transparency must not cut holes in alpha: coverage is geometry's
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    material.node_tree.nodes.active = node
    return image


def downsample(
    rgba: np.ndarray, k: int, luma: tuple[int, int, int] = REC709
) -> tuple[np.ndarray, np.ndarray]:
    """Box-filter [V, kS, kS, 4] straight-alpha RGBA to gray and alpha uint8 [V, S, S].

    Averages premultiplied luminance (weights `luma` of R, G, B in 1/256, summing to 256), so the gray is
    exactly the supersampled image composited on BACKGROUND. Integer sums at full size, floats only at the
    final size (4x fewer pixels at K=2)."""
    c = rgba.astype(np.uint32)
    a = c[..., 3]
    # Luminance in 1/256 steps; times alpha it stays below 2^24.
    wr, wg, wb = luma
    pm = (c[..., 0] * wr + c[..., 1] * wg + c[..., 2] * wb) * a
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
