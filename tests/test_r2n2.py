"""3D-R2N2 import: grids turned into voxlift's frame, cameras that put the grid on its images, skips."""

import json

import numpy as np
import pytest
from _sources_util import R2N2_SIZE, make_r2n2, r2n2_chair_grid

from voxlift.dataset_tools import open_dataset, project
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.r2n2 import FOV, grid_to_canonical, import_r2n2, read_metadata

CHAIR = "03001627"


def test_grid_is_turned_into_the_canonical_frame():
    ours = grid_to_canonical(r2n2_chair_grid())
    zs = np.nonzero(ours.any(axis=(0, 1)))[0]
    top = ours[:, :, zs.max()]
    assert np.nonzero(top.any(axis=0))[0].min() >= 16  # backrest top on +Y (the back)
    seat_layer = ours[:, :, 12]
    assert seat_layer.sum() == 20 * 20  # the seat is horizontal: Z is up
    arm = ours[:, :, 18] & ~ours[:, :, 25]  # the armrest layer, minus the backrest
    assert arm.any() and np.nonzero(arm.any(axis=1))[0].max() < 16  # ShapeNet's +Z side is voxlift's -X


def test_cameras_put_voxels_on_the_images(tmp_path):
    meta = make_r2n2(tmp_path / "r2n2", [(CHAIR, "m1")])
    counts = import_r2n2(tmp_path / "r2n2", tmp_path / "ds", log=lambda s: None)
    assert counts == {"added": 1, "existing": 0, "skipped": 0}
    ds = open_dataset(tmp_path / "ds")
    assert (len(ds), ds.image_size, ds.views_per_model, ds.resolution, ds.views) == (
        1,
        R2N2_SIZE,
        24,
        32,
        None,
    )
    assert ds.models[0].id == f"{CHAIR}/m1" and ds.models[0].category == "chair"
    np.testing.assert_array_equal(ds.voxels[0], grid_to_canonical(r2n2_chair_grid()))
    views = ds.views_of(0)
    np.testing.assert_allclose([v.azimuth for v in views], (-meta[:, 0]) % 360)
    np.testing.assert_allclose([v.elevation for v in views], meta[:, 1])
    assert all(np.isclose(v.fov, FOV) for v in views)
    centres = np.c_[np.argwhere(ds.voxels[0]), np.ones(int(ds.voxels[0].sum()))] @ ds.voxel_to_world.T
    # Wrong placements a bug could produce: mirrored left-right, front-back, or shifted by 3 voxels.
    wrong = {
        "mirror x": centres[:, :3] * [-1, 1, 1],
        "mirror y": centres[:, :3] * [1, -1, 1],
        "shift x": centres[:, :3] + [3 / 32, 0, 0],
        "shift z": centres[:, :3] + [0, 0, 3 / 32],
    }
    hits = {k: [] for k in wrong}
    for v, p in enumerate(ds.world_to_pixel(0)):
        alpha = ds.alpha[0, v] > 0
        assert alpha.sum() > 300
        uv = np.floor(project(centres[:, :3], p)).astype(int)
        assert ((uv >= 0) & (uv < R2N2_SIZE)).all()
        on = alpha[uv[:, 1], uv[:, 0]]
        assert on.all(), f"view {v}: {np.mean(~on):.1%} of the voxels miss the silhouette"
        covered = np.zeros_like(alpha)
        covered[uv[:, 1], uv[:, 0]] = True
        assert covered[alpha].mean() > 0.1  # the projected centres spread over the whole silhouette
        for k, pts in wrong.items():
            bad = np.floor(project(pts, p)).astype(int).clip(0, R2N2_SIZE - 1)
            hits[k].append(alpha[bad[:, 1], bad[:, 0]].mean())
    for k, h in hits.items():  # the `on.all()` check above would have caught each of them
        assert min(h) < 0.98, (k, min(h))
    # gray is the luma of (200, 100, 50) where drawn, white (the renderer's background) elsewhere
    g = ds.images[0, 0]
    assert set(np.unique(g[ds.alpha[0, 0] == 255])) == {
        int(np.rint(0.2126 * 200 + 0.7152 * 100 + 0.0722 * 50))
    }
    assert (g[ds.alpha[0, 0] == 0] == 255).all()


def test_bad_models_are_skipped_and_the_import_resumes(tmp_path):
    root = tmp_path / "r2n2"
    make_r2n2(root, [(CHAIR, "a"), (CHAIR, "b"), (CHAIR, "c"), ("04379243", "t")])
    (root / "ShapeNetVox32" / CHAIR / "b" / "model.binvox").unlink()
    (root / "ShapeNetRendering" / CHAIR / "c" / "rendering" / "05.png").write_bytes(
        b"\x89PNG\r\n\x1a\nbroken"
    )
    logged = []
    counts = import_r2n2(root, tmp_path / "ds", categories={"chair"}, log=logged.append)
    assert counts == {"added": 1, "existing": 0, "skipped": 2}
    assert any("b" in line and "model.binvox" in line for line in logged)
    assert any("05.png" in line for line in logged)
    skipped = [json.loads(s) for s in (tmp_path / "ds" / "skipped.jsonl").read_text().splitlines()]
    assert [s["id"] for s in skipped] == [f"{CHAIR}/b", f"{CHAIR}/c"]
    counts = import_r2n2(root, tmp_path / "ds", log=logged.append)  # all categories now, resuming
    assert counts["added"] == 1 and counts["existing"] == 1
    assert [m.id for m in open_dataset(tmp_path / "ds").models] == [f"{CHAIR}/a", "04379243/t"]


def test_bad_roots_and_metadata(tmp_path):
    with pytest.raises(VoxliftError, match="not a 3D-R2N2 folder"):
        import_r2n2(tmp_path, tmp_path / "ds")
    meta = tmp_path / "rendering_metadata.txt"
    meta.write_text("10 20 0 0.8 25\n" * 23)
    with pytest.raises(VoxliftError, match="23 lines"):
        read_metadata(meta)
    meta.write_text("10 20 0 0.8 25\n" * 23 + "10 twenty 0 0.8 25\n")
    with pytest.raises(VoxliftError, match="line 24"):
        read_metadata(meta)
