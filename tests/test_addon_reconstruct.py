"""The add-on in a background Blender: install the built zip, enable it, and use it as an artist would:
Reconstruct from an image in bpy.data.images with no training and no model chosen (the starter model that
ships in the zip), then with a trained model, change the threshold and mesh mode, import a .binvox, train
from the Train panel (and cancel), and meet each user error as a report (not a traceback).

One Blender process runs the whole story (installing and starting torch there is the slow part); the tests
below check its parts from the JSON it prints.
"""

import json

import numpy as np
import pytest
from _blender_util import last_json, run_in_blender
from _paired_util import furniture_grid
from _reconstruct_util import other_kind_checkpoint, python_without_torch, tiny_run

from voxlift import backend_process, meshing, reconstruct
from voxlift.backend.registry import KINDS
from voxlift.backend.starter import REACH
from voxlift.dataset_tools.binvox import write_binvox
from voxlift.dataset_tools.png import write_png
from voxlift.io.images import load_image

SCRIPT = r"""
import json, time
from pathlib import Path
import bmesh
import numpy as np

A = json.loads(Path(ARGS).read_text())
out = {}
ctx = bpy.context
scene = ctx.scene
meshing = sys.modules[VOXLIFT.__name__ + ".meshing"]
ui_train = sys.modules[VOXLIFT.__name__ + ".blender.ui_train"]
prefs = ctx.preferences.addons[VOXLIFT.__name__].preferences
ui = VOXLIFT.blender.ui_reconstruct
s = scene.voxlift_reconstruct


def op(fn, **kw):
    # An operator's ERROR report reaches Python as a RuntimeError carrying the message.
    try:
        return sorted(fn(**kw))
    except RuntimeError as exc:
        return "ERROR " + str(exc)


def mesh_facts(obj):
    me = obj.data
    bm = bmesh.new()
    bm.from_mesh(me)
    links = [len(e.link_faces) for e in bm.edges]
    bm.free()
    co = np.array([obj.matrix_world @ v.co for v in me.vertices])
    return {"name": obj.name, "vertices": len(me.vertices), "faces": len(me.polygons),
            "edge_links": {str(k): links.count(k) for k in set(links)},
            "bounds": [co.min(0).tolist(), co.max(0).tolist()],
            "materials": [m.name for m in me.materials], "smooth": all(p.use_smooth for p in me.polygons),
            "selected": obj.select_get(), "active": ctx.view_layer.objects.active == obj,
            "location": list(obj.location), "rotation": list(obj.rotation_euler)}


def expected(obj, mode, threshold, greedy=False):
    probs = np.array(obj["voxlift_probs"], dtype=np.float32).reshape((obj["voxlift_resolution"],) * 3)
    v, q = meshing.mesh_from_probs(probs, mode, threshold, greedy)
    return [len(v), len(q)]


# 1. A fresh Blender, no training, no model chosen: the starter model in the zip, at its own threshold.
img = bpy.data.images.load(A["chair"])
s.image = img
out["starter_lines"] = [text for text, _ in ui.model_lines(s, ctx)]
t0 = time.perf_counter()
out["starter"] = op(bpy.ops.voxlift.reconstruct)
out["cold_s"] = time.perf_counter() - t0  # imports torch, loads the model
o = ctx.active_object
t0 = time.perf_counter()
out["starter_again"] = op(bpy.ops.voxlift.reconstruct)
out["warm_s"] = time.perf_counter() - t0  # the model is kept
VOXLIFT.blender.mesh.remove_object(ctx.active_object)
out["starter_obj"] = {"name": o.name, "faces": len(o.data.polygons), "model": o.get("voxlift_model"),
                      "found": o.get("voxlift_found"), "threshold": o.voxlift.threshold,
                      "own_threshold": s.own_threshold}
out["starter_threshold"] = VOXLIFT.reconstruct.model_threshold(VOXLIFT.backend.starter.STARTER)
out["starter_path"] = str(VOXLIFT.backend.starter.STARTER)
VOXLIFT.blender.mesh.remove_object(o)
# ...a picture with no object in it: framing's one message, naming the picture.
s.image = bpy.data.images.load(A["blank"])
out["err_no_object"] = op(bpy.ops.voxlift.reconstruct)
s.image = img

# 2. Reconstruct with a trained model and a threshold of one's own, with the 3D cursor moved.
s.checkpoint = A["run"]
s.threshold = A["threshold"]
out["own_threshold"] = s.own_threshold
out["run_lines"] = [text for text, _ in ui.model_lines(s, ctx)]
scene.cursor.location = (1.0, 2.0, 3.0)
out["first"] = op(bpy.ops.voxlift.reconstruct)
obj = ctx.active_object
out["cubes"] = mesh_facts(obj)
out["cubes_expected"] = expected(obj, "cubes", A["threshold"])
np.save(A["probs_out"], np.array(obj["voxlift_probs"], dtype=np.float32))
out["second"] = op(bpy.ops.voxlift.reconstruct)
out["second_name"] = ctx.active_object.name
out["first_selected_after_second"] = obj.select_get()

# 3. Threshold and mesh mode re-mesh from the stored probabilities (no network).
obj.voxlift.threshold = A["threshold_hi"]
out["thr_hi"] = [len(obj.data.vertices), len(obj.data.polygons)]
out["thr_hi_expected"] = expected(obj, "cubes", A["threshold_hi"])
obj.voxlift.threshold = A["threshold"]
obj.voxlift.greedy = True
out["greedy"] = [len(obj.data.vertices), len(obj.data.polygons)]
out["greedy_expected"] = expected(obj, "cubes", A["threshold"], True)
obj.voxlift.greedy = False
out["back"] = [len(obj.data.vertices), len(obj.data.polygons)]
obj.voxlift.mode = "SMOOTH"
out["smooth"] = mesh_facts(obj)
out["smooth_expected"] = expected(obj, "smooth", A["threshold"])

# 4. Errors a user meets, each as a report.
s.checkpoint = A["other_kind"]
out["err_kind"] = op(bpy.ops.voxlift.reconstruct)
s.checkpoint = A["run"]
s.source = "FILE"
s.filepath = A["garbage"]
out["err_garbage"] = op(bpy.ops.voxlift.reconstruct)
s.filepath = A["missing"]
out["err_missing"] = op(bpy.ops.voxlift.reconstruct)
s.source = "IMAGE"
ghost = bpy.data.images.new("ghost", 4, 4)
ghost.source = "FILE"
ghost.filepath = A["missing"]
s.image = ghost
out["err_ghost"] = op(bpy.ops.voxlift.reconstruct)
s.image = img
prefs.python_path = A["no_torch_python"]
out["err_no_torch"] = op(bpy.ops.voxlift.reconstruct)
out["torch_status_bare"] = VOXLIFT.blender.prefs.check_torch(wait=True)
prefs.python_path = ""
out["torch_status"] = VOXLIFT.blender.prefs.check_torch(wait=True)
out["err_install_offline"] = op(bpy.ops.voxlift.install_torch)
t = scene.voxlift_train
t.dataset = A["not_dataset"]
out["err_not_dataset"] = op(bpy.ops.voxlift.train)
s.source = "RENDER"
out["err_no_render"] = op(bpy.ops.voxlift.reconstruct)
# The render result, seen from a camera at azimuth 90: the viewer-centred grid is turned back by 90 degrees.
import math
from mathutils import Matrix
scene.render.engine = "BLENDER_WORKBENCH"
scene.render.resolution_x = scene.render.resolution_y = 64
scene.render.film_transparent = True
for other in scene.objects:  # the startup cube and the reconstructions so far
    other.hide_render = True
scene.cursor.location = (0.0, 0.0, 0.0)
bpy.ops.mesh.primitive_cube_add(size=0.6, location=(0.0, 0.0, 0.0))
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
scene.collection.objects.link(cam)
el = math.radians(20)
cam.location = (2.5 * math.cos(el), 0.0, 2.5 * math.sin(el))
cam.rotation_euler = (math.radians(70), 0.0, math.radians(90))
scene.camera = cam
bpy.ops.render.render()
s.threshold = 0.01
out["render"] = op(bpy.ops.voxlift.reconstruct)
out["render_obj"] = mesh_facts(ctx.active_object)
s.threshold = A["threshold"]
s.source = "IMAGE"

# 5. Import a .binvox file (File > Import > Voxel grid).
out["binvox"] = op(bpy.ops.voxlift.import_binvox, filepath=A["binvox"])
out["binvox_obj"] = mesh_facts(ctx.active_object)
out["binvox_bad"] = op(bpy.ops.voxlift.import_binvox, filepath=A["garbage"])

# 6. Train from the panel; the run becomes the default model.
t.dataset = A["data"]
t.steps = 2
t.device = "cpu"
t.out = A["ui_run"]
out["train"] = op(bpy.ops.voxlift.train)
deadline = time.time() + 240
seen_step = 0
while ui_train.poll_job() is not None and time.time() < deadline:
    seen_step = max(seen_step, ui_train._state["job"].progress.step if ui_train._state["job"] else 0)
    time.sleep(0.2)
out["train_state"] = {k: v for k, v in ui_train._state.items() if k != "job"}
out["train_scene_checkpoint"] = s.checkpoint
out["train_prefs_checkpoint"] = prefs.last_checkpoint
s.checkpoint = ""
s.threshold = 0.01  # a 2-step model: anything it sees
out["reconstruct_with_trained"] = op(bpy.ops.voxlift.reconstruct)

# 6b. A pre-training run (its kind does not reconstruct) trains, but does not become the model.
t.kind, t.out = "autoencoder", A["ui_run"] + "-ae"
out["train_ae"] = op(bpy.ops.voxlift.train)
deadline = time.time() + 240
while ui_train.poll_job() is not None and time.time() < deadline:
    time.sleep(0.2)
out["train_ae_state"] = {k: v for k, v in ui_train._state.items() if k != "job"}
out["train_ae_checkpoints"] = [s.checkpoint, prefs.last_checkpoint]
t.kind = "paired"

# 7. Cancel a long run.
t.steps = 100000
t.out = A["ui_run"] + "-cancel"
out["train2"] = op(bpy.ops.voxlift.train)
job = ui_train.current_job()
deadline = time.time() + 120
while job.poll() is None and job.progress.step < 1 and time.time() < deadline:
    time.sleep(0.2)
out["cancel_started_at_step"] = job.progress.step
bpy.ops.voxlift.train_cancel()
t0 = time.time()
while ui_train.poll_job() is not None and time.time() - t0 < 60:
    time.sleep(0.2)
out["cancel_s"] = time.time() - t0
out["cancel_rc"] = job.proc.returncode
out["cancel_state"] = {k: v for k, v in ui_train._state.items() if k != "job"}
out["cancel_checkpoints"] = [s.checkpoint, prefs.last_checkpoint]

# 8. What the panels offer: the registry's model kinds, the one list of mesh modes and devices.
def items(group, prop):
    return [[i.identifier, i.name, i.description] for i in group.bl_rna.properties[prop].enum_items]

out["items"] = {"kind": items(t, "kind"), "device": items(t, "device"),
                "prefs_device": items(prefs, "device"), "mode": items(s, "mode"),
                "object_mode": items(obj.voxlift, "mode")}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    run = tiny_run(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("addon")
    garbage = tmp / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    grid = furniture_grid("table", np.random.default_rng(3), 16)
    write_binvox(tmp / "table.binvox", grid, (1.0, 2.0, 0.0), 2.0)
    (tmp / "not-a-dataset").mkdir()
    blank = tmp / "blank.png"
    write_png(blank, np.full((48, 64, 3), 200, np.uint8))
    args = {
        "blank": str(blank),
        "threshold": run["thresholds"][0],
        "threshold_hi": run["thresholds"][1],
        "chair": str(run["images"]["chair"]),
        "run": str(run["run"]),
        "data": str(run["data"]),
        "other_kind": str(other_kind_checkpoint(tmp)),
        "garbage": str(garbage),
        "missing": str(tmp / "missing.png"),
        "no_torch_python": python_without_torch(tmp_path_factory),
        "not_dataset": str(tmp / "not-a-dataset"),
        "binvox": str(tmp / "table.binvox"),
        "ui_run": str(tmp / "ui-run"),
        "probs_out": str(tmp / "probs.npy"),
    }
    (tmp / "args.json").write_text(json.dumps(args))
    res = run_in_blender(f"ARGS = {str(tmp / 'args.json')!r}\n" + SCRIPT, tmp, timeout=600)
    out = last_json(res.stdout)
    return {"out": out, "args": args, "grid": grid, "run": run, "log": res.stdout}


def test_starter_model_reconstructs_with_no_training_and_no_model_chosen(story):
    """Issue 14's first promise: installed, a picture in bpy.data.images becomes an object."""
    o = story["out"]
    assert o["starter"] == ["FINISHED"], o["starter"]
    so = o["starter_obj"]
    assert so["name"] == "chair" and so["faces"] > 0 and so["model"] == "starter" and so["found"] == "alpha"
    assert so["own_threshold"] is False and so["threshold"] == pytest.approx(o["starter_threshold"], abs=1e-6)
    assert "/extensions/" in o["starter_path"]  # the copy inside the installed extension
    # The panel says which model, what it knows, and the threshold it uses.
    lines = o["starter_lines"]
    assert lines[0] == "Model: starter"
    assert " ".join(lines[1:-1]) == "Shipped with voxlift, " + REACH
    assert lines[-1] == f"Threshold: the model's own ({o['starter_threshold']:.2f})"
    # A model of one's own: its name; a threshold set in the panel is the user's.
    assert o["run_lines"] == [f"Model: {story['run']['run'].name}"] and o["own_threshold"] is True


