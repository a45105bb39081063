"""The "Dataset" panel in the 3D viewport's sidebar (voxlift tab) and its Render / Cancel operators.

Rendering never runs in Blender's own process: the operator starts a RenderJob (../render_job.py), whose
workers are child processes, and a modal timer polls it without blocking, so the UI stays responsive and
shows progress. Cancel kills the workers; the dataset keeps every model committed so far and the next
Render resumes. In background mode (`blender -b`, tests) there is no event loop for a modal timer, so the
operator runs the same job to the end before returning.
"""

from __future__ import annotations

import os

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from ..dataset_tools.errors import VoxliftError

_job = None  # the running RenderJob (one at a time per Blender session)
_cancel_requested = False


class VoxliftDatasetSettings(bpy.types.PropertyGroup):
    sources: StringProperty(
        name="Sources",
        default="synthetic:100",
        description="Mesh sources separated by ';': .sh3f files or folders, ShapeNet roots, OBJ folders, "
        "synthetic:N[:seed]",
    )
    categories: StringProperty(
        name="Categories",
        default="chair,table",
        description="Comma-separated categories to keep (empty: all)",
    )
    limit: IntProperty(name="Limit", default=0, min=0, description="At most this many models (0: all)")
    views: IntProperty(name="Views", default=8, min=1, max=64, description="Views per model")
    image_size: IntProperty(name="Image size", default=128, min=8, max=1024, description="Pixels")
    resolution: IntProperty(name="Voxels", default=32, min=4, max=256, description="Voxel grid resolution")
    engine: EnumProperty(
        name="Engine",
        items=[
            ("workbench", "Workbench", "Fast, no GPU needed"),
            ("cycles", "Cycles", "Path traced, slower"),
        ],
    )
    appearance: EnumProperty(
        name="Appearance",
        items=[
            ("plain", "Plain", "One gray colour under one studio light, the same in every view"),
            (
                "random",
                "Random",
                (
                    "The model's own colours and textures (or random ones) and a random lighting per view "
                    "(studio light, matcap or flat, specular, cavity, shadows, exposure), the same for a "
                    "model in every run. Makes models trained on it cope with coloured, darker pictures"
                ),
            ),
        ],
        default="plain",
        description="How models look in the renderings (images are stored grayscale either way)",
    )
    workers: IntProperty(
        name="Workers",
        default=max(1, (os.cpu_count() or 2) - 1),
        min=1,
        max=256,
        description="Blender processes rendering in parallel",
    )
    out: StringProperty(
        name="Output",
        default="//voxlift_dataset",
        subtype="DIR_PATH",
        description="Dataset folder (resumed if it exists)",
    )


class VoxliftRenderStatus(bpy.types.PropertyGroup):
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(name="Status", default="")


def options_from_settings(s: VoxliftDatasetSettings):
    from ..dataset_tools.sources import normalize_categories
    from ..render_job import RenderOptions

    sources = [p.strip() for p in s.sources.replace("\n", ";").split(";") if p.strip()]
    sources = [p if p.startswith("synthetic:") else bpy.path.abspath(p) for p in sources]
    if not sources:
        raise VoxliftError("Sources: give at least one mesh source")
    if not s.out.strip():
        raise VoxliftError("Output: choose a dataset folder")
    cats = normalize_categories(s.categories) if s.categories.strip() else None
    return RenderOptions(
        sources=sources,
        out=bpy.path.abspath(s.out),
        categories=sorted(cats) if cats else None,
        limit=s.limit or None,
        views=s.views,
        image_size=s.image_size,
        resolution=s.resolution,
        engine=s.engine,
        appearance=s.appearance,
        workers=s.workers,
    )


def _status_text(job) -> str:
    eta = job.eta
    eta_text = f", ETA {int(eta // 60)}:{int(eta % 60):02d}" if eta is not None else ""
    return f"{job.done}/{job.total} models, {job.rate:.2f} models/s{eta_text}" + (
        f", {job.skipped} skipped" if job.skipped else ""
    )


