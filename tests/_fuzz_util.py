"""Shared by the fuzz tests (tests/test_fuzz_*.py) and the longer fuzz script (tests/fuzz/fuzz_parsers.py).

A TARGET is one parser voxlift exposes to third-party bytes: `seeds()` gives a few valid inputs to mutate,
`parse(data, tmp)` feeds bytes to the real parser (writing them to a file under `tmp` where the parser reads
files) and checks what it returns. The contract, for every input:
    * a correct result (checked by `parse`: shapes, ranges, finiteness), or
    * VoxliftError, whose message names the input;
anything else (another exception type, a hang, MemoryError) is a bug. `check(target, data, tmp)` applies
the contract and returns "ok" or "rejected"; it lets other exceptions through so the test or the fuzz
script reports them.
"""

from __future__ import annotations

import io
import json
import random
import signal
import struct
import zipfile
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxlift.dataset_tools.errors import VoxliftError

# Small enough for CI; the fuzz script goes far beyond this.
HANG_SECONDS = 20


class Hang(Exception):
    """A parser ran longer than HANG_SECONDS on one input."""


@contextmanager
def time_limit(seconds: float):
    """Raise Hang in the main thread if the block runs longer than `seconds` (SIGALRM)."""

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------------- mutations
MAGIC_NUMBERS = [
    b"0",
    b"-1",
    b"1e308",
    b"-1e308",
    b"nan",
    b"inf",
    b"4294967295",
    b"2147483648",
    b"1000000000",
    b"99999999999999999999",
    b"-0",
    b"1e-320",
]


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """A few random edits of `data`: bit flips, byte sets, deletions, insertions, duplicated or swapped
    slices, truncation, and numbers replaced by extreme ones (what header-driven allocations trip on)."""
    buf = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(buf)
        if n == 0:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            continue
        i = rng.randrange(n)
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i] = rng.choice([0, 255, 10, 13, 32, 47, 45, 92, rng.randrange(256)])
        elif op == 2:
            del buf[i : i + rng.randint(1, 16)]
        elif op == 3:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            j = rng.randrange(n)
            buf[i:i] = buf[j : j + rng.randint(1, 64)]
        elif op == 5:
            del buf[rng.randrange(n) :]
        elif op == 6:  # replace a run of digits by an extreme number
            digits = [k for k in range(n) if 48 <= buf[k] <= 57]
            if digits:
                k = rng.choice(digits)
                e = k
                while e < n and (48 <= buf[e] <= 57 or buf[e] in b".-e"):
                    e += 1
                buf[k:e] = rng.choice(MAGIC_NUMBERS)
        elif op == 7:  # overwrite 4 bytes with an extreme big-endian or little-endian integer
            value = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000, rng.randrange(1 << 32)])
            buf[i : i + 4] = struct.pack(rng.choice([">I", "<I"]), value)
        else:
            j = rng.randrange(n)
            a, b = sorted((i, j))
            buf[a:b] = buf[a:b][::-1]
    return bytes(buf)


# ---------------------------------------------------------------------------------------------- seeds
def obj_seeds() -> list[bytes]:
    cube_v = "".join(f"v {x} {y} {z}\n" for x in (0, 1) for y in (0, 1) for z in (0, 1))
    quads = "f 1 2 4 3\nf 5 7 8 6\nf 1 5 6 2\nf 3 4 8 7\nf 1 3 7 5\nf 2 6 8 4\n"
    full = (
        "mtllib chair.mtl\no part\n" + cube_v + "vt 0 0\nvt 1 0\nvt 1 1\nvn 0 0 1\nusemtl wood\n"
        "f 1/1/1 2/2/1 4/3/1\nf -8//1 -7//1 -5//1\nf 1/1 3/2 7/3 5/1\n"
    )
    return [
        b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
        (cube_v + quads).encode(),
        full.replace("\n", "\r\n").encode(),
        (cube_v + "f 1 2 3 4 5 6 7 8\n" + "l 1 2\n").encode(),
    ]


def binvox_seeds() -> list[bytes]:
    from voxlift.dataset_tools.binvox import encode_binvox

    rng = np.random.default_rng(0)
    return [
        encode_binvox(rng.random((8, 8, 8)) < 0.3),
        encode_binvox(np.zeros((4, 4, 4), bool)),
        encode_binvox(rng.random((32, 32, 32)) < 0.1, translate=(0.1, -0.2, 0.3), scale=0.9),
    ]


