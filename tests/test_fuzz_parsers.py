"""Every parser that reads third-party bytes ends in a checked result or a one-line VoxliftError, never another
exception, a hang or an out-of-memory: mutation fuzzing (hypothesis picks the seed and the edits), random
bytes, round trips (a correct result, not a silently wrong one), and the inputs fuzzing found (regressions).
The longer run is tests/fuzz/fuzz_parsers.py; its figures are in RELIABILITY.md."""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from _fuzz_util import TARGETS, check, fix_crcs, make_zip, manifest_seeds, mutate, png_seeds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxlift.dataset_tools.binvox import encode_binvox, parse_binvox
from voxlift.dataset_tools.dataset import open_dataset
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.mesh import Mesh
from voxlift.dataset_tools.obj import parse_obj, read_obj, write_obj
from voxlift.dataset_tools.png import SIGNATURE, _chunk, encode_png, read_png
from voxlift.dataset_tools.sh3f import Sh3fArchive, parse_properties

# Pillow warns (and goes on) about the damaged TIFF/EXIF data the image target feeds it: expected noise.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SEEDS = {name: t.seeds() for name, t in TARGETS.items()}


@pytest.mark.parametrize("name", sorted(TARGETS))
@FUZZ
@given(data=st.data())
def test_mutated_inputs_parse_or_fail_cleanly(name, data, tmp_path):
    seed = data.draw(st.sampled_from(SEEDS[name]), label="seed")
    edits = data.draw(st.integers(0, 2**32 - 1), label="edits")
    check(TARGETS[name], mutate(seed, random.Random(edits)), tmp_path)


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(blob=st.binary(max_size=300))
def test_random_bytes_fail_cleanly(name, blob, tmp_path):
    assert check(TARGETS[name], blob, tmp_path) in ("ok", "rejected")


def test_every_seed_parses(tmp_path):
    """The seeds are valid inputs: a parser that rejects everything would pass the fuzz tests vacuously."""
    for name, seeds in SEEDS.items():
        for i, seed in enumerate(seeds):
            assert check(TARGETS[name], seed, tmp_path / f"{name}{i}") == "ok", (name, i)


