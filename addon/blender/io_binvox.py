"""File > Import > Voxel grid (.binvox): a binvox file as a mesh object (no torch needed).

The grid is placed where its header says (binvox: voxel i spans translate + scale * [i, i+1] / D), meshed
as cubes (or smooth), and keeps its occupancy as the object's probabilities, so the Reconstruct panel's
mesh options apply to it too. Dropping a .binvox file onto the 3D Viewport imports it as well.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy_extras.io_utils import ImportHelper

from ..dataset_tools.binvox import read_binvox
from ..dataset_tools.errors import VoxliftError
from . import mesh as blender_mesh

# Grids above this side are meshed but their occupancy is not kept on the object (memory).
KEEP_PROBS_MAX = 128


def cubic(voxels: np.ndarray) -> np.ndarray:
    """Pad a D1 x D2 x D3 grid with empty space to a cube (meshing needs cubes); the origin corner stays."""
    v = np.asarray(voxels, dtype=bool)
    side = max(v.shape)
    if v.shape == (side,) * 3:
        return v
    return np.pad(v, [(0, side - n) for n in v.shape])


def import_binvox(context, path: str | Path, mode: str = "CUBES", greedy: bool = False) -> bpy.types.Object:
    path = Path(path)
    grid = read_binvox(path)
    vox = np.asarray(grid.voxels, dtype=bool)
    if vox.ndim != 3 or not vox.any():
        raise VoxliftError(f"{path}: the voxel grid is empty")
    dims = vox.shape
    vox = cubic(vox)
    side = vox.shape[0]
    scale = float(np.asarray(grid.scale).ravel()[0])
    translate = np.asarray(grid.translate, dtype=np.float64).ravel()[:3]
    # binvox scales the longest side D to `scale`: meshing's unit cube [-0.5, 0.5]^3 maps onto it.
    side_world = scale * side / max(dims)
    name = path.stem or "voxels"
    probs = vox.astype(np.float32)
    obj = blender_mesh.create_object(
        context, name, probs, mode=mode, greedy=greedy, location=tuple(translate + side_world / 2)
    )
    obj.scale = (side_world,) * 3
    if side > KEEP_PROBS_MAX:
        blender_mesh.forget_probs(obj)
    return obj


class VOXLIFT_OT_import_binvox(bpy.types.Operator, ImportHelper):
    bl_idname = "voxlift.import_binvox"
    bl_label = "Import Voxel Grid"
    bl_description = "Import a .binvox voxel grid as a mesh"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".binvox"
    filter_glob: bpy.props.StringProperty(default="*.binvox", options={"HIDDEN"})
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE", "HIDDEN"})
    files: bpy.props.CollectionProperty(
        type=bpy.types.OperatorFileListElement, options={"SKIP_SAVE", "HIDDEN"}
    )
    mode: blender_mesh.mode_property()
    greedy: blender_mesh.greedy_property()

    def execute(self, context):
        paths = (
            [Path(self.directory) / f.name for f in self.files if f.name]
            if self.files and self.directory
            else [Path(self.filepath)]
        )
        done = 0
        for path in paths:
            try:
                import_binvox(context, path, self.mode, self.greedy)
                done += 1
            except VoxliftError as exc:
                self.report({"ERROR"}, str(exc))
            except OSError as exc:
                self.report({"ERROR"}, f"{path}: cannot read ({exc})")
        return {"FINISHED"} if done else {"CANCELLED"}


class VOXLIFT_FH_binvox(bpy.types.FileHandler):
    bl_idname = "VOXLIFT_FH_binvox"
    bl_label = "Voxel grid (.binvox)"
    bl_import_operator = "voxlift.import_binvox"
    bl_file_extensions = ".binvox"

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


def menu_import(self, context):
    self.layout.operator(VOXLIFT_OT_import_binvox.bl_idname, text="Voxel grid (.binvox)")


def register():
    bpy.utils.register_class(VOXLIFT_OT_import_binvox)
    bpy.utils.register_class(VOXLIFT_FH_binvox)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    bpy.utils.unregister_class(VOXLIFT_FH_binvox)
    bpy.utils.unregister_class(VOXLIFT_OT_import_binvox)
