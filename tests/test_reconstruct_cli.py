"""`voxlift reconstruct`: every output format read back, errors as one line, the child-process backend."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from _reconstruct_util import other_kind_checkpoint, python_without_torch, tiny_run

from voxlift import backend_process, cli, meshing, reconstruct
from voxlift.dataset_tools.binvox import read_binvox
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.obj import read_obj
from voxlift.io.images import load_image


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def thr(run):
    """A threshold that leaves about 40% of the voxels filled (see _reconstruct_util.tiny_run)."""
    return f"{run['thresholds'][0]:.9g}"


@pytest.fixture(scope="module")
def probs(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("npz") / "chair.npz"
    assert (
        cli.main(
            ["reconstruct", str(run["images"]["chair"]), "--checkpoint", str(run["run"]), "--out", str(out)]
        )
        == 0
    )
    with np.load(out) as z:
        assert z["probs"].shape == (1, 32, 32, 32) and list(z["names"]) == ["chair"]
        assert bool(z["viewer_centred"]) is True
        return z["probs"][0]


def test_npz_holds_probabilities(probs, run, thr):
    assert probs.dtype == np.float32 and probs.min() >= 0 and probs.max() <= 1
    assert np.allclose(probs, run["probs"], atol=1e-5)
    assert 0.2 < (probs >= float(thr)).mean() < 0.6


@pytest.mark.parametrize("mode", ["cubes", "smooth"])
def test_obj_and_glb_match_the_grid(run, probs, tmp_path, mode, thr):
    args = [
        "reconstruct",
        str(run["images"]["chair"]),
        "--checkpoint",
        str(run["run"]),
        "--mode",
        mode,
        "--threshold",
        thr,
    ]
    assert cli.main(args + ["--out", str(tmp_path / "chair.obj")]) == 0
    assert cli.main(args + ["--out", str(tmp_path / "chair.glb")]) == 0
    verts, quads = meshing.mesh_from_probs(probs, mode, float(thr))
    obj = read_obj(tmp_path / "chair.obj")
    assert len(obj.vertices) == len(verts) and len(obj.faces) == 2 * len(quads)
    assert np.allclose(obj.vertices, verts, atol=1e-6)
    # Closed: every undirected edge is shared by an even number of triangles.
    e = np.sort(np.stack([obj.faces, np.roll(obj.faces, -1, axis=1)], -1).reshape(-1, 2), axis=1)
    assert (np.unique(e, axis=0, return_counts=True)[1] % 2 == 0).all()
    glb = trimesh.load(tmp_path / "chair.glb", force="mesh", process=False)
    assert len(glb.vertices) == len(verts) and len(glb.faces) == 2 * len(quads)
    # glTF is Y up: (x, y, z) is stored as (x, z, -y).
    assert np.allclose(glb.vertices, np.c_[verts[:, 0], verts[:, 2], -verts[:, 1]], atol=1e-6)
    assert glb.volume == pytest.approx(
        trimesh.Trimesh(obj.vertices, obj.faces, process=False).volume, rel=1e-4
    )


def test_binvox_is_the_thresholded_grid(run, probs, tmp_path, thr):
    out = tmp_path / "chair.binvox"
    assert (
        cli.main(
            [
                "reconstruct",
                str(run["images"]["chair"]),
                "--checkpoint",
                str(run["run"]),
                "--threshold",
                thr,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    grid = read_binvox(out)
    assert np.array_equal(np.asarray(grid.voxels, bool), probs >= float(thr))
    assert np.allclose(grid.translate, -0.5) and grid.scale == pytest.approx(1.0)


def test_blend_holds_one_object_per_image(run, probs, tmp_path, thr):
    import bpy

    out = tmp_path / "both.blend"
    assert (
        cli.main(
            [
                "reconstruct",
                str(run["images"]["chair"]),
                str(run["images"]["table"]),
                "--checkpoint",
                str(run["run"]),
                "--threshold",
                thr,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with bpy.data.libraries.load(str(out)) as (src, dst):
        assert sorted(src.objects) == ["chair", "table"]
        dst.objects = ["chair"]
    obj = dst.objects[0]
    verts, quads = meshing.mesh_from_probs(probs, "cubes", float(thr))
    assert (len(obj.data.vertices), len(obj.data.polygons)) == (len(verts), len(quads))
    assert obj.data.materials[0].name.startswith("voxlift")
    stored = np.array(obj["voxlift_probs"], dtype=np.float32).reshape(32, 32, 32)
    assert np.allclose(stored, probs) and obj["voxlift_resolution"] == 32


def test_viewer_centred_result_is_turned_by_the_azimuth(run, tmp_path, thr):
    base = ["reconstruct", str(run["images"]["chair"]), "--checkpoint", str(run["run"]), "--threshold", thr]
    assert cli.main(base + ["--out", str(tmp_path / "a0.obj")]) == 0
    assert cli.main(base + ["--azimuth", "90", "--out", str(tmp_path / "a90.obj")]) == 0
    v0, v90 = read_obj(tmp_path / "a0.obj").vertices, read_obj(tmp_path / "a90.obj").vertices
    # Rz(90): (x, y) -> (-y, x)
    assert np.allclose(v90, np.c_[-v0[:, 1], v0[:, 0], v0[:, 2]], atol=1e-6)


def test_subprocess_several_images_name_their_outputs(run, tmp_path, thr):
    out = tmp_path / "r.obj"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxlift",
            "reconstruct",
            str(run["images"]["chair"]),
            str(run["images"]["table"]),
            "--checkpoint",
            str(run["run"] / "best.safetensors"),
            "--threshold",
            thr,
            "--greedy",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "r_chair.obj").is_file() and (tmp_path / "r_table.obj").is_file()
    assert res.stdout.split() == [str(tmp_path / "r_chair.obj"), str(tmp_path / "r_table.obj")]


def one_error_line(capsys, argv) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("voxlift: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_errors_are_one_clear_line(run, tmp_path, capsys):
    ckpt = str(run["run"])
    image = str(run["images"]["chair"])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for bad in (garbage, empty, text, tmp_path / "missing.png"):
        err = one_error_line(
            capsys, ["reconstruct", str(bad), "--checkpoint", ckpt, "--out", str(tmp_path / "x.obj")]
        )
        assert str(bad) in err
    err = one_error_line(
        capsys,
        ["reconstruct", image, "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "x.obj")],
    )
    assert "nope" in err and "checkpoint" in err
    other = other_kind_checkpoint(tmp_path)
    err = one_error_line(
        capsys, ["reconstruct", image, "--checkpoint", str(other), "--out", str(tmp_path / "x.obj")]
    )
    assert "autoencoder" in err and str(other) in err
    pickle_file = tmp_path / "model.safetensors"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    err = one_error_line(
        capsys, ["reconstruct", image, "--checkpoint", str(pickle_file), "--out", str(tmp_path / "x.obj")]
    )
    assert "pickle" in err
    err = one_error_line(
        capsys, ["reconstruct", image, "--checkpoint", ckpt, "--out", str(tmp_path / "x.stl")]
    )
    assert ".stl" in err
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x*")), "no output on error"


def test_child_process_backend_gives_the_same_grid(run, probs):
    image = load_image(run["images"]["chair"])
    backend = backend_process.Backend(sys.executable, external=True)
    child, viewer_centred = reconstruct.predict([image], str(run["run"]), "cpu", backend)
    assert viewer_centred is True
    assert np.allclose(child[0], probs, atol=1e-5)


def test_child_without_torch_says_so(run, tmp_path_factory):
    bare = python_without_torch(tmp_path_factory)
    backend = backend_process.Backend(bare, external=True)
    status = backend_process.probe_torch(backend)
    assert status["ok"] is False and "torch" in status["error"]
    ok = backend_process.probe_torch(backend_process.Backend(sys.executable))
    assert ok["ok"] is True and ok["version"].startswith("2.") and ok["cuda"] in (True, False)
    image = load_image(run["images"]["chair"])
    with pytest.raises(VoxliftError, match="PyTorch is not installed") as err:
        reconstruct.predict([image], str(run["run"]), "cpu", backend)
    assert bare in str(err.value) and "\n" not in str(err.value)


def test_opaque_alpha_is_dropped_and_real_alpha_kept():
    img = np.ones((16, 16, 4), np.float32)
    assert reconstruct.drop_opaque_alpha(img).shape == (16, 16, 3)
    img[0, 0, 3] = 0
    assert reconstruct.drop_opaque_alpha(img).shape == (16, 16, 4)


def test_progress_parsing_and_cancel():
    p = backend_process.Progress()
    backend_process.parse_progress(
        "train paired (cpu, 1 proc):  12%|#2   | 60/500 [00:03<00:20, loss=0.3123, val=0.412]", p
    )
    assert (p.step, p.total, p.loss, p.iou) == (60, 500, pytest.approx(0.3123), pytest.approx(0.412))
    assert p.fraction == pytest.approx(0.12)
    backend_process.parse_progress('{"step": 70, "total": 500, "loss": 0.25, "iou": 0.5}', p)
    assert (p.step, p.loss, p.iou) == (70, 0.25, 0.5)
    # A real child: progress lines through a pipe with carriage returns, then Ctrl-C ends it.
    code = (
        "import sys, time\n"
        "for i in range(1, 1000):\n"
        "    sys.stderr.write(f'\\r{i}/999 [00:00, loss={1/i:.3f}, val=0.5]'); sys.stderr.flush()\n"
        "    time.sleep(0.02)\n"
    )
    job = backend_process.Job([sys.executable, "-c", code], None)
    for _ in range(300):
        if job.progress.step >= 5:
            break
        job.poll()
        import time

        time.sleep(0.02)
    assert job.progress.step >= 5 and job.progress.total == 999 and job.progress.iou == 0.5
    job.cancel(grace=5)
    assert job.wait(timeout=10) != 0 and job.cancelled
    assert math.isclose(job.progress.loss, 1 / job.progress.step, abs_tol=2e-3) or job.progress.loss < 0.2


def test_without_pillow_blender_reads_the_image(tmp_path):
    # Blender's own Python has no Pillow: the CLI inside Blender hands JPEGs and the like to Blender.
    from PIL import Image

    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[4:20, 8:24] = (200, 120, 40)
    Image.fromarray(rgb).save(tmp_path / "box.bmp")
    code = (
        "import sys, json; sys.modules['PIL'] = None\n"
        "import numpy as np\n"
        "from voxlift.cmd_reconstruct import _read_with_blender\n"
        "from voxlift.io.images import load_image\n"
        f"a = load_image({str(tmp_path / 'box.bmp')!r}, fallback=_read_with_blender)\n"
        "print(json.dumps({'shape': a.shape, 'rgb': (a[..., :3] * 255).round().astype(int).tolist()}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["shape"] == [24, 32, 4] and np.array_equal(out["rgb"], rgb)  # rows top first, as Pillow's
    blocked = code.replace("sys.modules['PIL'] = None", "sys.modules['PIL'] = sys.modules['bpy'] = None")
    res = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "neither Pillow nor Blender" in res.stderr and "box.bmp" in res.stderr
