"""dataset_tools.png: every colour type and bit depth, filters, Adam7, tRNS, and damaged files."""

import io
import struct
import zlib

import numpy as np
import pytest
from _sources_util import encode_png
from PIL import Image

from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.png import encode_png as voxlift_encode
from voxlift.dataset_tools.png import read_png, write_png

RNG = np.random.default_rng(1)


def samples(h, w, c, depth):
    return RNG.integers(0, 1 << depth, (h, w, c)).astype(np.uint16 if depth == 16 else np.uint8)


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize(
    "color_type,depth",
    [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (4, 8), (4, 16), (6, 8), (6, 16)],
)
def test_direct_colour_types_round_trip(color_type, depth, interlace):
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    s = samples(11, 13, channels, depth)  # odd sizes: partial bytes, empty Adam7 passes
    for ftype in range(5):
        got = read_png(encode_png(s, color_type, depth, interlace=interlace, ftype=ftype))
        want = s[..., 0] if channels == 1 else s
        if color_type == 0 and depth < 8:  # low-bit gray is scaled to 0..255
            want = (want.astype(int) * 255 // ((1 << depth) - 1)).astype(np.uint8)
        assert got.dtype == (np.uint16 if depth == 16 else np.uint8)
        np.testing.assert_array_equal(got, want, err_msg=f"type {color_type} depth {depth} filter {ftype}")


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_palette_with_and_without_trns(depth):
    n = 1 << depth
    palette = RNG.integers(0, 256, (n, 3)).astype(np.uint8)
    idx = RNG.integers(0, n, (9, 14, 1)).astype(np.uint8)
    got = read_png(encode_png(idx, 3, depth, palette=palette, interlace=depth == 4))
    np.testing.assert_array_equal(got, palette[idx[..., 0]])
    trns = bytes(range(0, 2 * min(n, 3), 2))  # alpha for the first entries only, the rest opaque
    got = read_png(encode_png(idx, 3, depth, palette=palette, trns=trns))
    alpha = np.full(256, 255, np.uint8)
    alpha[: len(trns)] = list(trns)
    assert got.shape == (9, 14, 4)
    np.testing.assert_array_equal(got[..., 3], alpha[idx[..., 0]])


def test_trns_colour_key_adds_alpha():
    s = samples(6, 7, 3, 8)
    s[2, 3] = (10, 20, 30)
    got = read_png(encode_png(s, 2, 8, trns=struct.pack(">3H", 10, 20, 30)))
    assert got.shape == (6, 7, 4) and got[2, 3, 3] == 0
    assert (got[..., 3] == 0).sum() == (s == (10, 20, 30)).all(axis=2).sum()


def test_reads_what_pillow_writes():
    a = RNG.integers(0, 256, (15, 12, 4)).astype(np.uint8)
    for mode, arr in [("L", a[..., 0]), ("LA", a[..., :2]), ("RGB", a[..., :3]), ("RGBA", a)]:
        buf = io.BytesIO()
        Image.fromarray(arr, mode).save(buf, format="PNG", optimize=True)
        np.testing.assert_array_equal(read_png(buf.getvalue()), arr)


@pytest.mark.parametrize("shape", [(5, 8), (5, 8, 1), (5, 8, 2), (5, 8, 3), (5, 8, 4)])
def test_write_png_round_trip_and_pillow_agrees(tmp_path, shape):
    a = RNG.integers(0, 256, shape).astype(np.uint8)
    path = tmp_path / "x.png"
    write_png(path, a)
    want = a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a
    np.testing.assert_array_equal(read_png(path), want)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), want)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary file left


def test_write_png_refuses_bad_arrays_and_keeps_old_file(tmp_path):
    path = tmp_path / "keep.png"
    write_png(path, np.zeros((2, 2), np.uint8))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_png(path, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError):
        write_png(path, np.zeros((2, 2, 5), np.uint8))
    assert path.read_bytes() == before


def good_png():
    return voxlift_encode(RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8))


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: b"", "empty file"),
        (lambda d: b"GIF89a" + d[6:], "not a PNG"),
        (lambda d: d[:-30], "truncated"),
        (lambda d: d[:40], "truncated"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "CRC"),
        (lambda d: d.replace(b"IHDR", b"IHDX"), "CRC"),
    ],
)
def test_damaged_files_raise_voxlift_error_naming_the_file(tmp_path, damage, message):
    path = tmp_path / "bad.png"
    path.write_bytes(damage(good_png()))
    with pytest.raises(VoxliftError, match=message) as exc:
        read_png(path)
    assert str(path) in str(exc.value)


