"""`voxlift reconstruct`: every output format read back, errors as one line, the child-process backend."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import trimesh
from _blender_util import last_json, run_in_blender
from _paired_util import make_dataset
from _reconstruct_util import other_kind_checkpoint, python_without_torch, tiny_run
from _train_util import interrupt_at, log_rows, train

from voxlift import backend_process, cli, cmd_reconstruct, meshing, reconstruct
from voxlift.dataset_tools.binvox import read_binvox
from voxlift.dataset_tools.errors import VoxliftError
from voxlift.dataset_tools.obj import read_obj
from voxlift.dataset_tools.png import write_png
from voxlift.io.axes import y_up_to_z_up
from voxlift.io.images import load_image

# A tiny paired model (the sizes _reconstruct_util.tiny_run trains with): real training in seconds.
TINY = ["--batch-size", 4, "--val-samples", 8, "--latent-dim", 16, "--encoder-width", 4, "--decoder-width", 4,
        "--workers", 0]  # fmt: skip


def tiny_dataset(folder) -> str:
    return make_dataset(folder / "data", chairs=2, tables=2, size=32, views=2)


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
    # OBJ is Y up, like glTF: (x, y, z) is stored as (x, z, -y).
    assert np.allclose(obj.vertices, np.c_[verts[:, 0], verts[:, 2], -verts[:, 1]], atol=1e-6)
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
        assert sorted(src.objects) == ["Camera", "Sun", "chair", "table"]
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
    v0, v90 = (y_up_to_z_up(read_obj(tmp_path / f"{a}.obj").vertices) for a in ("a0", "a90"))
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
    with pytest.raises(VoxliftError, match="needs PyTorch") as err:
        reconstruct.predict([image], str(run["run"]), "cpu", backend)
    assert bare in str(err.value) and "\n" not in str(err.value)


def test_opaque_alpha_is_dropped_and_real_alpha_kept():
    from voxlift.backend.framing import gray_and_alpha

    img = np.ones((16, 16, 4), np.float32)
    assert gray_and_alpha(img)[1] is None  # says nothing: the object is found another way
    img[0, 0, 3] = 0
    assert gray_and_alpha(img)[1][0, 0] == 0


TQDM_LINES = [  # what the old panel read: a timed run's bar has no total, so "15step" matched nothing
    "train paired (cpu):  15step [00:25,  1.67step/s, loss=0.5123, val=-]",
    "train paired (cpu, 1 proc):  12%|#2   | 60/500 [00:03<00:20, loss=0.3123, val=0.412]",
]


def test_progress_comes_from_the_trainers_json_lines(tmp_path):
    """The panel's progress: the trainer's `--progress json` rows (the loop writes the same rows to
    log.jsonl), and nothing from a progress bar."""
    run = tmp_path / "run"
    assert train("paired", [*TINY, "--data", tiny_dataset(tmp_path), "--out", run, "--steps", 12,
                            "--val-every", 5, "--quiet"]) == 0  # fmt: skip
    rows = log_rows(run)
    p = backend_process.Progress()
    for row in rows:
        backend_process.parse_train_event(json.dumps(row), p)
        if row["event"] == "step" and row["step"] == 10:
            mid = (p.step, p.total, p.fraction, p.loss, p.iou, p.seconds_left)
            last_val = [r for r in rows[: rows.index(row)] if r["event"] == "val"][-1]["val"]
            assert mid[:4] == (10, 12, row["progress"], row["losses"]["loss"])
            assert mid[4] == last_val["iou@0.3"] and mid[5] > 0
        for line in TQDM_LINES:  # never read: the bar would say other things than the rows
            before = dict(vars(p))
            backend_process.parse_train_event(line, p)
            assert vars(p) == before
    end = rows[-1]
    assert end["event"] == "end" and (p.step, p.fraction, p.end) == (12, 1.0, "done")
    assert p.iou == end["val"]["iou@0.3"] and p.resumed is False
    # A timed run: no step total, the bar is the share of the time, the time left is the budget's.
    timed = {"event": "step", "step": 15, "steps": None, "minutes": 1.0, "elapsed": 25.0, "progress": 0.4167,
             "losses": {"loss": 0.5}, "val": None}  # fmt: skip
    backend_process.parse_train_event(json.dumps(timed), p)
    assert (p.step, p.total, p.fraction, p.seconds_left) == (15, None, 0.4167, 35.0)


def test_job_reads_json_lines_from_a_child_and_cancels():
    # A real child: JSON lines through a pipe (and a bar on stderr, ignored), then Ctrl-C ends it.
    code = (
        "import json, sys, time\n"
        "for i in range(1, 1000):\n"
        "    sys.stderr.write(f'\\r{i}step [00:00, loss=9.9]'); sys.stderr.flush()\n"
        "    print(json.dumps({'event': 'step', 'step': i, 'steps': 999, 'minutes': None, 'elapsed': i / 50,\n"
        "                      'progress': i / 999, 'losses': {'loss': 1 / i}, 'val': {'iou@0.3': 0.5}}),\n"
        "          flush=True)\n"
        "    time.sleep(0.02)\n"
    )
    job = backend_process.Job([sys.executable, "-c", code], None)
    deadline = time.time() + 30
    while job.progress.step < 5 and time.time() < deadline:
        job.poll()
        time.sleep(0.02)
    assert job.progress.step >= 5 and job.progress.total == 999 and job.progress.iou == 0.5
    job.cancel(grace=5)
    assert job.wait(timeout=10) != 0 and job.cancelled
    assert job.progress.loss == pytest.approx(1 / job.progress.step) and job.progress.loss <= 0.2


BACKEND_COMMANDS = {
    "train": ["train", "paired", "--data", "{data}", "--out", "{out}"],
    "evaluate": ["evaluate", "--checkpoint", "{run}", "--data", "{data}"],
    "baseline": ["baseline", "mean-shape", "--data", "{data}", "--split", "test"],
    "diagnose": ["diagnose", "--data", "{data}"],
    "reconstruct": ["reconstruct", "{image}", "--checkpoint", "{run}", "--out", "{out}.obj"],
}


@pytest.mark.parametrize("command", sorted(BACKEND_COMMANDS))
def test_every_command_without_torch_says_what_to_do(run, tmp_path_factory, tmp_path, command):
    bare = python_without_torch(tmp_path_factory)
    where = {"data": run["data"], "run": run["run"], "image": run["images"]["chair"], "out": tmp_path / "o"}
    argv = [a.format(**where) for a in BACKEND_COMMANDS[command]]
    res = subprocess.run([bare, "-m", "voxlift", *argv], capture_output=True, text=True, timeout=120)
    err = res.stderr.strip()
    assert res.returncode == 1 and "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"voxlift: error: voxlift {command} needs PyTorch, which {bare} cannot import")
    assert "pip install torch==2.13.0" in err


def test_reconstruct_warns_about_a_model_that_never_validated(run, tmp_path, monkeypatch, capsys):
    """A run stopped before its first validation (only last.safetensors) still reconstructs, with a warning."""
    stopped = tmp_path / "stopped"
    interrupt_at(monkeypatch, "paired", 2)
    with pytest.raises(KeyboardInterrupt):
        train("paired", [*TINY, "--data", run["data"], "--out", stopped, "--steps", 50, "--val-every", 100])
    assert (stopped / "last.safetensors").is_file() and not (stopped / "best.safetensors").exists()
    capsys.readouterr()
    out = tmp_path / "x.binvox"
    image = str(run["images"]["chair"])
    assert cli.main(["reconstruct", image, "--checkpoint", str(stopped), "--out", str(out)]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    warnings = [line for line in lines if "warning" in line]  # beside the lines on model and threshold
    assert len(warnings) == 1 and lines[0] == warnings[0] and warnings[0].startswith("voxlift: warning: ")
    err = warnings[0]
    assert "step 2, before its first validation" in err and str(stopped) in err
    assert cli.main(["reconstruct", image, "--checkpoint", str(run["run"]), "--out", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err  # a validated model: no warning


def test_ctrl_c_says_resume_and_the_same_command_resumes(run, tmp_path):
    command = [sys.executable, "-X", "faulthandler", "-m", "voxlift", "train", "paired", *map(str, TINY), "--data", str(run["data"]),
               "--out", str(tmp_path / "run"), "--steps", "8", "--val-every", "100", "--progress", "json"]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in child.stdout:  # the first step row: training has begun
        if json.loads(line)["event"] == "step":
            break
    child.send_signal(signal.SIGINT)
    try:
        rest, err = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # show where it hangs (faulthandler dumps every thread on SIGABRT)
        child.send_signal(signal.SIGABRT)
        raise AssertionError(f"no exit after Ctrl-C:\n{child.communicate(timeout=60)[1][-6000:]}") from None
    assert child.returncode == 130 and "voxlift: interrupted (run the same command again to resume)" in err
    stopped = [json.loads(line) for line in rest.splitlines()][-1]
    assert stopped["event"] == "end" and stopped["reason"] == "interrupted"
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = [json.loads(line) for line in again.stdout.splitlines()]
    assert rows[0]["event"] == "start" and rows[0]["resumed"] is True and rows[0]["step"] == stopped["step"]
    assert rows[-1]["event"] == "end" and rows[-1]["reason"] == "done" and rows[-1]["step"] == 8
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 1 and "holds a finished run" in finished.stderr


def test_ctrl_c_in_a_command_that_does_not_resume_says_only_interrupted(monkeypatch, capsys, run, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd_reconstruct, "run", interrupted)
    argv = ["reconstruct", str(run["images"]["chair"]), "--checkpoint", str(run["run"]), "--out", "x.obj"]
    assert cli.main(argv) == 130
    assert capsys.readouterr().err.strip() == "voxlift: interrupted"


def test_pictures_too_small_to_show_an_object_are_one_line(run, tmp_path, capsys):
    for w, h in ((8, 8), (40, 15)):
        small = tmp_path / f"small{w}x{h}.png"
        write_png(small, np.full((h, w, 3), 200, np.uint8))
        argv = ["reconstruct", str(small), "--checkpoint", str(run["run"]), "--out", str(tmp_path / "x.obj")]
        err = one_error_line(capsys, argv)
        assert f"{small}: {w}x{h} pixels is too small to show an object" in err and "16x16" in err
    assert not list(tmp_path.glob("x.*"))


def test_big_picture_is_shrunk_and_framed(run):
    """A 12-megapixel photo without alpha: shrunk first, then its object found and framed like the renderings
    (how long that takes is a benchmark figure, not a test)."""
    h, w = 3000, 4000
    y, x = np.mgrid[0:h, 0:w]
    photo = np.full((h, w, 3), 235, np.uint8)
    photo[((x - 2000) / 1400) ** 2 + ((y - 1500) / 1100) ** 2 < 1] = (90, 70, 60)
    predictor = reconstruct.get_predictor(run["run"], "cpu")
    gray, alpha, found, boxes = reconstruct.framed_inputs([photo], predictor)
    assert gray.shape == alpha.shape == (1, predictor.image_size, predictor.image_size)
    assert 0.2 < alpha.mean() < 0.8  # the ellipse, framed
    assert found == ["border"]  # a plain border: no mask model needed
    assert boxes.shape == (1, 4)


BLEND_OPEN = """
import json
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
bpy.ops.wm.open_mainfile(filepath={path!r})
scene = bpy.context.scene
cam = scene.camera
seen = []
for obj in scene.objects:
    if obj.type == "MESH":
        corners = [world_to_camera_view(scene, cam, obj.matrix_world @ Vector(c)) for c in obj.bound_box]
        seen.append(all(0 <= c.x <= 1 and 0 <= c.y <= 1 and c.z > 0 for c in corners))
