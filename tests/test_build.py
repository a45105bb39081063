"""build.py: the add-on zip has the pip package's layout and passes Blender's own extension validator."""

import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import voxlift

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
        for py in (ROOT / src).rglob("*.py"):
            if "__pycache__" not in py.parts:
                assert prefix + py.relative_to(ROOT / src).as_posix() in names
    assert "blender/registry.py" in names and "io/gltf.py" in names
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


def test_one_version_everywhere():
    # The manifest holds it; voxlift.__version__ reads it, build.py names the zip after it; pyproject.toml
    # (static, for pip) must say the same.
    manifest = tomllib.loads((ROOT / "addon" / "blender_manifest.toml").read_text())["version"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert voxlift.__version__ == manifest == pyproject


def test_pip_package_lists_every_subpackage():
    # pyproject.toml lists the packages one by one (package-dir maps addon/ to voxlift): a subpackage left
    # out is missing from a wheel (an editable install would still find it, so nothing else notices).
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    for name, folder in tool["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            assert ".".join((name, *rel)) in listed, f"{init.parent} is not in pyproject.toml's packages"
