"""The README's main command, at a small size: every stage runs through the real CLI and leaves its files."""

import subprocess
import sys

import numpy as np

from voxlift.dataset_tools import open_dataset
from voxlift.dataset_tools.png import read_png


def test_demo_runs_end_to_end_at_a_small_size(tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxlift.demo",
            "--out",
            str(out),
            "--models",
            "24",
            "--minutes",
            "0.1",
            "--image-size",
            "32",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "test IoU@0.3:" in res.stdout and "mean-shape baseline" in res.stdout
    # The shipped starter model's result comes first, before any training (issue 14, 5).
    first = res.stdout.index("starter model, no training: test IoU@0.3 ")
    assert first < res.stdout.index("$ voxlift train paired")
    assert "(starter model " in res.stdout.splitlines()[-1]
    assert (out / "starter_reconstruction.blend").stat().st_size > 0
    starter_sheet = read_png(out / "starter_reconstruction.png")
    assert starter_sheet.shape[1] >= 3 * 128 and np.unique(starter_sheet).size > 2
    assert len(list((out / "binvox").rglob("*.binvox"))) == 24
    ds = open_dataset(out / "dataset")
    assert len(ds) == 24 and ds.image_size == 32 and len(ds.indices("test")) > 0
    assert (out / "run" / "best.safetensors").is_file() or (out / "run" / "last.safetensors").is_file()
    assert (out / "reconstruction.blend").stat().st_size > 0
    sheet = read_png(out / "reconstruction.png")
    assert sheet.ndim == 2 and np.unique(sheet).size > 2  # not a blank page
    assert sheet.shape[1] >= 3 * 128  # input | reconstruction | truth, in readable tiles
    assert read_png(out / "grids.png").shape[0] > 32


def test_a_second_demo_trains_beside_the_first_run_not_over_it(tmp_path):
    from voxlift.demo import fresh_run_dir

    assert fresh_run_dir(tmp_path) == tmp_path / "run"
    (tmp_path / "run").mkdir()
    (tmp_path / "run-2").mkdir()
    assert fresh_run_dir(tmp_path) == tmp_path / "run-3"


def text_runs(sheet: np.ndarray, dark: int = 64, space: int = 6) -> list[int]:
    """Widths of the runs of label text along the sheet (columns with text, split by `space` blank ones)."""
    cols = np.flatnonzero((sheet < dark).any(axis=0))
    if not len(cols):
        return []
    breaks = np.flatnonzero(np.diff(cols) > space)
    starts = np.r_[cols[0], cols[breaks + 1]]
    ends = np.r_[cols[breaks], cols[-1]]
    return (ends - starts + 1).tolist()


def test_sheet_labels_are_whole_readable_and_apart():
    """The reconstruction sheet: tiles at least SHEET_TILE pixels, each label whole under its tile and a
    character's width away from its neighbour's (the old sheet read RECONSTRTRUTH)."""
    from voxlift.dataset_tools.preview import text_image
    from voxlift.demo import SHEET_TILE, fit_label, labelled_sheet

    labels = ["input", "reconstruction", "truth"]
    sheet = labelled_sheet([np.full((64, 64), 128, np.uint8)] * 3, labels, columns=3)
    assert sheet.shape[1] >= 3 * SHEET_TILE and sheet.shape[0] >= SHEET_TILE
    blank = 2  # text_image ends each glyph with one blank column, at scale 2
    assert text_runs(sheet) == [text_image(label).shape[1] - blank for label in labels]
    assert fit_label("synthetic_0_0123456789", SHEET_TILE) == "synthetic_0_012"  # 15 characters fit
