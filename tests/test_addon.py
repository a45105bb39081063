"""The built extension zip, installed into Blender (bpy) with a throwaway user folder: the Dataset panel's
operator and the registered `voxlift` CLI command both render datasets that open_dataset and qa accept."""

import numpy as np
from _blender_util import last_json, run_in_blender

from voxlift.dataset_tools.dataset import open_dataset
from voxlift.dataset_tools.qa import qa_dataset

SCRIPT = """
import json, os
wm = bpy.context.window_manager
assert hasattr(bpy.types, "VOXLIFT_PT_dataset") and bpy.types.VOXLIFT_PT_dataset.bl_category == "voxlift"
assert not bpy.ops.voxlift.render_cancel.poll()  # nothing to cancel while idle
s = bpy.context.scene.voxlift_dataset
s.sources, s.categories, s.views, s.image_size, s.workers = "synthetic:4", "", 4, 64, 2
s.out = os.path.abspath("ds_operator")
op = bpy.ops.voxlift.render_dataset()
status = wm.voxlift_render.status
# The same command line Blender runs for `blender -b -c voxlift render ...` (bpy.utils.register_cli_command).
cli = VOXLIFT.blender.registry._cli(["render", "synthetic:4", "--out", "ds_cli", "--views", "4",
                                     "--image-size", "64", "--workers", "1", "--no-progress"])
bad = VOXLIFT.blender.registry._cli(["render", "no/such/folder", "--out", "ds_bad"])
print(json.dumps({"op": sorted(op), "status": status, "cli": cli, "bad": bad,
                  "module": VOXLIFT.__name__, "file": VOXLIFT.__file__}))
"""


def test_installed_extension_renders_through_operator_and_cli(tmp_path):
    res = run_in_blender(SCRIPT, tmp_path, timeout=240)
    out = last_json(res.stdout)
    assert (
        out["module"] == "bl_ext.user_default.voxlift" and str(tmp_path) in out["file"]
    )  # the zip, not the repo
    assert out["op"] == ["FINISHED"] and out["status"].startswith("done: 4 rendered")
    assert out["cli"] == 0 and out["bad"] == 1
    assert "voxlift: error:" in res.stderr and "no/such/folder" in res.stderr
    a, b = open_dataset(tmp_path / "ds_operator"), open_dataset(tmp_path / "ds_cli")
    assert len(a) == len(b) == 4
    # Same models, same settings: the operator's and the CLI's datasets hold the same pixels and voxels.
    assert np.array_equal(a.images, b.images) and np.array_equal(a.voxels, b.voxels)
    for path in (tmp_path / "ds_operator", tmp_path / "ds_cli"):
        summary = qa_dataset(path)["summary"]
        assert summary["min_score"] >= 0.97, summary


LOAD_SCRIPT = """
import json, os, time
from importlib import import_module
ui_dataset = import_module(VOXLIFT.__name__ + ".blender.ui_dataset")
RenderJob = import_module(VOXLIFT.__name__ + ".render_job").RenderJob
s = bpy.context.scene.voxlift_dataset
s.sources, s.categories, s.views, s.image_size, s.workers = "synthetic:300", "", 2, 32, 1
s.out = os.path.abspath("ds")
job = ui_dataset._job = RenderJob(ui_dataset.options_from_settings(s)).start()  # what Render starts
while job.done < 1:
    job.poll(0.0)
    time.sleep(0.01)
procs = [w.proc for w in job.workers]
bpy.ops.wm.read_homefile(use_empty=True)  # the user opens another file mid-render
print(json.dumps({"job": ui_dataset._job is None, "alive": [p.pid for p in procs if p.poll() is None],
                  "cancel_poll": bpy.ops.voxlift.render_cancel.poll(), "done": job.done}))
"""


def test_loading_another_file_stops_the_render(tmp_path):
    out = last_json(run_in_blender(LOAD_SCRIPT, tmp_path, timeout=240).stdout)
    assert out["job"] and out["alive"] == [] and out["cancel_poll"] is False
    assert len(open_dataset(tmp_path / "ds")) == out["done"] < 300  # what was committed stays
