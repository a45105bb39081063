"""voxlift: turn 2D images of furniture into 3D voxel models.

This package is both the pip-installed `voxlift` (addon/ -> voxlift, backend/ -> voxlift.backend,
dataset_tools/ -> voxlift.dataset_tools) and the Blender extension (`bl_ext.<repo>.voxlift`). It must import
without bpy and without torch: the Blender side (blender/) is imported inside register(), torch-only modules
inside the functions that need them. Imports inside the package are relative so both names work.
"""

from pathlib import Path

MANIFEST = Path(__file__).with_name("blender_manifest.toml")


def _manifest_version() -> str:
    """The version is written once, in the extension's manifest (build.py names the zip after it too)."""
    import tomllib

    with open(MANIFEST, "rb") as f:
        return tomllib.load(f)["version"]


__version__ = _manifest_version()


def register():
    # Imported here, not at the top: `import voxlift` must work outside Blender.
    from .blender import registry

    registry.register()


def unregister():
    from .blender import registry

    registry.unregister()
