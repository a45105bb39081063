import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SH3F_DIR = Path("/usr/share/sweethome3d/furniture")
# BlendSwap-CC-BY.sh3f is the external test set: never used for training, tuning or tests.
SH3F_LIBRARIES = [SH3F_DIR / f"{name}.sh3f" for name in ("KatorLegaz", "Scopia", "BlendSwap-CC-0")]

# Tests share 2 cores with each other's subprocesses: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# A suite started in the background (`nohup python build.py test &`) inherits SIGINT ignored, and an ignored
# signal stays ignored in every child: the tests that stop training as Ctrl-C and the panel's Cancel do would see
# it do nothing. A handler is reset to the default in children, so this one gives them Ctrl-C back.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def venv_python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def sh3f_libraries() -> list[Path]:
    missing = [p for p in SH3F_LIBRARIES if not p.exists()]
    assert not missing, f"install Debian's sweethome3d-furniture (.ci/run does): {missing}"
    return SH3F_LIBRARIES