def _png_with(ihdr: bytes, idat: bytes) -> bytes:
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_refuses_huge_dimensions_before_decompressing():
    data = _png_with(struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0), zlib.compress(b"\0" * 100))
    with pytest.raises(VoxliftError, match="larger than"):
        read_png(data)


def test_refuses_bad_headers_and_data():
    cases = [
        (struct.pack(">IIBBBBB", 4, 4, 3, 0, 0, 0, 0), zlib.compress(b"\0" * 20), "bit depth 3"),
        (struct.pack(">IIBBBBB", 0, 4, 8, 0, 0, 0, 0), zlib.compress(b""), "no pixels"),
        (struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0), b"not zlib", "compressed data"),
        (struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0), zlib.compress(b"\0" * 7), "truncated"),
        (struct.pack(">IIBBBBB", 2, 1, 8, 0, 0, 0, 0), zlib.compress(b"\x07\0\0"), "filter type 7"),
        (struct.pack(">IIBBBBB", 2, 1, 8, 3, 0, 0, 0), zlib.compress(b"\0\0\0"), "PLTE"),
    ]
    for ihdr, idat, message in cases:
        with pytest.raises(VoxliftError, match=message):
            read_png(_png_with(ihdr, idat))


def test_zlib_bomb_is_not_inflated_past_the_image():
    # 1x1 gray needs 2 bytes; the stream inflates to 50 MB. Reading must stop after what the image needs.
    data = _png_with(struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0), zlib.compress(b"\0" * 50_000_000, 9))
    assert read_png(data).shape == (1, 1)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(VoxliftError, match="no such file"):
        read_png(tmp_path / "nope.png")
    with pytest.raises(VoxliftError, match="folder"):
        read_png(tmp_path)


# ---------------------------------------------------------------- preview.py (thumbnails)
def test_grid_preview_shows_the_grid():
    from voxlift.dataset_tools.preview import grid_preview

    empty = grid_preview(np.zeros((16, 16, 16), bool), size=64)
    assert empty.shape == (64, 64) and empty.dtype == np.uint8 and (empty == 255).all()
    upper = np.zeros((16, 16, 16), bool)
    upper[4:12, 4:12, 10:14] = True  # a slab high up
    img = grid_preview(upper, size=64)
    rows = np.nonzero((img < 255).any(axis=1))[0]
    assert rows.max() < 40  # drawn in the upper part of the image
    lower = grid_preview(np.roll(upper, -8, axis=2), size=64)
    assert np.nonzero((lower < 255).any(axis=1))[0].min() > rows.min()
    # three face orientations seen: the top is the brightest gray
    grays = np.unique(img[img < 255])
    assert len(grays) >= 3
    col = img[:, 32]
    first = np.nonzero(col < 255)[0][0]
    assert (
        col[first + 1] > 0.9 * col[col < 255].max() > 1.2 * col[col < 255].min()
    )  # top face first, brightest
    # a one-voxel rod at 32^3 stays visible
    rod = np.zeros((32, 32, 32), bool)
    rod[16, 16, :] = True
    assert (grid_preview(rod, size=128) < 255).sum() > 100


def test_contact_sheet_layout_and_labels():
    from voxlift.dataset_tools.preview import contact_sheet

    tiles = [np.full((10, 12), 100, np.uint8), np.full((8, 8), 50, np.uint8), np.zeros((10, 12, 3), np.uint8)]
    sheet = contact_sheet(tiles, columns=2, gap=2)
    assert sheet.shape == (2 * (10 + 2) + 2, 2 * (12 + 2) + 2)
    assert (
        (sheet[2:12, 2:14] == 100).all()
        and (sheet[2:10, 16:24] == 50).all()
        and (sheet[14:24, 2:14] == 0).all()
    )
    labelled = contact_sheet(tiles, columns=3, labels=["a1", "b", "chair 3"])
    assert labelled.shape[0] > sheet.shape[0] // 2 + 10
    under = labelled[2 + 10 + 2 :, :]
    assert (under == 0).any()  # the text is drawn
    with pytest.raises(ValueError):
        contact_sheet(tiles, labels=["only one"])
    with pytest.raises(ValueError):
        contact_sheet([])