def test_reconstruct_makes_the_object(story):
    o, a = story["out"], story["args"]
    assert o["first"] == ["FINISHED"], o["first"]
    c = o["cubes"]
    assert c["name"] == "chair" and c["selected"] and c["active"]
    assert [c["vertices"], c["faces"]] == o["cubes_expected"]
    assert c["materials"] == ["voxlift"] and not c["smooth"]
    assert c["location"] == pytest.approx([1.0, 2.0, 3.0]) and c["rotation"] == pytest.approx([0, 0, 0])
    # Inside the unit cube around the 3D cursor.
    lo, hi = np.array(c["bounds"])
    assert (lo >= np.array([0.5, 1.5, 2.5]) - 1e-5).all() and (hi <= np.array([1.5, 2.5, 3.5]) + 1e-5).all()
    # Closed: every edge has 2 faces, or 4 where two voxels touch along an edge only.
    assert set(c["edge_links"]) <= {"2", "4"} and c["edge_links"]["2"] > 0
    # The same grid as the headless path computes (same checkpoint, same image, same preprocessing).
    probs = np.load(a["probs_out"]).reshape(32, 32, 32)
    ref, _ = reconstruct.predict([load_image(a["chair"])], a["run"], "cpu")
    assert np.allclose(probs, ref[0], atol=1e-4)
    v, q = meshing.cubes_mesh(probs >= a["threshold"])
    assert (c["vertices"], c["faces"]) == (len(v), len(q))


