"""Helpers for tests that run voxlift inside Blender (the bpy module) as an installed extension.

    zip_path = build_zip()                       # python build.py zip, once per test session
    res = run_in_blender(SCRIPT, tmp_path)       # SCRIPT runs after the zip is installed and enabled

SCRIPT is plain Python run in a fresh process (`python -c`), with a throwaway Blender user folder under
tmp_path (HOME and BLENDER_USER_* point there, so the user's real Blender config is never touched). Before
SCRIPT, a prelude installs the zip with `bpy.ops.extensions.package_install_files(repo="user_default",
enable_on_install=True)` and binds:
    bpy        the module
    VOXLIFT    the installed package (`bl_ext.user_default.voxlift`)
    ZIP        the zip's path (str)
run_in_blender returns the CompletedProcess (text stdout/stderr) and fails the test, showing both, when the
script exits non-zero (pass check=False to inspect failures yourself). Print JSON from SCRIPT to hand
results back to the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_zip: Path | None = None

PRELUDE = """
import sys, bpy
ZIP = {zip!r}
res = bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default", enable_on_install=True)
assert res == {{"FINISHED"}}, res
VOXLIFT = sys.modules.get("bl_ext.user_default.voxlift")
assert VOXLIFT is not None, "the voxlift extension did not load: " + repr(sorted(m for m in sys.modules if "voxlift" in m))
"""


def build_zip() -> Path:
    """dist/voxlift-*.zip, built by build.py once per session (it always reflects the working tree)."""
    global _zip
    if _zip is None:
        out = subprocess.run(
            [sys.executable, str(ROOT / "build.py"), "zip"], capture_output=True, text=True, check=True
        )
        _zip = Path(out.stdout.strip().splitlines()[-1])
    return _zip


def blender_env(home: Path) -> dict:
    """Environment whose Blender user folders (config, scripts, extensions) all live under `home`."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        HOME=str(home),
        PYTHONUNBUFFERED="1",
        BLENDER_USER_RESOURCES=str(home / "blender"),
        BLENDER_USER_CONFIG=str(home / "blender/config"),
        BLENDER_USER_SCRIPTS=str(home / "blender/scripts"),
        BLENDER_USER_EXTENSIONS=str(home / "blender/extensions"),
        BLENDER_USER_DATAFILES=str(home / "blender/datafiles"),
    )
    env.pop("PYTHONPATH", None)
    return env


def run_in_blender(
    script: str,
    tmp_path: Path,
    *,
    install: bool = True,
    timeout: float = 300,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    code = (PRELUDE.format(zip=str(build_zip())) if install else "import sys, bpy\n") + textwrap.dedent(
        script
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        env=blender_env(Path(tmp_path) / "blender-home"),
        cwd=str(cwd or tmp_path),
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"Blender script failed (exit {res.returncode})\n--- stdout\n{res.stdout[-4000:]}"
            f"\n--- stderr\n{res.stderr[-4000:]}"
        )
    return res


def last_json(stdout: str):
    """The last line of stdout that parses as JSON (Blender prints its own lines around ours)."""
    import json

    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON line in the script's output:\n{stdout[-2000:]}")
