"""Everything of the add-on that needs `bpy`: panels, operators, preferences, rendering inside Blender.

Modules here may import bpy at the top; nothing outside this subpackage may (tests/test_layers.py checks it).
They are imported by register() only, so `import voxlift` works outside Blender.
"""

# The add-on's package: `voxlift`, or `bl_ext.<repo>.voxlift` in Blender (preferences, registration).
ADDON_PACKAGE = __name__.rpartition(".")[0]
