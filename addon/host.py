"""Where this voxlift runs: a plain Python, or inside Blender with the add-on's preferences.

The command line (cli.py, cmd_reconstruct.py) asks here which backend the preferences choose, without
importing anything of Blender unless bpy is already loaded (`blender -c voxlift ...`).
"""

from __future__ import annotations

import sys

from .backend_process import Backend


def blender_backend() -> Backend | None:
    """Inside Blender with voxlift enabled: the backend its preferences choose; else None (this Python)."""
    if "bpy" not in sys.modules:  # not inside Blender: this Python it is
        return None
    try:
        from .blender import prefs

        if prefs.get_prefs() is None:
            return None  # bpy used as a plain module, the add-on not enabled: this Python it is
        return prefs.current_backend()
    except Exception:  # noqa: BLE001 - no usable preferences: this Python it is
        return None