# ---------------------------------------------------------------------------------------------- round trips
@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(v=st.integers(3, 40), f=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_obj_round_trip_is_exact(tmp_path_factory, v, f, seed):
    rng = np.random.default_rng(seed)
    mesh = Mesh(rng.normal(size=(v, 3)) * 10 ** rng.uniform(-6, 6), rng.integers(0, v, (f, 3)))
    path = tmp_path_factory.mktemp("obj") / "m.obj"
    write_obj(path, mesh)
    back = read_obj(path)
    assert np.array_equal(back.vertices, mesh.vertices) and np.array_equal(back.faces, mesh.faces)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(d=st.integers(1, 40), p=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_binvox_round_trip_is_exact(d, p, seed):
    grid = np.random.default_rng(seed).random((d, d, d)) < p
    back = parse_binvox(encode_binvox(grid, (0.25, -1, 2), 0.5), "x")
    assert np.array_equal(back.voxels, grid) and back.scale == 0.5 and list(back.translate) == [0.25, -1, 2]


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(
    h=st.integers(1, 33), w=st.integers(1, 33), c=st.sampled_from([1, 2, 3, 4]), seed=st.integers(0, 2**16)
)
def test_png_round_trip_is_exact(h, w, c, seed):
    image = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    assert np.array_equal(read_png(encode_png(image)), image[..., 0] if c == 1 else image)


def test_pillow_written_pngs_decode_as_pillow_decodes_them():
    """Palette (with and without transparency), 16-bit gray, 1-bit and gray+alpha: same pixels as Pillow."""
    from PIL import Image

    for data in png_seeds()[3:]:
        ours = read_png(data)
        im = Image.open(io.BytesIO(data))
        if im.mode == "P":
            ref = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
        elif im.mode == "1":
            ref = np.asarray(im.convert("L"))
        else:
            ref = np.asarray(im)
        assert ours.shape == ref.shape and np.array_equal(ours.astype(np.int64), ref.astype(np.int64)), (
            im.mode
        )


_KEY = st.text(st.characters(codec="latin-1", blacklist_characters="\r\n"), min_size=1, max_size=12)


def _escape(text: str, key: bool) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch in "\\=: #!\t\f" and (key or ch in "\\" or (i == 0 and ch in " \t\f")):
            out.append("\\" + ch)
        elif ch in "\t\f":
            out.append({"\t": "\\t", "\f": "\\f"}[ch])
        else:
            out.append(ch)
    return "".join(out)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    pairs=st.dictionaries(
        _KEY, st.text(st.characters(codec="latin-1", blacklist_characters="\r\n"), max_size=20), max_size=6
    )
)
def test_properties_round_trip(pairs):
    """What Java's Properties.store writes (escaped keys and values), parse_properties reads back."""
    text = "".join(f"{_escape(k, True)}={_escape(v, False)}\n" for k, v in pairs.items())
    assert parse_properties(text) == pairs


# ---------------------------------------------------------------------------------------------- regressions
def _zip_with_bad_deflate() -> bytes:
    data = bytearray(make_zip({"PluginFurnitureCatalog.properties": b"model#1=a.obj\n" * 20}))
    start = 30 + len("PluginFurnitureCatalog.properties")
    data[start : start + 4] = b"\xff\xff\xff\xff"  # deflate block type 3 does not exist
    return bytes(data)


def test_regression_corrupt_deflate_stream_is_a_clean_error(tmp_path):
    path = tmp_path / "bad.sh3f"
    path.write_bytes(_zip_with_bad_deflate())
    archive = Sh3fArchive(path)
    with pytest.raises(VoxliftError, match="bad.sh3f.*corrupt"):  # was zlib.error
        archive.read("PluginFurnitureCatalog.properties")


def test_regression_unknown_zip_version_is_a_clean_error(tmp_path):
    data = bytearray(make_zip({"a.obj": b"v 0 0 0\n"}))
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 6 : cd + 8] = struct.pack("<H", 89)  # "version needed to extract" 8.9
    (tmp_path / "v.sh3f").write_bytes(bytes(data))
    with pytest.raises(VoxliftError, match="v.sh3f"):  # was NotImplementedError('zip file version 8.9')
        Sh3fArchive(tmp_path / "v.sh3f")


@pytest.mark.parametrize(
    "change",
    [
        {"voxel_to_world": None},
        {"voxel_to_world": [[1, 0], [0, 1, 2]]},
        {"voxel_to_world": "eye"},
        {"views": [{"azimuth": 0}]},
        {
            "views": [{"azimuth": 0, "elevation": 0, "distance": 2, "fov": 40, "world_to_pixel": [[1, 2, 3]]}]
            * 2
        },
        {"views": "all"},
        {"image_size": True},
        {"views": []},
    ],
)
def test_regression_damaged_manifest_is_a_clean_error(tmp_path, change):
    manifest = {**json.loads(manifest_seeds()[0]), **change}
    if "voxel_to_world" in change and change["voxel_to_world"] is None:
        del manifest["voxel_to_world"]  # was KeyError
    root = tmp_path / "ds"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(VoxliftError, match="manifest.json: bad"):  # were KeyError, ValueError
        open_dataset(root)


@pytest.mark.parametrize(
    "line", [b'{"category":"chair"}', b"[1,2]", b'{"id":7}', b'{"id":"a","category":[1]}']
)
def test_regression_damaged_model_line_is_a_clean_error(tmp_path, line):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "manifest.json").write_bytes(manifest_seeds()[0])
    (root / "models.jsonl").write_bytes(line + b"\n")
    with pytest.raises(VoxliftError, match="models.jsonl: line 1 is not a model record"):  # was KeyError
        open_dataset(root)


