"""The architecture, enforced: layers import only downwards, no import circles, no function over 100 lines,
and the add-on's bpy-free modules really import without bpy and torch."""

import ast
import os
import shutil
import subprocess
import sys

import pytest
from _layers import circles, forbidden_imports, internal_graph, read_modules

LONGEST_FUNCTION = 100  # lines, decorators and docstring included


@pytest.fixture(scope="module")
def modules(repo_root):
    return read_modules(repo_root)


def test_layers_import_only_downwards(modules):
    assert forbidden_imports(modules) == []


def test_no_import_circles(modules):
    assert circles(internal_graph(modules)) == []


def test_the_checks_catch_a_forbidden_import_and_a_circle(repo_root, tmp_path):
    """The checks above can fail: a copy of the tree with torch in dataset_tools and a circle added."""
    for folder in ("addon", "backend", "dataset_tools"):
        shutil.copytree(repo_root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    bad = tmp_path / "dataset_tools" / "fileio.py"
    bad.write_text(bad.read_text() + "\n\ndef sneaky():\n    import torch\n    from . import voxelize\n")
    loop = tmp_path / "dataset_tools" / "voxelize.py"
    loop.write_text(loop.read_text() + "\nfrom .fileio import atomic_write_bytes  # noqa\n")
    mods = read_modules(tmp_path)
    assert any("fileio" in line and "torch" in line for line in forbidden_imports(mods))
    assert ["voxlift.dataset_tools.fileio", "voxlift.dataset_tools.voxelize"] in circles(internal_graph(mods))
    ui = tmp_path / "addon" / "cli.py"
    ui.write_text("import bpy\n" + ui.read_text())
    assert any(line.startswith("voxlift.cli:") for line in forbidden_imports(read_modules(tmp_path)))


def test_no_function_is_longer_than_100_lines(repo_root):
    long = []
    for folder in ("addon", "backend", "dataset_tools", "build.py"):
        paths = [repo_root / folder] if folder.endswith(".py") else (repo_root / folder).rglob("*.py")
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    if node.end_lineno - first + 1 > LONGEST_FUNCTION:
                        long.append(f"{path.relative_to(repo_root)}:{node.lineno} {node.name}")
    assert long == []


def test_bpy_free_modules_import_without_bpy_and_torch(modules):
    """Every add-on module outside voxlift.blender, and every dataset_tools module, imported in a Python
    where `import bpy` and `import torch` fail."""
    names = sorted(
        n
        for n in modules
        if not n.startswith(("voxlift.blender", "voxlift.backend")) and not n.endswith("__main__")
    )
    names.append("voxlift.backend.registry")
    code = (
        "import sys\n"
        "for blocked in ('bpy', 'torch', 'mathutils'): sys.modules[blocked] = None\n"
        "import importlib\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print('ok', len(sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert res.returncode == 0 and res.stdout.startswith("ok"), res.stderr[-2000:]
