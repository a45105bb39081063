#!/usr/bin/env python3
"""voxlift's task runner (standard library only).

python build.py setup          create .venv and install voxlift editable with its extras; make the
                               background bank when it is missing (see assets)
python build.py test [ARGS]    setup, then the whole pytest suite (ARGS go to pytest)
python build.py demo [ARGS]    setup, then the main job (see README.md)
python build.py zip            the Blender extension zip in dist/
python build.py bench [NAMES]  setup, then the benchmarks; each rewrites its section of BENCHMARKS.md
python build.py starter [ARGS] setup, then the starter model from scratch: render, train, ship to
                               backend/assets/ (starter and mask .safetensors, starter.md); see README.md
python build.py assets         setup, then the background bank backend/assets/backgrounds.png (Blender's
                               CC0 world HDRIs and Debian's wallpaper photographs, cut into gray crops;
                               apt-get install plasma-workspace-wallpapers ukui-wallpapers gnome-backgrounds)
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".voxlift-setup"
# Pinned here and in pyproject.toml. torch comes from pip (never uv/poetry): on the CI machines pip finds a
# local CPU wheel, anything else would download a multi-GB CUDA build.
PINS = ["torch==2.13.0", "bpy==5.0.1"]
BENCH_DIR = ROOT / "tests" / "benchmarks"
# Photographs for the background bank besides Blender's HDRIs (Debian packages; never /usr/share/backgrounds/mate,
# the robustness benchmark's held-out photographs)
BANK_PHOTOS = [Path("/usr/share/wallpapers"), Path("/usr/share/backgrounds/gnome")]
BANK = ROOT / "backend" / "assets" / "backgrounds.png"


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def find_python311() -> str:
    """bpy 5.0.1 wheels exist for Python 3.11 only."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    for name in ("python3.11", "python3"):
        exe = shutil.which(name)
        if (
            exe
            and subprocess.run(
                [exe, "-c", "import sys; assert sys.version_info[:2] == (3, 11)"], capture_output=True
            ).returncode
            == 0
        ):
            return exe
    sys.exit("error: voxlift needs Python 3.11 (bpy==5.0.1 is built for it); install python3.11")


def setup() -> None:
    """The venv (idempotent: reinstalls only when pyproject.toml or the pins changed), then the background bank
    when it is missing (generated, not tracked: the same packages and seed make the same file)."""
    install()
    if not BANK.exists() and make_bank() != 0:
        sys.exit(f"error: could not make the background bank {BANK}")


def make_bank() -> int:
    photos = [str(p) for p in BANK_PHOTOS if p.exists()]
    photos += sorted(str(p) for p in Path("/usr/share/backgrounds").glob("*.*"))  # ukui's, not mate/
    cmd = [str(PY), "-m", "voxlift.blender.backgrounds", "--out", str(BANK), "--from", *photos]
    return subprocess.run(cmd, check=False).returncode


def install() -> None:
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + " ".join(PINS).encode()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text().strip() == want:
        return
    t0 = time.time()
    if not PY.exists():
        run([find_python311(), "-m", "venv", VENV])
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run([*pip, *PINS])
    run([*pip, "-e", f"{ROOT}[blender,dev]"])
    STAMP.write_text(want + "\n")
    print(f"setup done in {time.time() - t0:.0f} s", flush=True)


def lint() -> int:
    """One style: ruff's linter and formatter must both pass (`ruff format .` fixes the second)."""
    ruff = VENV / "bin" / "ruff"
    rc = 0
    for cmd in ([ruff, "check", "--output-format", "concise", "."], [ruff, "format", "--check", "."]):
        print("+", " ".join(str(c) for c in cmd), flush=True)
        rc |= subprocess.run([str(c) for c in cmd], cwd=ROOT, check=False).returncode
    return rc


def cmd_test(args: list[str]) -> int:
    setup()
    if lint() != 0:
        print(
            "lint failed: `.venv/bin/ruff format .` fixes the formatting; the linter's findings need a hand"
        )
        return 1
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT, env=env).returncode


def cmd_demo(args: list[str]) -> int:
    setup()
    return subprocess.run([str(PY), "-m", "voxlift.demo", *args], cwd=ROOT).returncode


def cmd_starter(args: list[str]) -> int:
    setup()
    script = ROOT / "tests" / "benchmarks" / "train_starter.py"
    return subprocess.run([str(PY), str(script), *args], cwd=ROOT, check=False).returncode


def build_zip() -> Path:
    """The Blender 4.2+ extension: manifest and addon/ at the zip's root, backend/ and dataset_tools/
    inside it, so that the package imports as `voxlift` (pip) or `bl_ext.<repo>.voxlift` (Blender) alike."""
    manifest = (ROOT / "addon" / "blender_manifest.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', manifest, re.M).group(1)
    out = ROOT / "dist" / f"voxlift-{version}.zip"
    out.parent.mkdir(exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    layout = [
        (ROOT / "addon", ""),
        (ROOT / "backend", "backend/"),
        (ROOT / "dataset_tools", "dataset_tools/"),
    ]
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for src, prefix in layout:
            for path in sorted(src.rglob("*")):
                rel = path.relative_to(src)
                if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
                    continue
                zf.write(path, prefix + rel.as_posix())
    tmp.replace(out)  # never leave a half-written zip behind
    print(out)
    return out


def cmd_bench(names: list[str]) -> int:
    setup()
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
        if not scripts:
            sys.exit(
                f"error: no benchmark named {names}; have "
                f"{[s.stem.removeprefix('bench_') for s in BENCH_DIR.glob('bench_*.py')]}"
            )
    md_path = ROOT / "BENCHMARKS.md"
    text = (
        md_path.read_text()
        if md_path.exists()
        else (
            "# Benchmarks\n\nWritten by `python build.py bench [NAME...]`: each section is rewritten by its own "
            "benchmark (`tests/benchmarks/bench_NAME.py`). Ratios are measured within one run; absolute "
            "times vary on these noisy machines.\n"
        )
    )
    rc = 0
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        print(f"== bench {name}", flush=True)
        t0 = time.time()
        proc = subprocess.run([str(PY), str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"bench {name} failed (exit {proc.returncode})", flush=True)
            rc = 1
            continue
        machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
        body = (
            f"<!-- bench:{name} -->\n{proc.stdout.strip()}\n\n"
            f"_Command: `python build.py bench {name}`; machine: {machine}; "
            f"{time.strftime('%Y-%m-%d')}, {time.time() - t0:.0f} s._\n<!-- /bench:{name} -->"
        )
        pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
        text = md_path.read_text() if md_path.exists() else text  # edits made while it ran are kept
        text = (
            pattern.sub(lambda _, body=body: body, text)
            if pattern.search(text)
            else text.rstrip() + "\n\n" + body + "\n"
        )
        md_path.write_text(text)
    return rc


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "setup":
        setup()
        return 0
    if cmd == "zip":
        setup()  # the zip carries the background bank
        build_zip()
        return 0
    if cmd == "assets":
        install()
        return make_bank()
    handlers = {"test": cmd_test, "demo": cmd_demo, "bench": cmd_bench, "starter": cmd_starter}
    if cmd not in handlers:
        print(__doc__)
        return 2
    return handlers[cmd](rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
