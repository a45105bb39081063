"""voxlift: turn 2D images of furniture into 3D voxel models.

This package is both the pip-installed `voxlift` (addon/ -> voxlift, backend/ -> voxlift.backend,
dataset_tools/ -> voxlift.dataset_tools) and the Blender extension (`bl_ext.<repo>.voxlift`). It must import
without bpy and without torch: Blender-only modules are imported inside register(), torch-only ones inside
the functions that need them. Imports inside the package are relative so both names work.
"""

__version__ = "0.1.0"

_registered_modules: list = []


def register():
    # Imported here, not at the top: `import voxlift` must work outside Blender.
    from . import blender_registry

    blender_registry.register()


def unregister():
    from . import blender_registry

    blender_registry.unregister()
