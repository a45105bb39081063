"""`voxlift sources | voxelize | inspect | import-r2n2` through voxlift.cli.main and the console script."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _sources_util import make_r2n2, write_obj

from voxlift.cli import main
from voxlift.dataset_tools.binvox import read_binvox
from voxlift.dataset_tools.synthetic import synthetic_model
from voxlift.dataset_tools.voxelize import voxelize


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_sources_lists_models_and_counts(capsys, sh3f_libraries):
    rc, out, _ = run(capsys, "sources", "synthetic:12:1", sh3f_libraries[0], "--categories", "chair,table")
    assert rc == 0
    lines = out.splitlines()
    rows = [ln.split("\t") for ln in lines[:-1]]
    assert all(len(r) == 4 and r[1] in ("chair", "table") for r in rows)
    assert rows[0][0] == "synthetic:1/0" and any(r[0] == "sh3f:KatorLegaz/dining-chair" for r in rows)
    n_chair = sum(r[1] == "chair" for r in rows)
    assert lines[-1] == f"# {len(rows)} models: chair {n_chair}, table {len(rows) - n_chair}"
    rc, out, _ = run(capsys, "sources", sh3f_libraries[1], "--limit", "3")
    assert rc == 0 and len(out.splitlines()) == 4


def test_voxelize_writes_resumes_and_skips_bad_models(capsys, tmp_path):
    objs = tmp_path / "objs"
    write_obj(
        objs / "ok.obj",
        np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]]),
        np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]),
    )
    (objs / "broken.obj").write_text("v 0 0 0\nf 1 2 7\n")
    out = tmp_path / "vox"
    rc, stdout, err = run(capsys, "voxelize", "synthetic:3:2", objs, "--out", out, "--resolution", "16")
    assert rc == 0
    assert "skipped obj:objs/broken" in err and "broken.obj" in err
    assert stdout.strip().endswith("4 written, 0 already there, 1 skipped")
    grid = read_binvox(out / "synthetic" / "2" / "1.binvox")
    m = synthetic_model(2, 1)
    np.testing.assert_array_equal(grid.voxels, voxelize(m.mesh.vertices, m.mesh.faces, 16))
    np.testing.assert_allclose(grid.translate, [-0.5] * 3)
    assert (out / "obj" / "objs" / "ok.binvox").is_file()
    before = (out / "synthetic" / "2" / "0.binvox").stat().st_mtime_ns
    rc, stdout, _ = run(capsys, "voxelize", "synthetic:3:2", objs, "--out", out, "--resolution", "16")
    assert rc == 0 and stdout.strip().endswith("0 written, 4 already there, 1 skipped")
    assert (out / "synthetic" / "2" / "0.binvox").stat().st_mtime_ns == before
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_import_r2n2_then_inspect(capsys, tmp_path):
    make_r2n2(tmp_path / "r2n2", [("03001627", "a"), ("03001627", "b"), ("04379243", "c")])
    rc, stdout, _ = run(
        capsys,
        "import-r2n2",
        tmp_path / "r2n2",
        "--out",
        tmp_path / "ds",
        "--categories",
        "chair",
        "--limit",
        "1",
    )
    assert rc == 0 and "1 added, 0 already there, 0 skipped" in stdout
    rc, stdout, _ = run(capsys, "import-r2n2", tmp_path / "r2n2", "--out", tmp_path / "ds")
    assert rc == 0 and "2 added, 1 already there, 0 skipped" in stdout
    rc, stdout, _ = run(capsys, "inspect", tmp_path / "ds")
    assert rc == 0
    assert "3 models, 24 views of 137x137 px, voxels 32^3, views differ per model" in stdout
    assert "chair" in stdout and "table" in stdout


@pytest.mark.parametrize(
    "argv,message",
    [
        (["sources", "/no/such/source"], "/no/such/source: no such file or folder"),
        (["sources", "synthetic:2", "--categories", "chiar"], "unknown category 'chiar'"),
        (["sources", "synthetic:2", "--limit", "-1"], "--limit"),
        (["inspect", "/no/such/dataset"], "no such dataset folder"),
        (["import-r2n2", "/tmp", "--out", "/tmp/never-written"], "not a 3D-R2N2 folder"),
        (["voxelize", "synthetic:2", "--out", "/dev/null"], "not a folder"),
        (["voxelize", "synthetic:2", "--out", "x", "--resolution", "0"], "--resolution"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_1(capsys, argv, message):
    rc, _, err = run(capsys, *argv)
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("voxlift: error: ") and message in err, err


def test_not_a_dataset(capsys, tmp_path):
    rc, _, err = run(capsys, "inspect", tmp_path)
    assert rc == 1 and err == f"voxlift: error: {tmp_path}: not a voxlift dataset (no manifest.json)\n"


def test_console_script(tmp_path):
    exe = Path(sys.executable).parent / "voxlift"
    ok = subprocess.run(
        [str(exe), "sources", "synthetic:3:4"], capture_output=True, text=True, timeout=60, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0].startswith("synthetic:4/0\t")
    bad = subprocess.run(
        [str(exe), "inspect", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 1
    assert bad.stderr == f"voxlift: error: {tmp_path / 'nope'}: no such dataset folder\n"