def _png(width, height, depth, ctype, rows: bytes) -> bytes:
    return (
        SIGNATURE
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def test_regression_png_claiming_gigabytes_is_refused_before_decompressing():
    # 16384 x 16384 16-bit RGBA: 2 GiB of rows from a 2 MB file; it used to be decompressed (killed for memory).
    claim = (
        SIGNATURE
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", 16384, 16384, 16, 6, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\0" * 100000))
        + _chunk(b"IEND", b"")
    )
    with pytest.raises(VoxliftError, match="pixels allowed"):
        read_png(claim)
    with pytest.raises(VoxliftError, match="bytes of image data"):
        read_png(_png(8000, 4000, 16, 6, b""))


def test_regression_many_paeth_rows_are_refused_not_decoded_for_minutes():
    w, h = 5000, 5000  # 75 MB of Paeth rows in an 84 kB file: minutes of byte-by-byte Python before
    with pytest.raises(VoxliftError, match="Average or Paeth"):
        read_png(_png(w, h, 8, 2, (b"\4" + bytes(3 * w)) * h))
    small = read_png(_png(300, 200, 8, 2, (b"\4" + bytes(900)) * 200))  # ordinary sizes still decode
    assert small.shape == (200, 300, 3) and not small.any()


def test_png_crc_fixing_reaches_the_decoder():
    """fix_crcs is what lets the png-chunks target test the decoder rather than only the CRC check."""
    data = bytearray(png_seeds()[1])
    data[-20] ^= 0xFF  # inside IDAT
    with pytest.raises(VoxliftError, match="CRC"):
        read_png(bytes(data))
    assert fix_crcs(png_seeds()[1]) == png_seeds()[1]


# ---------------------------------------------------------------------------------------------- memory caps
def run_capped(code: str, mem_mb: int = 700) -> subprocess.CompletedProcess:
    """Run `code` in a child Python whose address space is capped at `mem_mb` MB above its start-up size:
    a parser that believes a header's size claim dies there with MemoryError instead of swapping the host."""
    prelude = textwrap.dedent(f"""
        import resource
        import numpy, voxlift.dataset_tools.obj, voxlift.dataset_tools.binvox, voxlift.dataset_tools.png
        vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + {mem_mb} * 2**20, resource.RLIM_INFINITY))
        from voxlift.dataset_tools.errors import VoxliftError
    """)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_header_claims_are_capped_under_a_memory_limit():
    res = run_capped("""
        from voxlift.dataset_tools.binvox import parse_binvox
        from voxlift.dataset_tools.obj import parse_obj
        from voxlift.dataset_tools.png import read_png
        cases = {
            "binvox 10^9 voxels": lambda: parse_binvox(b"#binvox 1\\ndim 1000 1000 1000\\ntranslate 0 0 0\\n"
                                                       b"scale 1\\ndata\\n" + b"\\x00\\xff" * 1000, "big.binvox"),
            "binvox 10^12 voxels": lambda: parse_binvox(b"#binvox 1\\ndim 10000 10000 10000\\ntranslate 0 0 0\\n"
                                                        b"scale 1\\ndata\\n", "huge.binvox"),
            "obj face 10^6 corners": lambda: parse_obj(b"v 0 0 0\\nv 1 0 0\\nv 0 1 0\\nf" + b" 1 2 3" * 333334
                                                       + b"\\n", "face.obj"),
            "obj 10^6 vertices, index past them": lambda: parse_obj(b"v 0 0 0\\n" * 10**6 + b"f 1 2 2000000\\n",
                                                                  "idx.obj"),
        }
        for name, fn in cases.items():
            try:
                fn()
                print(name, "ACCEPTED")
            except VoxliftError as exc:
                print(name, "REFUSED", exc)
    """)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 4 and all("REFUSED" in ln for ln in lines), res.stdout
    assert "big.binvox" in lines[0] and "face.obj" in lines[2] and "idx.obj" in lines[3]


