"""qa: projected voxel footprints against exact silhouettes (ray-cast here, no Blender), and the CLI."""

import json
import subprocess
import sys

import numpy as np

from voxlift.dataset_tools import qa
from voxlift.dataset_tools.camera import camera_matrix_world, fixed_views
from voxlift.dataset_tools.dataset import DatasetWriter, open_dataset, voxel_to_world
from voxlift.dataset_tools.png import read_png

R, S = 32, 64
# Two boxes whose faces lie on grid planes (a seat and a one-voxel-thin leg): the conservative grid is exact.
BOXES = [((-10, -8, 2), (10, 8, 6)), ((-10, -8, -16), (-9, -7, 2))]  # in voxels, lo inclusive, hi exclusive


def grid() -> np.ndarray:
    g = np.zeros((R, R, R), bool)
    for lo, hi in BOXES:
        g[tuple(slice(a + R // 2, b + R // 2) for a, b in zip(lo, hi))] = True
    return g


def silhouette(view, k: int = 4) -> np.ndarray:
    """Alpha [S, S] of the boxes by ray casting k*k samples per pixel (exact area coverage up to 1/k^2)."""
    m = camera_matrix_world(view.azimuth, view.elevation, view.distance)
    f = (S / 2) / np.tan(np.radians(view.fov) / 2)
    t = (np.arange(S * k) + 0.5) / k
    u, v = np.meshgrid(t, t)  # v down
    d_cam = np.stack([(u - S / 2) / f, -(v - S / 2) / f, -np.ones_like(u)], -1)
    d = d_cam @ m[:3, :3].T
    o = m[:3, 3]
    hit = np.zeros(u.shape, bool)
    for lo, hi in BOXES:
        lo_w, hi_w = np.array(lo) / R, np.array(hi) / R
        with np.errstate(divide="ignore", invalid="ignore"):
            t0, t1 = (lo_w - o) / d, (hi_w - o) / d
        near = np.nanmax(np.minimum(t0, t1), -1)
        far = np.nanmin(np.maximum(t0, t1), -1)
        hit |= far >= np.maximum(near, 0)
    cov = hit.reshape(S, k, S, k).mean((1, 3))
    return np.rint(cov * 255).astype(np.uint8)


def test_aligned_grid_scores_one_and_shifted_grid_fails():
    views = fixed_views(8, size=S)
    alpha = np.stack([silhouette(v) for v in views])
    p = np.stack([v.world_to_pixel for v in views])
    cov, on = qa.qa_model(alpha, grid(), voxel_to_world(R), p)
    assert min(cov) == 1.0 and min(on) == 1.0, (cov, on)
    for axis in range(3):  # one voxel off, along any axis: the worst view drops well below 0.99
        cov, on = qa.qa_model(alpha, np.roll(grid(), 1, axis=axis), voxel_to_world(R), p)
        assert min(min(cov), min(on)) < 0.97, (axis, cov, on)
    # An empty grid covers nothing of a real silhouette.
    cov, _ = qa.qa_model(alpha, np.zeros((R, R, R), bool), voxel_to_world(R), p)
    assert max(cov) == 0.0


def test_paint_and_count_agree_with_a_loop():
    rng = np.random.default_rng(1)
    rects = rng.integers(-3, 20, (30, 4))
    rects[:, 1] = rects[:, 0] + rng.integers(-1, 5, 30)
    rects[:, 3] = rects[:, 2] + rng.integers(-1, 5, 30)
    ref = np.zeros((16, 16), bool)
    mask = rng.random((16, 16)) < 0.3
    counts = []
    for x0, x1, y0, y1 in rects:
        xs, ys = slice(max(x0, 0), max(min(x1 + 1, 16), 0)), slice(max(y0, 0), max(min(y1 + 1, 16), 0))
        ref[ys, xs] = True
        counts.append(mask[ys, xs].sum())
    assert (qa.paint(rects, 16) == ref).all()
    assert (qa.count_in(mask, rects) == np.array(counts)).all()


def test_qa_cli_json_and_sheet(tmp_path):
    views = fixed_views(4, size=S)
    alpha = np.stack([silhouette(v, k=2) for v in views])
    with DatasetWriter(tmp_path / "ds", image_size=S, views_per_model=4, resolution=R, views=views) as w:
        w.append(
            id="good",
            category="chair",
            source="test",
            images=255 - alpha,
            alpha=alpha,
            voxels=grid(),
            durable=False,
        )
        w.append(
            id="shifted",
            category="chair",
            source="test",
            images=255 - alpha,
            alpha=alpha,
            voxels=np.roll(grid(), 1, axis=0),
            durable=False,
        )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxlift",
            "qa",
            str(tmp_path / "ds"),
            "--json",
            "--sheet",
            str(tmp_path / "sheet.png"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    by_id = {m["id"]: m for m in report["models"]}
    assert by_id["good"]["score"] == 1.0 and by_id["shifted"]["score"] < 0.97
    assert report["summary"]["share_both_ge_0.99"] == 0.5
    sheet = read_png(tmp_path / "sheet.png")
    assert sheet.shape[1] == 4 * (2 * S + 4) and sheet.shape[0] == 2 * (S + 4)
    text = subprocess.run(
        [sys.executable, "-m", "voxlift", "qa", str(tmp_path / "ds")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "shifted" in text.split("worst 2 models:")[1].splitlines()[2]  # worst model listed first
    assert len(open_dataset(tmp_path / "ds")) == 2


def test_qa_cli_missing_dataset_is_one_line_error(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "voxlift", "qa", str(tmp_path / "nope")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert res.stderr.strip().startswith("voxlift: error:") and len(res.stderr.strip().splitlines()) == 1