def diagonal_edges(occ):
    """Lattice edges where exactly two diagonally opposite voxels of the four around it are filled."""
    p = np.pad(occ, 1)
    n = 0
    for axis in range(3):
        a, b = [ax for ax in range(3) if ax != axis]
        q = np.moveaxis(p, (axis, a, b), (0, 1, 2))
        v00, v10, v01, v11 = q[:, :-1, :-1], q[:, 1:, :-1], q[:, :-1, 1:], q[:, 1:, 1:]
        n += int(((v00 & v11 & ~v10 & ~v01) | (v10 & v01 & ~v00 & ~v11)).sum())
    return n


def test_non_manifold_edges_are_only_voxel_edge_contacts(story):
    probs = np.load(story["args"]["probs_out"]).reshape(32, 32, 32)
    occ = probs >= story["args"]["threshold"]
    assert diagonal_edges(occ) > 0  # the check below means something
    assert story["out"]["cubes"]["edge_links"].get("4", 0) == diagonal_edges(occ)


def test_threshold_and_mode_remesh_without_the_network(story):
    o = story["out"]
    assert o["thr_hi"] == o["thr_hi_expected"] and 0 < o["thr_hi"][1] != o["cubes"]["faces"]
    assert o["greedy"] == o["greedy_expected"] and o["greedy"][1] < o["cubes"]["faces"]
    # The object kept its full-resolution probabilities: back to the first threshold, the same mesh.
    assert o["back"] == [o["cubes"]["vertices"], o["cubes"]["faces"]]
    sm = o["smooth"]
    assert [sm["vertices"], sm["faces"]] == o["smooth_expected"] and sm["smooth"]


