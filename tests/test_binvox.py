"""binvox reading and writing: the layout binvox_rw and ShapeNetVox32 use, round trips, bad files."""

import struct

import numpy as np
import pytest

from voxlift.dataset_tools.binvox import encode_binvox, read_binvox, write_binvox
from voxlift.dataset_tools.errors import VoxliftError


def binvox_rw_bytes(voxels_xyz, translate=(-0.5, -0.5, -0.5), scale=1.0):
    """A file written the way binvox_rw.write does it, step by step: header, then the [x, y, z] array
    transposed to [x, z, y], flattened, and run-length encoded by a per-voxel state machine that dumps a
    pair whenever a count reaches 255 (and so can write a (value, 0) pair after a run of exactly 255)."""
    dims = voxels_xyz.shape
    out = [
        b"#binvox 1\n",
        ("dim " + " ".join(map(str, dims)) + "\n").encode(),
        ("translate " + " ".join(map(str, translate)) + "\n").encode(),
        f"scale {scale}\n".encode(),
        b"data\n",
    ]
    flat = np.transpose(voxels_xyz, (0, 2, 1)).flatten()
    state, ctr = flat[0], 0
    for c in flat:
        if c == state:
            ctr += 1
            if ctr == 255:
                out.append(struct.pack("BB", int(state), ctr))
                ctr = 0
        else:
            out.append(struct.pack("BB", int(state), ctr))
            state, ctr = c, 1
    if ctr > 0:
        out.append(struct.pack("BB", int(state), ctr))
    return b"".join(out)


def binvox_rw_read(data):
    """binvox_rw.read_as_3d_array(fix_coords=True): reshape the runs to dims, transpose (0, 2, 1)."""
    header, body = data.split(b"data\n", 1)
    dims = [int(x) for x in header.split(b"\n")[1].split()[1:]]
    raw = np.frombuffer(body, dtype=np.uint8)
    return np.repeat(raw[::2], raw[1::2]).astype(bool).reshape(dims).transpose(0, 2, 1)


@pytest.mark.parametrize("xyz, linear", [((1, 0, 0), 4), ((0, 1, 0), 1), ((0, 0, 1), 2), ((1, 1, 0), 5)])
def test_storage_order_is_x_then_z_then_y(xyz, linear):
    # Hand-built 2^3 file with one voxel set at file position `linear` = x*4 + z*2 + y.
    runs = bytes([0, linear, 1, 1, 0, 7 - linear]) if linear else bytes([1, 1, 0, 7])
    data = b"#binvox 1\ndim 2 2 2\ntranslate -0.5 -0.5 -0.5\nscale 1\ndata\n" + runs
    grid = read_binvox(data)
    assert grid.voxels.shape == (2, 2, 2) and grid.voxels.dtype == bool
    assert np.argwhere(grid.voxels).tolist() == [list(xyz)]
    expected = np.zeros((2, 2, 2), bool)
    expected[xyz] = True
    assert encode_binvox(expected).endswith(runs)


def test_reads_what_binvox_rw_writes_and_the_reverse():
    rng = np.random.default_rng(0)
    vox = rng.random((32, 32, 32)) < 0.3
    vox[:, :, :10] = True  # long runs: pieces of 255, and runs of exactly 255 (binvox_rw's zero-count pair)
    vox[0, 0, :] = False
    vox.reshape(-1)[1000 : 1000 + 255] = True
    data = binvox_rw_bytes(vox, (-0.25, 0.0, -0.5), 0.75)
    grid = read_binvox(data)
    assert np.array_equal(grid.voxels, vox)
    assert np.allclose(grid.translate, [-0.25, 0.0, -0.5]) and grid.scale == 0.75
    ours = encode_binvox(vox, (-0.25, 0.0, -0.5), 0.75)
    assert np.array_equal(binvox_rw_read(ours), vox)
    assert all(c > 0 for c in ours[ours.index(b"data\n") + 6 :: 2])  # no zero-count runs


def test_shapenetvox32_style_header(tmp_path):
    vox = np.zeros((32, 32, 32), bool)
    vox[3:20, 5:9, 10:30] = True
    data = binvox_rw_bytes(vox, (-0.214286, -0.0535714, -0.5), 1.03571)
    path = tmp_path / "model.binvox"
    path.write_bytes(data)
    grid = read_binvox(path)
    assert np.array_equal(grid.voxels, vox)
    assert np.allclose(grid.translate, [-0.214286, -0.0535714, -0.5]) and np.isclose(grid.scale, 1.03571)


@pytest.mark.parametrize("res", [1, 32, 64])
def test_round_trip(tmp_path, res):
    rng = np.random.default_rng(res)
    vox = rng.random((res, res, res)) < 0.5
    path = tmp_path / "a.binvox"
    write_binvox(path, vox)
    grid = read_binvox(path)
    assert np.array_equal(grid.voxels, vox)
    assert np.allclose(grid.translate, -0.5) and grid.scale == 1.0
    assert path.read_bytes().startswith(b"#binvox 1\ndim %d %d %d\n" % (res, res, res))


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "a.binvox"
    write_binvox(path, np.ones((4, 4, 4), bool))
    write_binvox(path, np.zeros((8, 8, 8), bool))
    assert read_binvox(path).voxels.shape == (8, 8, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["a.binvox"]
    with pytest.raises(ValueError):
        write_binvox(path, np.zeros((4, 4, 5), bool))
    assert read_binvox(path).voxels.shape == (8, 8, 8)  # a failed write leaves the old file alone
    assert [p.name for p in tmp_path.iterdir()] == ["a.binvox"]


GOOD_HEADER = b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale 1\ndata\n"


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"hello world\n", "not a .binvox"),
        (b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale 1\n", "no 'data'"),
        (b"#binvox 1\ndim 2 2\ntranslate 0 0 0\nscale 1\ndata\n\x00\x08", "dim"),
        (b"#binvox 1\ndim 2048 2048 2048\ntranslate 0 0 0\nscale 1\ndata\n\x00\xff", "out of range"),
        (b"#binvox 1\ndim 0 0 0\ntranslate 0 0 0\nscale 1\ndata\n", "out of range"),
        (b"#binvox 1\ndim a b c\ntranslate 0 0 0\nscale 1\ndata\n\x00\x08", "bad header"),
        (b"#binvox 1\ndim 2 2 2\nscale 1\ndata\n\x00\x08", "translate"),
        (b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale -1\ndata\n\x00\x08", "scale"),
        (b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale nan\ndata\n\x00\x08", "scale"),
        (GOOD_HEADER + b"\x00\x04", "truncated"),
        (GOOD_HEADER + b"\x00\x04\x01", "truncated"),
        (GOOD_HEADER, "truncated"),
        (GOOD_HEADER + b"\x00\x08\x01\x01", "corrupt"),
        (GOOD_HEADER + b"\x02\x08", "corrupt"),
    ],
)
def test_bad_files_name_the_file(tmp_path, data, words):
    path = tmp_path / "bad.binvox"
    path.write_bytes(data)
    with pytest.raises(VoxliftError) as exc:
        read_binvox(path)
    assert str(path) in str(exc.value) and words in str(exc.value)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(VoxliftError, match="no such file"):
        read_binvox(tmp_path / "nope.binvox")
    with pytest.raises(VoxliftError, match="folder"):
        read_binvox(tmp_path)
