"""Install PyTorch: the exact pip command (pinned versions, numpy held at Blender's), run for real by pip
against a local folder of stub wheels named like the real ones (no internet at test time), from the
add-on's own operator in Blender too: the backend's packages land in the extension's folder, numpy does not.

The stubs are tiny but real wheels (built here: METADATA, WHEEL, RECORD), among them a numpy 2.3.0 that an
unpinned install would pick, and the numpy this Python has (what Blender ships).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from _blender_util import last_json, run_in_blender

from voxlift import torch_install

NUMPY_HERE = importlib.metadata.version("numpy")  # Blender's numpy (the bpy module's environment)
NEWER_NUMPY = "2.3.0"
# (distribution, version, import name, requirements) of each stub
STUBS = [
    ("torch", "2.13.0", "torch", []),
    ("safetensors", "0.8.0", "safetensors", []),
    ("tqdm", "4.70.1", "tqdm", []),
    ("tensorboard", "2.21.0", "tensorboard", ["numpy>=1.12"]),
    ("pillow", "13.0.0", "PIL", []),
    ("scikit-image", "0.26.0", "skimage", ["numpy>=1.24"]),
    ("numpy", NUMPY_HERE, "numpy", []),
    ("numpy", NEWER_NUMPY, "numpy", []),
    ("torch", "2.99.0", "torch", []),  # a newer torch an unpinned install would pick
]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def stub_wheel(folder: Path, dist: str, version: str, module: str, requires: list[str]) -> Path:
    """A pure-Python wheel `dist==version` holding an empty package `module` (PEP 427 layout)."""
    norm = dist.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\nSTUB = True\n".encode(),
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: voxlift-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    for stub in STUBS:
        stub_wheel(folder, *stub)
    return folder


def offline_env(wheels: Path) -> dict:
    """pip reads PIP_NO_INDEX / PIP_FIND_LINKS from the environment: the exact command, run offline."""
    return dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), PIP_DISABLE_PIP_VERSION_CHECK="1")


def test_pip_command_pins_everything_and_holds_numpy(tmp_path):
    constraints = torch_install.write_constraints(tmp_path)
    assert constraints.read_text() == f"numpy=={NUMPY_HERE}\n"
    cmd = torch_install.pip_command("CPU", tmp_path / "site", constraints, "/py")
    assert cmd == [
        "/py",
        "-m",
        "pip",
        "install",
        "--upgrade",
        "--no-warn-script-location",
        "--disable-pip-version-check",
        "--target",
        str(tmp_path / "site"),
        "--constraint",
        str(constraints),
        "--index-url",
        "https://download.pytorch.org/whl/cpu",
        "--extra-index-url",
        "https://pypi.org/simple",
        "torch==2.13.0",
        "safetensors==0.8.0",
        "tqdm==4.70.1",
        "tensorboard==2.21.0",
        "pillow==13.0.0",
        "scikit-image==0.26.0",
    ]
    cuda = torch_install.pip_command("CUDA", "T", constraints, "/py", raw_progress=True)
    assert cuda[4:6] == ["--progress-bar", "raw"] and "https://download.pytorch.org/whl/cu126" in cuda
    assert torch_install.pip_has_raw_progress("pip 24.1 from /x (python 3.11)")
    assert not torch_install.pip_has_raw_progress("pip 23.2.1 from /x (python 3.11)")


def test_install_against_local_wheels_never_shadows_numpy(tmp_path, wheels):
    target = tmp_path / "site-packages"
    cmd = torch_install.pip_command("CPU", target, torch_install.write_constraints(tmp_path), sys.executable)
    res = subprocess.run(cmd, env=offline_env(wheels), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    installed = next(line for line in res.stdout.splitlines() if line.startswith("Successfully installed"))
    assert f"numpy-{NUMPY_HERE}" in installed and f"numpy-{NEWER_NUMPY}" not in installed
    assert "torch-2.13.0" in installed and "scikit-image-0.26.0" in installed
    assert torch_install.remove_shared(target) == ["numpy"]
    names = sorted(p.name for p in target.iterdir())
    assert not [n for n in names if n.lower().startswith("numpy")], names
    for module in ("torch", "safetensors", "tqdm", "tensorboard", "PIL", "skimage"):
        assert (target / module / "__init__.py").is_file(), module
    # A child with the folder first on its path (as the backend's children run) imports this Python's numpy.
    probe = "import numpy, torch; print(numpy.__version__, numpy.__file__, torch.__version__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=dict(os.environ, PYTHONPATH=str(target)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == NUMPY_HERE and not out[1].startswith(str(target)) and out[2] == "2.13.0"


INSTALL_SCRIPT = """
import json, os, time
prefs = VOXLIFT.blender.prefs
bpy.context.preferences.system.use_online_access = True
assert bpy.ops.voxlift.install_torch() == {"FINISHED"}
job = prefs._install["job"]
command = list(job.command)
deadline = time.time() + 300
while prefs._poll_install() is not None and time.time() < deadline:
    time.sleep(0.2)
site = prefs.torch_site()
print(json.dumps({"command": command, "site": site, "done": prefs._install["done"],
                  "error": prefs._install["error"], "names": sorted(os.listdir(site)),
                  "tail": job.tail[-5:]}))
"""


def test_install_pytorch_operator_installs_the_pinned_set(tmp_path, wheels, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    out = last_json(run_in_blender(INSTALL_SCRIPT, tmp_path, timeout=400).stdout)
    assert out["done"] and not out["error"], out
    site = out["site"]
    assert str(tmp_path) in site and "extensions" in site  # the extension's own user folder
    constraints = Path(site).parent / torch_install.CONSTRAINTS_NAME
    assert out["command"][out["command"].index("--target") + 1] == site
    assert out["command"][out["command"].index("--constraint") + 1] == str(constraints)
    assert out["command"][-len(torch_install.REQUIREMENTS) :] == list(torch_install.REQUIREMENTS)
    assert {"torch", "safetensors", "tqdm", "tensorboard", "PIL", "skimage"} <= set(out["names"])
    assert not [n for n in out["names"] if n.lower().startswith("numpy")], out["names"]