class VOXLIFT_OT_render_dataset(bpy.types.Operator):
    """Render an aligned dataset (images, alpha, voxels, cameras) in background Blender processes"""

    bl_idname = "voxlift.render_dataset"
    bl_label = "Render Dataset"

    _timer = None

    @classmethod
    def poll(cls, context):
        return _job is None

    def _start(self, context):
        global _job, _cancel_requested
        from ..render_job import RenderJob

        opts = options_from_settings(context.scene.voxlift_dataset)
        job = RenderJob(opts, log=lambda msg: print(f"voxlift: {msg}"))
        job.start()
        _job, _cancel_requested = job, False
        status = context.window_manager.voxlift_render
        status.progress, status.status = 0.0, _status_text(job)
        return job

    def execute(self, context):
        global _job
        try:
            job = self._start(context)
        except VoxliftError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not bpy.app.background:
            wm = context.window_manager
            self._timer = wm.event_timer_add(0.25, window=context.window)
            wm.progress_begin(0, 1000)
            wm.modal_handler_add(self)
            return {"RUNNING_MODAL"}
        try:  # no event loop: run to the end here (child processes still do the rendering)
            while job.poll(0.5):
                pass
        except VoxliftError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            _job = None
            job.close()
        self._done(context, job)
        return {"FINISHED"}

    def modal(self, context, event):
        job = _job
        if job is None:
            return self._end(context, {"CANCELLED"})
        if event.type == "ESC" or _cancel_requested:
            job.cancel()
            context.window_manager.voxlift_render.status = f"cancelled: {_status_text(job)}"
            self.report(
                {"WARNING"}, f"voxlift: render cancelled after {job.done} models (run again to resume)"
            )
            return self._end(context, {"CANCELLED"})
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            running = job.poll(0.0)
        except VoxliftError as exc:
            self.report({"ERROR"}, str(exc))
            context.window_manager.voxlift_render.status = f"error: {exc}"
            return self._end(context, {"CANCELLED"})
        status = context.window_manager.voxlift_render
        status.progress = job.fraction
        status.status = _status_text(job)
        context.window_manager.progress_update(int(1000 * job.fraction))
        for area in context.screen.areas if context.screen else []:
            if area.type == "VIEW_3D":
                area.tag_redraw()
        if running:
            return {"PASS_THROUGH"}
        self._done(context, job)
        return self._end(context, {"FINISHED"})

    def cancel(self, context):
        """Blender ends the modal operator itself (window closed, another file loaded): stop the render."""
        _stop_job()
        self._end(context, {"CANCELLED"})

    def _done(self, context, job) -> None:
        status = context.window_manager.voxlift_render
        status.progress = 1.0
        status.status = f"done: {job.rendered} rendered, {job.skipped} skipped, {job.already} already there"
        self.report({"INFO"}, f"voxlift: {job.summary()}")

    def _end(self, context, result):
        global _job
        if _job is not None:
            _job.close()
        _job = None
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        return result


class VOXLIFT_OT_render_cancel(bpy.types.Operator):
    """Stop the running dataset render (models rendered so far stay; Render again resumes)"""

    bl_idname = "voxlift.render_cancel"
    bl_label = "Cancel Render"

    @classmethod
    def poll(cls, context):
        return _job is not None

    def execute(self, context):
        global _cancel_requested
        _cancel_requested = True
        return {"FINISHED"}


class VOXLIFT_PT_dataset(bpy.types.Panel):
    bl_label = "Dataset"
    bl_idname = "VOXLIFT_PT_dataset"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "voxlift"

    def draw(self, context):
        layout = self.layout
        s = context.scene.voxlift_dataset
        col = layout.column(align=True)
        col.prop(s, "sources")
        col.prop(s, "categories")
        col.prop(s, "limit")
        col = layout.column(align=True)
        col.prop(s, "views")
        col.prop(s, "image_size")
        col.prop(s, "resolution")
        layout.prop(s, "engine")
        row = layout.row()
        row.active = s.engine == "workbench"  # the random look is Workbench's lighting
        row.prop(s, "appearance")
        layout.prop(s, "workers")
        layout.prop(s, "out")
        status = context.window_manager.voxlift_render
        if _job is not None:
            layout.progress(factor=status.progress, type="BAR", text=status.status or "starting")
            layout.operator(VOXLIFT_OT_render_cancel.bl_idname, icon="CANCEL")
        else:
            layout.operator(VOXLIFT_OT_render_dataset.bl_idname, icon="RENDER_STILL")
            if status.status:
                layout.label(text=status.status)


def _stop_job() -> None:
    """Kill the running render's workers; what is committed stays in the dataset."""
    global _job
    if _job is not None:
        _job.cancel()
        _job = None


@bpy.app.handlers.persistent
def _on_load_pre(*_args) -> None:
    # Loading another file drops the modal operator without calling it again: the render would go on
    # headless, and the new file's panel would show a render that no longer has an operator. Stop it.
    _stop_job()


CLASSES = (
    VoxliftDatasetSettings,
    VoxliftRenderStatus,
    VOXLIFT_OT_render_dataset,
    VOXLIFT_OT_render_cancel,
    VOXLIFT_PT_dataset,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.voxlift_dataset = PointerProperty(type=VoxliftDatasetSettings)
    bpy.types.WindowManager.voxlift_render = PointerProperty(type=VoxliftRenderStatus)
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister():
    _stop_job()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    del bpy.types.WindowManager.voxlift_render
    del bpy.types.Scene.voxlift_dataset
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
