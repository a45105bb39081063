"""Shared by the reconstruct tests: one tiny trained checkpoint per test session, test images, a bare Python.

The checkpoint comes from the real trainer (`voxlift train paired`, a few steps on a tiny procedural
dataset), so the tests exercise real checkpoints; it is made once per session and shared by every module.
"""

from __future__ import annotations

import sys
import venv
from pathlib import Path

import numpy as np
from _paired_util import make_dataset

_CACHE: dict = {}


def tiny_run(tmp_path_factory) -> dict:
    """{'data': dataset folder, 'run': run folder with best.safetensors, 'images': {name: png path}}."""
    if "run" in _CACHE:
        return _CACHE["run"]
    from voxlift import cli
    from voxlift.dataset_tools import open_dataset
    from voxlift.dataset_tools.png import write_png

    root = tmp_path_factory.mktemp("reconstruct")
    data = make_dataset(root / "data", chairs=4, tables=4, size=32, views=4)
    run = root / "run"
    rc = cli.main(
        [
            "train",
            "paired",
            "--data",
            data,
            "--out",
            str(run),
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--val-every",
            "3",
            "--val-samples",
            "8",
            "--latent-dim",
            "16",
            "--encoder-width",
            "4",
            "--decoder-width",
            "4",
            "--workers",
            "0",
            "--quiet",
        ]
    )
    assert rc == 0 and (run / "best.safetensors").is_file()
    ds = open_dataset(data)
    images = {}
    for name, (model, view) in {"chair": (0, 0), "table": (5, 1)}.items():
        g, a = np.asarray(ds.images[model, view]), np.asarray(ds.alpha[model, view])
        path = root / f"{name}.png"
        write_png(path, np.stack([g, g, g, a], axis=-1))
        images[name] = path
    # A model trained for 3 steps predicts nearly uniform probabilities: thresholds at quantiles of its
    # output give grids with a real mix of filled and empty voxels (and of shapes) to check meshes on.
    from voxlift.io.images import load_image
    from voxlift.reconstruct import predict

    probs, _ = predict([load_image(images["chair"])], str(run), "cpu")
    lo, hi = (float(np.quantile(probs, q)) for q in (0.6, 0.9))
    assert 0 < lo < hi < 1
    _CACHE["run"] = {
        "root": root,
        "data": Path(data),
        "run": run,
        "images": images,
        "probs": probs[0],
        "thresholds": (lo, hi),
    }
    return _CACHE["run"]


def python_without_torch(tmp_path_factory) -> str:
    """A real Python interpreter that cannot import torch (a bare virtual environment)."""
    if "bare" not in _CACHE:
        env = tmp_path_factory.mktemp("no-torch-python")
        venv.create(env, with_pip=False, system_site_packages=False)
        site = next((env / "lib").glob("python3*/site-packages"))
        ours = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "torch").is_dir())
        # This project's packages (numpy, voxlift, ...) but a torch that cannot be imported, as in a user's
        # environment without PyTorch.
        (site / "voxlift_test.pth").write_text(
            f"import site, sys; site.addsitedir({str(ours)!r}); sys.modules['torch'] = None\n"
        )
        _CACHE["bare"] = str(env / "bin" / "python")
    return _CACHE["bare"]


def other_kind_checkpoint(folder: Path) -> Path:
    """A valid voxlift checkpoint of a model kind that does not predict grids from images."""
    import torch

    from voxlift.backend.checkpoint import save_checkpoint

    path = Path(folder) / "other-kind.safetensors"
    for pad in range(4):
        save_checkpoint(path, {"w": torch.zeros(2)}, {"config": {"kind": "autoencoder"}, "pad": "x" * pad})
        # checkpoint.py reads a first byte 0x80 as a pickle: keep the header length's low byte off it.
        if path.read_bytes()[:1] != b"\x80":
            break
    return path


PYTHON = sys.executable