CATALOG_TEXT = (
    "# Sweet Home 3D catalog\n"
    "id#1=eTeks#chair\nname#1=Wooden chair\ncategory#1=Kitchen\nmodel#1=/chair.obj\n"
    "width#1=42\ndepth#1=47\nheight#1=90\nmodelRotation#1=1 0 0 0 1 0 0 0 1\ncreator#1=me\n"
    "id#2=eTeks#table\nname#2=Round \\\n  table\ncategory#2=Kitchen\nmodel#2=table.obj\n"
    "width#2=100\ndepth#2=100\nheight#2=74\nmodelRotation#2=0 0 1 0 1 0 -1 0 0\ntags#2=caf\\u00e9\n"
)


def properties_seeds() -> list[bytes]:
    return [CATALOG_TEXT.encode("latin-1"), b"a=b\n! comment\nkey\\:x : value\\tx\nsingle\n"]


def make_zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


def sh3f_seeds() -> list[bytes]:
    cube = obj_seeds()[1]
    entries = {
        "PluginFurnitureCatalog.properties": CATALOG_TEXT.encode("latin-1"),
        "chair.obj": cube,
        "table.obj": obj_seeds()[0],
        "chair.mtl": b"newmtl wood\nKd 1 0 0\nmap_Kd ../../etc/passwd\n",
    }
    return [make_zip(entries), make_zip(entries, zipfile.ZIP_STORED)]


def metadata_seeds() -> list[bytes]:
    rng = random.Random(1)
    lines = [
        f"{rng.uniform(0, 360):.6f} {rng.uniform(25, 30):.6f} 0 {rng.uniform(0.65, 0.9):.6f} 25"
        for _ in range(24)
    ]
    return ["\n".join(lines).encode() + b"\n"]


def manifest_seeds() -> list[bytes]:
    from voxlift.dataset_tools.camera import fixed_views
    from voxlift.dataset_tools.dataset import voxel_to_world

    manifest = {
        "format": "voxlift-dataset",
        "version": 1,
        "image_size": 8,
        "views_per_model": 2,
        "resolution": 4,
        "voxel_to_world": voxel_to_world(4).tolist(),
        "views": [v.to_json() for v in fixed_views(2, size=8)],
    }
    return [json.dumps(manifest, indent=1).encode(), json.dumps({**manifest, "views": None}).encode()]


MODELS_JSONL = (
    b'{"id":"a","category":"chair","source":"synthetic","split":"train"}\n'
    b'{"id":"b","category":"table","source":"synthetic","split":"val","extra":[1,2]}\n'
)


def models_seeds() -> list[bytes]:
    return [MODELS_JSONL, MODELS_JSONL + b'{"id":"c","category":"chair"}\n']


def png_seeds() -> list[bytes]:
    """Gray, RGB, RGBA; and from Pillow: palette (+tRNS), 16-bit, 1-bit, interlaced, gray+alpha."""
    from PIL import Image

    from voxlift.dataset_tools.png import encode_png

    rng = np.random.default_rng(0)
    seeds = [
        encode_png(rng.integers(0, 256, (5, 7), dtype=np.uint8)),
        encode_png(rng.integers(0, 256, (9, 4, 3), dtype=np.uint8)),
        encode_png(rng.integers(0, 256, (3, 3, 4), dtype=np.uint8)),
    ]

    def pil(im, **kw) -> bytes:
        out = io.BytesIO()
        im.save(out, "PNG", **kw)
        return out.getvalue()

    rgb = Image.fromarray(rng.integers(0, 256, (13, 11, 3), dtype=np.uint8))
    seeds.append(pil(rgb.quantize(7)))
    pal = rgb.quantize(5)
    seeds.append(pil(pal, transparency=2))
    seeds.append(pil(Image.fromarray(rng.integers(0, 65536, (6, 10), dtype=np.uint16))))
    seeds.append(pil(Image.fromarray(rng.random((9, 17)) < 0.5)))
    seeds.append(_interlaced(rng))
    seeds.append(pil(Image.fromarray(rng.integers(0, 256, (5, 6, 2), dtype=np.uint8), "LA")))
    return seeds


def _interlaced(rng) -> bytes:
    """An Adam7 RGB PNG with Paeth and Average filters (Pillow writes neither interlaced files nor these)."""
    from voxlift.dataset_tools.png import SIGNATURE, _chunk

    w, h = 10, 9
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    raw = b""
    for x0, y0, dx, dy in [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ]:
        sub = img[y0::dy, x0::dx]
        for row in sub:  # filter 0 on each row keeps this writer simple; the mutations change filter bytes
            raw += b"\x00" + row.tobytes()
    return (
        SIGNATURE
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def image_seeds() -> list[bytes]:
    """What artists feed the reconstruct command: JPEG (gray, RGB, CMYK, odd sizes), GIF, BMP, TIFF 16-bit."""
    from PIL import Image

    rng = np.random.default_rng(1)

    def save(im, fmt, **kw) -> bytes:
        out = io.BytesIO()
        im.save(out, fmt, **kw)
        return out.getvalue()

    rgb = Image.fromarray(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8))
    return [
        save(rgb, "JPEG"),
        save(rgb.convert("L"), "JPEG"),
        save(rgb.convert("CMYK"), "JPEG"),
        save(rgb, "JPEG", progressive=True),
        save(rgb.quantize(9), "GIF"),
        save(rgb, "BMP"),
        save(Image.fromarray(rng.integers(0, 65536, (9, 12), dtype=np.uint16)), "TIFF"),
    ]


