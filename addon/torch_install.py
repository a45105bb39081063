"""What "Install PyTorch" runs: pip, pinned to the versions this add-on is tested with, never shadowing
Blender's own packages. bpy-free, so the exact command is tested without Blender or the internet.

`pip install --target DIR` ignores what the running Python has, so an unpinned install would put the newest
numpy (2.x) into the add-on's folder, and children that put DIR first on their path would import it
instead of Blender's (bpy 5.0 needs numpy below 2). So:
  * every package the backend imports is pinned to the version the tests run with (REQUIREMENTS);
  * a constraints file pins the packages Blender ships (SHARED, numpy) to the versions this Python has, so
    whatever depends on them resolves against Blender's own copy;
  * once pip is done, those shared packages are removed from DIR again (remove_shared): Blender's are used.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from pathlib import Path

# The backend's packages, at the versions voxlift is tested with (pyproject.toml's environment).
REQUIREMENTS = (
    "torch==2.13.0",
    "safetensors==0.8.0",
    "tqdm==4.70.1",
    "tensorboard==2.21.0",
    "pillow==13.0.0",
    "scikit-image==0.26.0",
)
SHARED = ("numpy",)  # packages Blender's Python ships: used from there, never installed beside it
INDEX = {"CPU": "https://download.pytorch.org/whl/cpu", "CUDA": "https://download.pytorch.org/whl/cu126"}
PYPI = "https://pypi.org/simple"
CONSTRAINTS_NAME = "voxlift-constraints.txt"
SCRIPTS = "bin"  # pip --target's folder of scripts
RAW_PROGRESS_PIP = (24, 1)  # pip versions from this one print `--progress-bar raw` lines


def shared_pins() -> list[str]:
    """`name==version` of each SHARED package as this Python has it."""
    pins = []
    for name in SHARED:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue  # not here: pip may install it (nothing to shadow)
    return pins


def write_constraints(folder: str | os.PathLike) -> Path:
    """The constraints file pinning SHARED to this Python's versions, in `folder` (beside the target)."""
    path = Path(folder) / CONSTRAINTS_NAME
    path.write_text("".join(f"{pin}\n" for pin in shared_pins()), encoding="utf-8")
    return path


def pip_command(
    variant: str,
    target: str | os.PathLike,
    constraints: str | os.PathLike,
    python: str = sys.executable,
    raw_progress: bool = False,
) -> list[str]:
    """The pip command line that installs the pinned backend packages into `target`."""
    progress = ["--progress-bar", "raw"] if raw_progress else []
    return [
        python,
        "-m",
        "pip",
        "install",
        *progress,
        "--upgrade",
        "--no-warn-script-location",
        "--disable-pip-version-check",
        "--target",
        str(target),
        "--constraint",
        str(constraints),
        "--index-url",
        INDEX[variant],
        "--extra-index-url",
        PYPI,
        *REQUIREMENTS,
    ]


def pip_has_raw_progress(version_line: str) -> bool:
    """Whether `pip --version`'s line names a pip that prints raw progress."""
    try:
        major, minor = (int(x) for x in version_line.split()[1].split(".")[:2])
    except (ValueError, IndexError):
        return False
    return (major, minor) >= RAW_PROGRESS_PIP


def remove_shared(target: str | os.PathLike) -> list[str]:
    """Remove from `target` the SHARED packages pip put there: every top-level folder their RECORD names
    (the package, its .libs, its .dist-info) and their scripts; the names removed."""
    target = Path(target).resolve()
    removed = []
    for dist in importlib.metadata.distributions(path=[str(target)]):
        name = (dist.metadata["Name"] or "").lower()
        if name not in SHARED:
            continue
        tops = set()
        for file in dist.files or []:
            path = (target / file).resolve()
            if not path.is_relative_to(target):
                continue
            tops.add(path.relative_to(target).parts[0])
            if path.is_file():
                path.unlink()  # scripts in bin/ (the folder is shared with other packages' scripts)
        for top in tops - {SCRIPTS}:
            if (target / top).is_dir():
                shutil.rmtree(target / top)
        removed.append(name)
    return removed
