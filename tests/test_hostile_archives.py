""".sh3f libraries and add-on zips are hostile until proven otherwise: entries are read into memory (never
extracted), a `..` or absolute entry name refuses the archive, and entry counts and sizes (declared or real)
are capped before anything is decompressed."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zipfile

import pytest
from _blender_util import run_in_blender
from _fuzz_util import CATALOG_TEXT, make_zip, obj_seeds

from voxlift.dataset_tools import sh3f
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.sources import iter_models

CUBE = obj_seeds()[1]


def library(tmp_path, extra: dict[str, bytes], name="lib.sh3f") -> str:
    entries = {
        "PluginFurnitureCatalog.properties": CATALOG_TEXT.encode("latin-1"),
        "chair.obj": CUBE,
        "table.obj": CUBE,
        **extra,
    }
    path = tmp_path / name
    path.write_bytes(make_zip(entries))
    return str(path)


def files_under(root) -> set[str]:
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


@pytest.mark.parametrize(
    "entry",
    [
        "../evil.obj",
        "models/../../evil.obj",
        "/tmp/evil.obj",
        "C:/evil.obj",
        "..\\evil.obj",
        "models\\..\\..\\evil.obj",
    ],
)
def test_escaping_entry_names_refuse_the_archive(tmp_path, entry):
    work = tmp_path / "work"
    work.mkdir()
    path = library(work, {entry: CUBE})
    before = files_under(tmp_path)
    cwd = os.getcwd()
    os.chdir(work)  # a reader that extracted relative names would write next to it
    try:
        with pytest.raises(VoxliftError, match=r"lib\.sh3f: refused: zip entry .*evil\.obj"):
            list(iter_models(path))
    finally:
        os.chdir(cwd)
    assert files_under(tmp_path) == before  # nothing written anywhere


def test_catalog_pointing_outside_the_archive_reads_nothing_from_disk(tmp_path):
    """model#1=../secret.obj names a file that exists next to the library: it is looked up in the zip only."""
    (tmp_path / "secret.obj").write_bytes(CUBE)
    catalog = CATALOG_TEXT.replace("model#1=/chair.obj", "model#1=../secret.obj").encode("latin-1")
    path = tmp_path / "lib.sh3f"
    path.write_bytes(make_zip({"PluginFurnitureCatalog.properties": catalog, "table.obj": CUBE}))
    records = list(iter_models(str(path)))
    with pytest.raises(VoxliftError, match=r"no entry '\.\./secret\.obj' in the archive"):
        records[0].load()
    assert records[1].load().faces.shape == (12, 3)


def test_too_many_entries_refuse_the_archive(tmp_path):
    path = tmp_path / "many.sh3f"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("PluginFurnitureCatalog.properties", b"")
        for i in range(sh3f.MAX_ENTRIES):
            z.writestr(zipfile.ZipInfo(f"{i}"), b"")
    with pytest.raises(VoxliftError, match=f"many.sh3f: {sh3f.MAX_ENTRIES + 1} zip entries"):
        sh3f.Sh3fArchive(path)


