"""The dataset format: append, read back with numpy alone, crash recovery, locking, splits, merge."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from voxlift.dataset_tools import (
    DatasetWriter,
    VoxliftError,
    fixed_views,
    merge_datasets,
    open_dataset,
    split_of,
)
from voxlift.dataset_tools.dataset import voxel_to_world

S, V, R = 16, 4, 8


def _model(k):
    rng = np.random.default_rng(k)
    return {
        "images": rng.integers(0, 255, (V, S, S), dtype=np.uint8),
        "alpha": rng.integers(0, 255, (V, S, S), dtype=np.uint8),
        "voxels": rng.random((R, R, R)) < 0.1,
    }


def _writer(path):
    return DatasetWriter(path, image_size=S, views_per_model=V, resolution=R, views=fixed_views(V, size=S))


def test_append_and_read_back_with_numpy_alone(tmp_path):
    with _writer(tmp_path) as w:
        for k in range(3):
            w.append(id=f"m{k}", category="chair", source="test", **_model(k))
    ds = open_dataset(tmp_path)
    assert len(ds) == 3 and [m.id for m in ds.models] == ["m0", "m1", "m2"]
    for k in range(3):
        m = _model(k)
        assert np.array_equal(ds.images[k], m["images"]) and np.array_equal(ds.alpha[k], m["alpha"])
        assert np.array_equal(ds.voxels[k], m["voxels"])
    # The README's promise: plain numpy reads it without voxlift.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    raw = np.memmap(tmp_path / "voxels.u8", dtype=bool, mode="r", shape=(3, R, R, R))
    assert np.array_equal(raw[1], _model(1)["voxels"]) and manifest["resolution"] == R
    assert np.allclose(ds.voxel_to_world @ [0, 0, 0, 1], [-0.5 + 0.5 / R] * 3 + [1])
    assert np.allclose(
        voxel_to_world(R) @ [R - 1, 0, 0, 1], [0.5 - 0.5 / R, -0.5 + 0.5 / R, -0.5 + 0.5 / R, 1]
    )
    assert ds.world_to_pixel(0).shape == (V, 3, 4)


def test_crashed_writer_loses_only_the_model_in_flight(tmp_path):
    with _writer(tmp_path) as w:
        w.append(id="a", category="chair", source="t", **_model(0))
    # Simulate a writer killed mid-model: half the image bytes and a partial line.
    with open(tmp_path / "images.u8", "ab") as f:
        f.write(b"\x01" * 100)
    with open(tmp_path / "models.jsonl", "ab") as f:
        f.write(b'{"id": "b", "categ')
    assert len(open_dataset(tmp_path)) == 1  # readers see a valid dataset at every instant
    with _writer(tmp_path) as w:  # resume
        assert "a" in w and "b" not in w
        w.append(id="b", category="table", source="t", **_model(1))
    ds = open_dataset(tmp_path)
    assert [m.id for m in ds.models] == ["a", "b"]
    assert np.array_equal(ds.images[1], _model(1)["images"])
    assert (tmp_path / "images.u8").stat().st_size == 2 * V * S * S


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_not(tmp_path):
    w = _writer(tmp_path)
    with pytest.raises(VoxliftError, match="another voxlift process"):
        _writer(tmp_path)
    w.close()
    # A process that dies holding the lock leaves nothing stuck (flock is dropped by the OS).
    code = (
        "import os; from voxlift.dataset_tools import DatasetWriter, fixed_views; "
        f"w = DatasetWriter({str(tmp_path)!r}, image_size={S}, views_per_model={V}, resolution={R}, "
        f"views=fixed_views({V}, size={S})); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    _writer(tmp_path).close()


def test_reopening_with_other_settings_is_refused(tmp_path):
    _writer(tmp_path).close()
    with pytest.raises(VoxliftError, match="image_size"):
        DatasetWriter(
            tmp_path, image_size=S * 2, views_per_model=V, resolution=R, views=fixed_views(V, size=S)
        )


def test_duplicate_ids_and_wrong_shapes_are_refused(tmp_path):
    with _writer(tmp_path) as w:
        w.append(id="a", category="chair", source="t", **_model(0))
        with pytest.raises(VoxliftError, match="already"):
            w.append(id="a", category="chair", source="t", **_model(1))
        bad = _model(2)
        bad["voxels"] = bad["voxels"][:4]
        with pytest.raises(ValueError, match="shape"):
            w.append(id="c", category="chair", source="t", **bad)
    assert len(open_dataset(tmp_path)) == 1


def test_splits_are_80_10_10_and_stable():
    ids = [f"model-{k}" for k in range(5000)]
    splits = [split_of(i) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert (
        abs(share["train"] - 0.8) < 0.03
        and abs(share["val"] - 0.1) < 0.02
        and abs(share["test"] - 0.1) < 0.02
    )
    assert splits == [split_of(i) for i in ids]


def test_not_a_dataset_errors_name_the_folder(tmp_path):
    with pytest.raises(VoxliftError, match="no such dataset folder"):
        open_dataset(tmp_path / "missing")
    with pytest.raises(VoxliftError, match="not a voxlift dataset"):
        open_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(VoxliftError, match="manifest.json"):
        open_dataset(tmp_path)


def test_truncated_arrays_are_reported(tmp_path):
    with _writer(tmp_path) as w:
        w.append(id="a", category="chair", source="t", **_model(0))
    os.truncate(tmp_path / "voxels.u8", 10)
    with pytest.raises(VoxliftError, match="truncated"):
        open_dataset(tmp_path)


def test_per_model_views_and_merge(tmp_path):
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    for path, ids in ((a, ["x", "y"]), (b, ["y", "z"])):
        with DatasetWriter(path, image_size=S, views_per_model=V, resolution=R, views=None) as w:
            for k, i in enumerate(ids):
                cams = np.arange(V * 16, dtype=np.float64).reshape(V, 16) + k
                w.append(id=i, category="table", source="t", cameras=cams, **_model(ord(i)))
    assert merge_datasets(out, [a, b]) == 3
    assert merge_datasets(out, [a, b]) == 0  # merging again doubles nothing
    ds = open_dataset(out)
    assert ds.views is None and [m.id for m in ds.models] == ["x", "y", "z"]
    assert np.array_equal(ds.voxels[2], _model(ord("z"))["voxels"])
    assert ds.views_of(0)[1].azimuth == 16.0 and ds.world_to_pixel(0).shape == (V, 3, 4)