def test_second_click_is_warm_and_makes_a_new_object(story):
    o = story["out"]
    assert o["second"] == ["FINISHED"] and o["second_name"] == "chair.001"
    assert not o["first_selected_after_second"]
    assert o["starter_again"] == ["FINISHED"] and o["warm_s"] < o["cold_s"]


def test_user_errors_are_reports(story):
    o, a = story["out"], story["args"]
    assert "blank: no object found in the picture (it looks like background everywhere)" in o["err_no_object"]
    assert "autoencoder" in o["err_kind"]
    assert a["garbage"] in o["err_garbage"]
    assert a["missing"] in o["err_missing"] and "no such" in o["err_missing"]
    assert "does not load" in o["err_ghost"]
    assert "needs PyTorch" in o["err_no_torch"] and a["no_torch_python"] in o["err_no_torch"]
    assert "online access" in o["err_install_offline"]
    assert a["not_dataset"] in o["err_not_dataset"] and "not a voxlift dataset" in o["err_not_dataset"]
    assert "render" in o["err_no_render"].lower()
    for key in (
        "err_no_object",
        "err_kind",
        "err_garbage",
        "err_missing",
        "err_ghost",
        "err_no_torch",
        "err_install_offline",
        "err_not_dataset",
        "err_no_render",
    ):
        assert o[key].startswith("ERROR") and "Traceback" not in o[key], (key, o[key])
    assert "Traceback" not in story["log"]