# ---------------------------------------------------------------------------------------------- parsers
def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def parse_obj_target(data: bytes, tmp: Path) -> None:
    from voxlift.dataset_tools.obj import parse_obj

    mesh = parse_obj(data, "fuzz.obj")
    assert mesh.faces.ndim == 2 and mesh.faces.shape[1] == 3 and len(mesh.faces) > 0
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    assert np.isfinite(mesh.vertices).all()


def parse_binvox_target(data: bytes, tmp: Path) -> None:
    from voxlift.dataset_tools.binvox import parse_binvox

    grid = parse_binvox(data, "fuzz.binvox")
    d = grid.voxels.shape
    assert grid.voxels.dtype == bool and len(d) == 3
    assert np.isfinite(grid.translate).all() and grid.scale > 0


def parse_properties_target(data: bytes, tmp: Path) -> None:
    from voxlift.dataset_tools.sh3f import parse_catalog, parse_properties

    props = parse_properties(data.decode("latin-1"), "fuzz.properties")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())
    for entry in parse_catalog(props, "fuzz.properties"):
        if "error" not in entry.extra:
            assert min(entry.width, entry.depth, entry.height) > 0
            assert entry.rotation is None or entry.rotation.shape == (3, 3)


def parse_sh3f_target(data: bytes, tmp: Path) -> None:
    from voxlift.dataset_tools.sources import iter_models

    path = _write(tmp, "fuzz.sh3f", data)
    for record in iter_models(str(path)):
        try:
            mesh = record.load()
        except VoxliftError as exc:
            assert record.id in str(exc), f"error does not name the model: {exc}"
            continue
        v = mesh.vertices
        assert np.isfinite(v).all() and abs(float((v.max(0) - v.min(0)).max()) - 1) < 1e-6


def parse_metadata_target(data: bytes, tmp: Path) -> None:
    from voxlift.dataset_tools.r2n2 import read_metadata

    rows = read_metadata(_write(tmp, "rendering_metadata.txt", data))
    assert rows.shape == (24, 5) and np.isfinite(rows).all()


def _dataset_folder(tmp: Path, manifest: bytes, models: bytes) -> Path:
    root = tmp / "ds"
    root.mkdir(exist_ok=True)
    (root / "manifest.json").write_bytes(manifest)
    (root / "models.jsonl").write_bytes(models)
    # Arrays for up to 4 models of the seed sizes; a manifest claiming more must be refused as truncated.
    for name, size in (
        ("images.u8", 4 * 2 * 64),
        ("alpha.u8", 4 * 2 * 64),
        ("voxels.u8", 4 * 64),
        ("cameras.f64", 4 * 2 * 16 * 8),
    ):
        (root / name).write_bytes(b"\1" * size)
    return root


def _read_dataset(root: Path) -> None:
    from voxlift.dataset_tools.dataset import open_dataset

    ds = open_dataset(root)
    for i in range(len(ds)):
        assert isinstance(ds.models[i].id, str)
        assert ds.images[i].shape == (ds.views_per_model, ds.image_size, ds.image_size)
        assert ds.world_to_pixel(i).shape == (ds.views_per_model, 3, 4)
        ds.views_of(i)
    assert ds.voxel_to_world.shape == (4, 4)
    ds.summary()


def parse_manifest_target(data: bytes, tmp: Path) -> None:
    _read_dataset(_dataset_folder(tmp, data, MODELS_JSONL))


def parse_models_target(data: bytes, tmp: Path) -> None:
    _read_dataset(_dataset_folder(tmp, manifest_seeds()[0], data))


def parse_skipped_target(data: bytes, tmp: Path) -> None:
    """skipped.jsonl, read by a reader and by a writer resuming the dataset."""
    from voxlift.dataset_tools.dataset import DatasetWriter

    root = _dataset_folder(tmp, manifest_seeds()[0], MODELS_JSONL)
    (root / "skipped.jsonl").write_bytes(data)
    _read_dataset(root)
    views = json.loads(manifest_seeds()[0])["views"]
    from voxlift.dataset_tools.camera import View

    with DatasetWriter(
        root, image_size=8, views_per_model=2, resolution=4, views=[View.from_json(v) for v in views]
    ) as writer:
        writer.skip("new-model", "fuzz", "a reason")
        assert all(isinstance(i, str) for i in writer.skipped_ids)