def _set_sizes(data: bytes, name: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size `name` declares, in its local header and the central directory."""
    out = bytearray(data)
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = 0
        while (pos := out.find(sig, pos)) >= 0:
            name_at = pos + (30 if sig == b"PK\x03\x04" else 46)
            if out[name_at : name_at + len(name)] == name:
                out[pos + offset : pos + offset + 4] = struct.pack("<I", size)
            pos += 4
    return bytes(out)


def test_declared_sizes_over_the_limits_refuse_before_decompressing(tmp_path):
    big = _set_sizes(
        make_zip({"PluginFurnitureCatalog.properties": CATALOG_TEXT.encode("latin-1"), "chair.obj": CUBE}),
        b"chair.obj",
        sh3f.MAX_ENTRY_BYTES + 1,
    )
    (tmp_path / "big.sh3f").write_bytes(big)
    records = list(iter_models(str(tmp_path / "big.sh3f")))  # the catalog still lists
    with pytest.raises(VoxliftError, match="'chair.obj' is 536870913 bytes, over the limit"):
        records[0].load()
    # Total: a few entries that each claim 4 GiB - 1 add up past MAX_TOTAL_BYTES.
    data = make_zip({f"{i}.obj": CUBE for i in range(3)})
    for i in range(3):
        data = _set_sizes(data, f"{i}.obj".encode(), 0xFFFFFFFF)
    (tmp_path / "total.sh3f").write_bytes(data)
    with pytest.raises(VoxliftError, match=r"total.sh3f: \d+ bytes uncompressed, more than"):
        sh3f.Sh3fArchive(tmp_path / "total.sh3f")


def test_entry_that_lies_about_its_size_is_cut_at_the_declared_size(tmp_path):
    """A zip bomb declaring 64 bytes but holding 200 MB of zeros: at most the declared bytes are inflated,
    under a memory cap well below the real size."""
    zeros = make_zip({"PluginFurnitureCatalog.properties": b"x=1\n", "bomb.obj": bytes(200 << 20)})
    (tmp_path / "bomb.sh3f").write_bytes(_set_sizes(zeros, b"bomb.obj", 64))
    code = textwrap.dedent(f"""
        import resource
        from voxlift.dataset_tools.sh3f import Sh3fArchive
        from voxlift.dataset_tools.errors import VoxliftError
        vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 100 * 2**20, resource.RLIM_INFINITY))
        try:
            print(len(Sh3fArchive({str(tmp_path / "bomb.sh3f")!r}).read("bomb.obj")))
        except VoxliftError as exc:
            print("REFUSED", exc)
    """)
    res = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout.strip()
    assert out == "64" or ("REFUSED" in out and "bomb.obj" in out), out


def test_voxlift_extension_zip_has_only_plain_relative_names(repo_root):
    """What we ship: every entry of the add-on zip stays inside the folder it is installed into."""
    out = subprocess.run(
        [sys.executable, str(repo_root / "build.py"), "zip"], capture_output=True, text=True, check=True
    )
    zpath = out.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(zpath).namelist()
    assert names and not [n for n in names if sh3f._hostile(n)]
    assert len(names) < 500 and sum(i.file_size for i in zipfile.ZipFile(zpath).infolist()) < 20 << 20


def test_blender_does_not_install_an_add_on_zip_outside_its_folder(tmp_path):
    """A hostile extension zip (valid manifest, plus `../` and absolute entries) handed to Blender's installer:
    nothing lands outside the extensions folder, whatever Blender answers."""
    manifest = (
        b'schema_version = "1.0.0"\nid = "evil_ext"\nversion = "1.0.0"\nname = "Evil"\n'
        b'tagline = "Evil test add-on"\nmaintainer = "t"\ntype = "add-on"\nlicense = ["SPDX:GPL-3.0-or-later"]\n'
        b'blender_version_min = "4.2.0"\n'
    )
    evil = tmp_path / "evil.zip"
    escaped = tmp_path / "escaped.txt"
    absolute = tmp_path / "absolute.txt"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("blender_manifest.toml", manifest)
        z.writestr("__init__.py", b"open(%r, 'w').write('ran')\n" % str(tmp_path / "ran.txt").encode())
        z.writestr("../../../../escaped.txt", b"x")
        z.writestr("../../../../../../../../../../" + str(escaped).lstrip("/"), b"x")
        z.writestr(str(absolute), b"x")
    res = run_in_blender(
        f"""
        import json
        try:
            r = bpy.ops.extensions.package_install_files(filepath={str(evil)!r}, repo="user_default",
                                                         enable_on_install=False)
        except Exception as exc:
            r = repr(exc)
        print(json.dumps({{"result": str(r)}}))
    """,
        tmp_path,
        install=False,
        check=False,
        timeout=180,
    )
    assert not escaped.exists() and not absolute.exists(), res.stdout[-2000:] + res.stderr[-2000:]
    home = tmp_path / "blender-home"
    stray = [
        p
        for p in files_under(tmp_path)
        if p.endswith(("escaped.txt", "absolute.txt"))
        and not p.startswith(str(home / "blender" / "extensions"))
    ]
    assert not stray, stray
    assert not (tmp_path / "ran.txt").exists()  # installing without enabling runs none of its code
    print(
        "Blender answered:", res.stdout[-300:], res.stderr[-300:]
    )  # shown with -s; RELIABILITY.md quotes it