def test_preferences_show_whether_torch_is_found(story):
    o = story["out"]
    assert o["torch_status"]["ok"] is True and o["torch_status"]["version"].startswith("2.")
    assert o["torch_status_bare"]["ok"] is False and "torch" in o["torch_status_bare"]["error"]


def test_render_result_is_turned_into_the_scene(story):
    o = story["out"]
    assert o["render"] == ["FINISHED"], o["render"]
    r = o["render_obj"]
    assert r["name"] == "Render" and r["faces"] > 0
    assert r["rotation"] == pytest.approx([0.0, 0.0, np.radians(90)], abs=1e-4)


def test_binvox_import(story):
    o, grid = story["out"], story["grid"]
    assert o["binvox"] == ["FINISHED"]
    b = o["binvox_obj"]
    v, q = meshing.cubes_mesh(grid)
    assert (b["vertices"], b["faces"]) == (len(v), len(q)) and b["name"] == "table"
    assert set(b["edge_links"]) == {
        "2"
    }  # closed, manifold: a table has no voxels touching along an edge only
    # Placed by the header: translate (1, 2, 0), scale 2 -> voxel index i spans 1 + 2 * i / 16 on x.
    idx = np.argwhere(grid)
    lo = np.array([1.0, 2.0, 0.0]) + 2.0 * idx.min(0) / 16
    hi = np.array([1.0, 2.0, 0.0]) + 2.0 * (idx.max(0) + 1) / 16
    assert np.allclose(b["bounds"], [lo, hi], atol=1e-5)
    assert o["binvox_bad"].startswith("ERROR") and story["args"]["garbage"] in o["binvox_bad"]


def test_train_from_the_panel_sets_the_default_model(story):
    o, a = story["out"], story["args"]
    assert o["train"] == ["FINISHED"]
    st = o["train_state"]
    assert st["error"] == "" and st["status"].startswith("Trained (2 steps"), st
    assert o["train_scene_checkpoint"] == a["ui_run"] and o["train_prefs_checkpoint"] == a["ui_run"]
    assert o["reconstruct_with_trained"] == ["FINISHED"]


def test_pre_training_run_does_not_become_the_model(story):
    o, a = story["out"], story["args"]
    assert o["train_ae"] == ["FINISHED"]
    st = o["train_ae_state"]
    assert st["error"] == "" and st["kind"] == "autoencoder" and st["status"].startswith("Trained"), st
    assert o["train_ae_checkpoints"] == ["", a["ui_run"]]  # the panel's model stays empty: the last run


def test_training_can_be_cancelled(story):
    o, a = story["out"], story["args"]
    assert o["train2"] == ["FINISHED"]
    assert o["cancel_s"] < 30 and o["cancel_rc"] != 0
    assert o["cancel_state"]["status"].startswith("Cancel"), o["cancel_state"]
    # Cancelled before its first validation: its noise does not become the model (issue 15, 1).
    assert "not used as the model" in o["cancel_state"]["status"]
    assert o["cancel_checkpoints"] == ["", a["ui_run"]]


def test_panels_offer_the_one_list_of_each_choice(story):
    items = story["out"]["items"]
    assert [(name, label) for name, label, _ in items["kind"]] == [(k.name, k.label) for k in KINDS.values()]
    for (_, _, tooltip), kind in zip(items["kind"], KINDS.values(), strict=True):
        assert tooltip.lower() == kind.description.lower()  # the registry's description, as a sentence
    assert items["device"] == items["prefs_device"] == [list(i) for i in backend_process.DEVICE_ITEMS]
    assert items["mode"] == items["object_mode"] == [list(i) for i in meshing.MODE_ITEMS]