def parse_png_target(data: bytes, tmp: Path) -> None:
    from voxlift.dataset_tools.png import read_png

    image = read_png(data)
    assert image.dtype in (np.uint8, np.uint16) and image.ndim in (2, 3) and min(image.shape[:2]) >= 1
    assert image.ndim == 2 or image.shape[2] in (2, 3, 4)


def fix_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC a mutation broke, so mutated PNGs get past the CRC check to the decoder."""
    out, pos = bytearray(data[:8]), 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if pos + 12 + length > len(data):
            break
        body = data[pos + 4 : pos + 8 + length]
        out += data[pos : pos + 8 + length] + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        pos += 12 + length
    return bytes(out + data[pos:])


def parse_png_chunks_target(data: bytes, tmp: Path) -> None:
    parse_png_target(fix_crcs(data), tmp)


def parse_image_target(data: bytes, tmp: Path) -> None:
    """The reconstruct command's image loader (PNG by voxlift, everything else by Pillow)."""
    from voxlift.io.images import load_image

    image = load_image(_write(tmp, "fuzz.img", data))
    assert image.ndim in (2, 3) and min(image.shape[:2]) >= 8


def npy_seeds() -> list[bytes]:
    rng = np.random.default_rng(2)
    out = []
    for a in (rng.integers(0, 256, (9, 12, 3), dtype=np.uint8), rng.random((16, 8)).astype(np.float32)):
        buf = io.BytesIO()
        np.save(buf, a)
        out.append(buf.getvalue())
    return out


def parse_npy_target(data: bytes, tmp: Path) -> None:
    """.npy arrays given to the reconstruct command (np.load without pickles; the header claims a shape)."""
    from voxlift.io.images import load_image

    image = load_image(_write(tmp, "fuzz.npy", data))
    assert image.ndim in (2, 3) and min(image.shape[:2]) >= 8


@dataclass
class Target:
    name: str
    seeds: Callable[[], list[bytes]]
    parse: Callable[[bytes, Path], None]


TARGETS = {
    t.name: t
    for t in [
        Target("obj", obj_seeds, parse_obj_target),
        Target("binvox", binvox_seeds, parse_binvox_target),
        Target("properties", properties_seeds, parse_properties_target),
        Target("sh3f", sh3f_seeds, parse_sh3f_target),
        Target("metadata", metadata_seeds, parse_metadata_target),
        Target("manifest", manifest_seeds, parse_manifest_target),
        Target("models", models_seeds, parse_models_target),
        Target(
            "skipped",
            lambda: [b'{"id":"x","source":"obj","reason":"no faces"}\n', b'{"id":"y"}\n[1]\n'],
            parse_skipped_target,
        ),
        Target("png", png_seeds, parse_png_target),
        Target("png-chunks", png_seeds, parse_png_chunks_target),
        Target("image", image_seeds, parse_image_target),
        Target("npy", npy_seeds, parse_npy_target),
    ]
}


def check(target: Target, data: bytes, tmp: Path, seconds: float = HANG_SECONDS) -> str:
    """'ok' (parsed, result checked) or 'rejected' (VoxliftError); anything else propagates."""
    tmp.mkdir(parents=True, exist_ok=True)
    with time_limit(seconds):
        try:
            target.parse(data, tmp)
        except VoxliftError as exc:
            assert str(exc).strip() and "\n" not in str(exc).strip(), f"error is not one line: {exc!r}"
            return "rejected"
    return "ok"


# ---------------------------------------------------------------------------------------------- full disk
@dataclass
class SmallDisk:
    path: Path
    size: int
    mounted: bool
    reason: str  # the strerror a write past the end gives: what the one-line error must carry
    file_limit: int  # the stand-in's per-file cap (without a tmpfs)

    def run(self, cmd: list[str], **kw):
        """Run `cmd` against this disk. Without a tmpfs, RLIMIT_FSIZE in the child stands in for it (a write
        past `file_limit` bytes in one file fails with EFBIG instead of ENOSPC)."""
        import resource
        import subprocess

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_limit, self.file_limit))

        return subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=None if self.mounted else limit,
            **kw,
        )


@contextmanager
def small_disk(path: Path, size: int, file_limit: int | None = None):
    """A `size`-byte filesystem at `path`: a tmpfs when mount works (root), else the RLIMIT_FSIZE stand-in
    with a per-file cap of `file_limit` (default `size`). VOXLIFT_TEST_NO_MOUNT=1 forces the stand-in."""
    import os
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        not os.environ.get("VOXLIFT_TEST_NO_MOUNT")
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            check=False,
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        yield SmallDisk(
            path,
            size,
            mounted,
            "No space left on device" if mounted else "File too large",
            file_limit or size,
        )
    finally:
        if mounted and subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