def test_npy_header_claiming_40_gigabytes_is_a_clean_error(tmp_path):
    path = tmp_path / "claim.npy"
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (100000, 100000, 4), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(4096))
    res = run_capped(
        f"""
        import voxlift.io.images as cr
        try:
            print("LOADED", cr.load_image({str(path)!r}).shape)
        except VoxliftError as exc:
            print("REFUSED", exc)
    """,
        mem_mb=300,
    )
    assert res.returncode == 0 and res.stdout.startswith("REFUSED") and "claim.npy" in res.stdout, (
        res.stdout + res.stderr[-1000:]
    )


def test_binvox_file_of_a_few_megabytes_does_not_need_gigabytes():
    res = run_capped(
        """
        from voxlift.dataset_tools.binvox import parse_binvox
        d = 1024
        runs = b"\\x00\\xff" * (d ** 3 // 255) + bytes([0, d ** 3 % 255])
        try:
            parse_binvox(b"#binvox 1\\ndim 1024 1024 1024\\ntranslate 0 0 0\\nscale 1\\ndata\\n" + runs, "x.binvox")
            print("ACCEPTED")
        except VoxliftError as exc:
            print("REFUSED", exc)
    """,
        mem_mb=700,
    )
    assert res.returncode == 0 and res.stdout.startswith(("ACCEPTED", "REFUSED")), res.stderr[-500:]


def test_mtl_and_material_paths_are_never_opened(tmp_path):
    """OBJ reading is geometry only: `mtllib` naming a missing, hostile or huge file changes nothing."""
    body = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
    plain = parse_obj(body, "a.obj")
    for lib in (b"../../../../etc/shadow", b"/dev/zero", b"missing.mtl", b"C:\\evil.mtl"):
        other = parse_obj(b"mtllib " + lib + b"\nusemtl x\n" + body, "b.obj")
        assert np.array_equal(other.vertices, plain.vertices) and np.array_equal(other.faces, plain.faces)


def test_truncated_and_odd_images_for_reconstruct(tmp_path):
    """JPEG/TIFF/GIF/BMP through Pillow, truncated at every tenth of their length: a result or a clean error."""
    for k, seed in enumerate(SEEDS["image"]):
        for cut in range(1, 10):
            check(TARGETS["image"], seed[: len(seed) * cut // 10], tmp_path / f"{k}-{cut}")


def test_regression_damaged_skipped_lines_do_not_stop_a_resume(tmp_path):
    """skipped.jsonl lines that are not objects, or whose id is not a string, used to raise AttributeError or
    TypeError when a writer resumed the dataset; they are informative only and are left out."""
    data = b'[1]\n{"id":[1,2]}\n{"id":"kept","source":"obj","reason":"no faces"}\n'
    assert check(TARGETS["skipped"], data, tmp_path) == "ok"
    ds = open_dataset(tmp_path / "ds")
    assert [r["id"] for r in ds.skipped] == [[1, 2], "kept", "new-model"]


def test_regression_encrypted_entry_is_a_clean_error(tmp_path):
    data = bytearray(make_zip({"PluginFurnitureCatalog.properties": b"x=1\n"}))
    for sig, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set bit 0: "encrypted"
        pos = data.find(sig)
        data[pos + flags_at] |= 1
    (tmp_path / "enc.sh3f").write_bytes(bytes(data))
    with pytest.raises(VoxliftError, match="enc.sh3f.*corrupt.*password"):  # was RuntimeError
        Sh3fArchive(tmp_path / "enc.sh3f").read("PluginFurnitureCatalog.properties")


def test_tiny_image_claiming_100_megapixels_is_refused_by_size(tmp_path):
    from PIL import Image

    path = tmp_path / "bomb.gif"
    Image.new("L", (12000, 9000)).save(path)  # 108 megapixels in about 80 kB
    res = run_capped(f"""
        import voxlift.io.images as cr
        try:
            print("LOADED", cr.load_image({str(path)!r}).shape)
        except VoxliftError as exc:
            print("REFUSED", exc)
    """)
    assert res.returncode == 0, res.stderr[-1000:]
    assert res.stdout.startswith("REFUSED") and "pixels" in res.stdout, res.stdout
