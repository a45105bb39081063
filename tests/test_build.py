"""build.py: the add-on zip has the pip package's layout and passes Blender's own extension validator."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_zip_layout_and_blender_validation():
    out = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "zip"], capture_output=True, text=True, check=True
    )
    zpath = Path(out.stdout.strip().splitlines()[-1])
    names = zipfile.ZipFile(zpath).namelist()
    for required in (
        "blender_manifest.toml",
        "__init__.py",
        "cli.py",
        "backend/__init__.py",
        "backend/networks.py",
        "dataset_tools/__init__.py",
        "dataset_tools/dataset.py",
    ):
        assert required in names, required
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # Every module of the pip layout is in the zip at the same relative place.
    for src, prefix in (("addon", ""), ("backend", "backend/"), ("dataset_tools", "dataset_tools/")):
        for py in (ROOT / src).glob("*.py"):
            assert prefix + py.name in names
    # Blender's own extension tool ships inside the bpy wheel.
    validator = (
        Path(sysconfig.get_paths()["purelib"]) / "bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py"
    )
    res = subprocess.run(
        [sys.executable, str(validator), "validate", str(zpath)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_voxlift_imports_without_bpy_and_torch():
    # addon/ must import without torch, voxlift/__init__ without bpy: block both and import the package.
    code = (
        "import sys; sys.modules['bpy'] = None; sys.modules['torch'] = None\n"
        "import voxlift, voxlift.cli, voxlift.dataset_tools, voxlift.dataset_tools.dataset\n"
        "print('ok')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_cli_help_lists_commands_and_bad_command_fails():
    res = subprocess.run([sys.executable, "-m", "voxlift", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "render" in res.stdout and "reconstruct" in res.stdout
    res = subprocess.run([sys.executable, "-m", "voxlift", "no-such-command"], capture_output=True, text=True)
    assert res.returncode != 0
