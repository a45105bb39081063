"""Registration of everything Blender-side. Only imported by register(), so bpy is never needed before it.

Each module in BLENDER_MODULES (named relative to the add-on's package) owns its classes and has
register()/unregister(). The voxlift CLI command is registered too, so `blender -b -c voxlift ARGS...` runs
the same commands as the `voxlift` console script.
"""

import importlib

import bpy

from . import ADDON_PACKAGE

# Order matters: preferences and properties first, panels that use them after.
BLENDER_MODULES = [
    "blender.prefs",
    "blender.mesh",
    "blender.ui_dataset",
    "blender.ui_reconstruct",
    "blender.ui_train",
    "blender.io_binvox",
]

_loaded = []
_cli_handle = None


def _cli(argv):
    from .. import cli

    return cli.main(list(argv))


def register():
    global _cli_handle
    for name in BLENDER_MODULES:
        mod = importlib.import_module(f"{ADDON_PACKAGE}.{name}")
        mod.register()
        _loaded.append(mod)
    _cli_handle = bpy.utils.register_cli_command("voxlift", _cli)


def unregister():
    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    while _loaded:
        _loaded.pop().unregister()
