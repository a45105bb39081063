"""Mesh sources, canonical frame, voxeliser and dataset format. numpy only: no bpy, no torch."""

from .binvox import BinvoxGrid, read_binvox, write_binvox
from .camera import View, fixed_views, make_view, project, world_to_pixel
from .dataset import Dataset, DatasetWriter, merge_datasets, open_dataset, split_of, voxel_to_world
from .errors import VoxliftError
from .mesh import Mesh, normalize_to_unit_cube, to_canonical
from .obj import parse_obj, read_obj, write_obj
from .voxelize import voxelize, voxelize_mesh

__all__ = [
    "BinvoxGrid",
    "Dataset",
    "DatasetWriter",
    "Mesh",
    "View",
    "VoxliftError",
    "fixed_views",
    "make_view",
    "merge_datasets",
    "normalize_to_unit_cube",
    "open_dataset",
    "parse_obj",
    "project",
    "read_binvox",
    "read_obj",
    "split_of",
    "to_canonical",
    "voxel_to_world",
    "voxelize",
    "voxelize_mesh",
    "world_to_pixel",
    "write_binvox",
    "write_obj",
]