print(json.dumps({{"scene": scene.name, "objects": sorted(o.name for o in scene.objects),
                   "camera": cam.name if cam else None, "lights": [o.name for o in scene.objects if o.type == "LIGHT"],
                   "in_view": seen}}))
"""


def test_blend_output_opens_as_a_scene_with_camera_and_light(run, tmp_path, thr):
    out = tmp_path / "both.blend"
    images = [str(run["images"]["chair"]), str(run["images"]["table"])]
    assert cli.main(["reconstruct", *images, "--checkpoint", str(run["run"]), "--threshold", thr,
                     "--out", str(out)]) == 0  # fmt: skip
    res = run_in_blender(BLEND_OPEN.format(path=str(out)), tmp_path, install=False)
    assert "Library file" not in res.stdout + res.stderr  # opens as a scene, not as a library
    o = last_json(res.stdout)
    assert o["objects"] == ["Camera", "Sun", "chair", "table"] and o["camera"] == "Camera"
    assert o["lights"] == ["Sun"] and o["in_view"] == [True, True]


def test_without_pillow_blender_reads_the_image(tmp_path):
    # Blender's own Python has no Pillow: the CLI inside Blender hands JPEGs and the like to Blender.
    from PIL import Image

    rgb = np.zeros((40, 48, 3), np.uint8)
    rgb[4:36, 8:40] = (200, 120, 40)
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
    assert out["shape"] == [40, 48, 4] and np.array_equal(out["rgb"], rgb)  # rows top first, as Pillow's
    blocked = code.replace("sys.modules['PIL'] = None", "sys.modules['PIL'] = sys.modules['bpy'] = None")
    res = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "neither Pillow nor Blender" in res.stderr and "box.bmp" in res.stderr


def test_threshold_is_the_models_own_unless_given(run, probs, tmp_path, capsys):
    """No --threshold: the threshold stored with the checkpoint (chosen on validation), read with and without
    torch alike; --threshold overrides it. stderr says which model, which threshold, how the object was found."""
    own = reconstruct.get_predictor(run["run"], "cpu").threshold
    assert reconstruct.model_threshold(run["run"]) == pytest.approx(own) and 0 < own < 1
    out = tmp_path / "own.binvox"
    image = str(run["images"]["chair"])
    assert cli.main(["reconstruct", image, "--checkpoint", str(run["run"]), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert np.array_equal(np.asarray(read_binvox(out).voxels, bool), probs >= own)
    assert f"voxlift: model: {run['run'].name}\n" in err
    assert f"voxlift: threshold {own:g} (the model's own)" in err
    assert f"voxlift: {image}: object found by alpha" in err
    assert cli.main(["reconstruct", image, "--checkpoint", str(run["run"]), "--threshold", "0.5",
                     "--out", str(out)]) == 0  # fmt: skip
    assert "threshold 0.5 (yours)" in capsys.readouterr().err
    assert np.array_equal(np.asarray(read_binvox(out).voxels, bool), probs >= 0.5)


def test_npz_carries_the_whole_prediction(run, tmp_path):
    """The child-process path: the .npz holds the model's threshold, how each object was found, where it is in
    its picture and the checkpoint used, and predict() in a child gives what it gives here."""
    chair, table = (load_image(run["images"][k]) for k in ("chair", "table"))
    here = reconstruct.predict([chair, table], str(run["run"]), "cpu")
    child = reconstruct.predict(
        [chair, table], str(run["run"]), "cpu", backend_process.Backend(sys.executable, external=True)
    )
    assert here.found == child.found == ["alpha", "alpha"]
    assert here.threshold == pytest.approx(child.threshold) and here.threshold == pytest.approx(
        reconstruct.model_threshold(run["run"])
    )
    assert here.checkpoint == child.checkpoint == str((run["run"] / "best.safetensors").resolve())
    assert here.model == child.model == run["run"].name
    assert np.allclose(here.boxes, child.boxes) and np.allclose(here.probs, child.probs, atol=1e-5)
    # The box is the alpha's: the pixels framing counts as the object (alpha above one half).
    alpha = chair[..., 3]
    ys, xs = np.nonzero(alpha > 0.5)
    h, w = alpha.shape
    assert np.allclose(here.boxes[0], [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h])


def test_a_picture_with_no_object_is_one_line_naming_it(run, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    write_png(blank, np.full((64, 64, 3), 180, np.uint8))
    err = one_error_line(
        capsys, ["reconstruct", str(blank), "--checkpoint", str(run["run"]), "--out", str(tmp_path / "x.obj")]
    )
    assert (
        err
        == f"voxlift: error: {blank}: no object found in the picture (it looks like background everywhere)"
    )
    # the same words through a child process, naming the user's picture rather than the child's copy
    backend = backend_process.Backend(sys.executable, external=True)
    with pytest.raises(VoxliftError) as exc:
        reconstruct.predict([load_image(blank)], str(run["run"]), "cpu", backend, names=[str(blank)])
    assert f"{blank}: no object found in the picture" in str(exc.value) and ".npy" not in str(exc.value)


def test_without_checkpoint_the_starter_model_reconstructs(tmp_path, capsys):
    """No --checkpoint, no training: the starter model that ships with voxlift, at its own threshold."""
    from voxlift.backend.starter import REACH, STARTER

    ds = open_dataset_of_renderings(tmp_path)
    image = tmp_path / "chair.png"
    g, a = np.asarray(ds.images[0, 1]), np.asarray(ds.alpha[0, 1])
    write_png(image, np.dstack([g, g, g, a]))
    out = tmp_path / "chair.obj"
    assert cli.main(["reconstruct", str(image), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"voxlift: model: starter ({REACH})" in err and "(the model's own)" in err
    assert len(read_obj(out).faces) > 0
    result = reconstruct.predict([load_image(image)])
    assert result.model == "starter" and result.checkpoint == str(STARTER.resolve())
    assert result.threshold == pytest.approx(reconstruct.model_threshold(STARTER))


def open_dataset_of_renderings(tmp_path):
    from voxlift.dataset_tools import open_dataset

    return open_dataset(make_dataset(tmp_path / "data", chairs=1, tables=0, size=64, views=2))


def test_box_of_an_object_on_a_plain_background(run):
    """A product shot on white: the object is what differs from the border, and its box is where it is in the
    picture (the fractions placement.py puts a reference image's result by)."""
    photo = np.full((120, 200, 3), 245, np.uint8)
    photo[30:90, 50:110] = (90, 70, 60)
    result = reconstruct.predict([photo], str(run["run"]), "cpu")
    assert result.found == ["border"]
    assert np.allclose(result.boxes[0], [50 / 200, 30 / 120, 110 / 200, 90 / 120])
