"""`voxlift render --appearance random` and `--camera-jitter`: the look drawn per model and view (no bpy),
then real renders (bpy workers): aligned, varied where plain is not, the same bytes every run; the source's
textures over its UVs; the panel's option."""

import json
import subprocess
import sys

import numpy as np
import pytest

from voxlift.dataset_tools.camera import fits_in_frame, fixed_views
from voxlift.dataset_tools.dataset import open_dataset
from voxlift.dataset_tools.qa import qa_dataset
from voxlift.render_appearance import LUMA, REC601, jittered_views, model_look, random_color

SCOPIA = "/usr/share/sweethome3d/furniture/Scopia.sh3f"
# Three procedural models, then Scopia's first chair (untextured) and table (textured, with UVs).
SOURCES = ["synthetic:3", SCOPIA, "--categories", "chair,table", "--limit", "5"]
SMALL = ["--views", "4", "--image-size", "64", "--no-progress"]
FILES = ("models.jsonl", "images.u8", "alpha.u8", "voxels.u8", "skipped.jsonl")


def voxlift(*args, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [sys.executable, "-m", "voxlift", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


# ---------------------------------------------------------------------------------------------- no bpy
def test_a_look_depends_on_the_model_id_alone():
    a, b = (
        model_look("sh3f:x/1", 8, [(0.5, 0.2, 0.1)], True),
        model_look("sh3f:x/1", 8, [(0.5, 0.2, 0.1)], True),
    )
    assert a == b
    others = [model_look(f"synthetic:0/{k}", 8, None, False) for k in range(40)]
    assert len({o.colors[0] for o in others}) > 30  # random base colours
    lights = {(v.light, v.studio_light) for o in others for v in o.views}
    assert {light for light, _ in lights} == {"STUDIO", "MATCAP", "FLAT"} and len(lights) > 20
    assert all(o.luma == REC601 for o in others)
    exposures = [v.exposure for o in others for v in o.views]
    assert min(exposures) < -0.3 and max(exposures) > 0.3


def test_random_colours_cover_the_luma_range():
    rng = np.random.default_rng(0)
    lin = np.array([random_color(rng) for _ in range(2000)])
    srgb = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)  # back to sRGB
    luma = srgb @ np.array(REC601) / 256
    assert luma.min() > LUMA[0] - 1e-6 and luma.max() <= LUMA[1] + 1e-6
    assert np.percentile(luma, 10) < 0.5 < np.percentile(luma, 90)
    assert (srgb.max(1) - srgb.min(1)).max() > 0.5  # saturated colours too, not only grays


def test_jittered_views_keep_the_cube_in_frame_and_depend_on_the_id():
    base = fixed_views(8, size=64)
    for k in range(50):
        views = jittered_views(f"m{k}", base, 64)
        assert all(fits_in_frame(v, 64) for v in views)
        assert all(
            abs(v.elevation - b.elevation) <= 8 and v.azimuth == b.azimuth for v, b in zip(views, base)
        )
        assert all(b.distance <= v.distance and abs(v.fov - b.fov) <= 4 for v, b in zip(views, base))
    a, b = jittered_views("m1", base, 64), jittered_views("m1", base, 64)
    assert all(np.array_equal(x.world_to_pixel, y.world_to_pixel) for x, y in zip(a, b))
    assert len({round(v.elevation, 6) for v in a}) == 8


# ---------------------------------------------------------------------------------------------- renders
@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("appearance")
    voxlift("render", *SOURCES, "--out", root / "plain", *SMALL, "--workers", "2")
    voxlift("render", *SOURCES, "--out", root / "random", *SMALL, "--workers", "2", "--appearance", "random")
    return root


def object_luma(ds) -> np.ndarray:
    """Mean gray over each view's fully covered pixels: [N, V]."""
    img, alpha = np.asarray(ds.images, float), np.asarray(ds.alpha)
    return np.array(
        [[img[i, v][alpha[i, v] == 255].mean() for v in range(ds.views_per_model)] for i in range(len(ds))]
    )


def test_random_appearance_is_aligned_and_varies_where_plain_does_not(renders):
    plain, rand = open_dataset(renders / "plain"), open_dataset(renders / "random")
    assert [m.id for m in rand.models] == [m.id for m in plain.models] and len(rand) == 5
    assert rand.models[3].id.startswith("sh3f:Scopia/") and not rand.skipped
    assert (
        rand.manifest["render"]["appearance"] == "random"
        and plain.manifest["render"]["appearance"] == "plain"
    )
    assert qa_dataset(renders / "random")["summary"]["min_score"] >= 0.97
    # The look changes the shading, never the coverage or the grid.
    assert np.array_equal(rand.alpha, plain.alpha) and np.array_equal(rand.voxels, plain.voxels)
    assert not np.array_equal(rand.images, plain.images)
    assert (np.asarray(rand.images)[np.asarray(rand.alpha) == 0] == 255).all()  # still on white
    p, r = object_luma(plain), object_luma(rand)
    assert p.std(axis=1).max() < 10 and r.std(axis=1).mean() > 4 * p.std(axis=1).mean()  # between views
    assert r.mean(axis=1).std() > 3 * p.mean(axis=1).std()  # and between models


def test_random_appearance_gives_the_same_bytes_every_run(renders, tmp_path):
    out = tmp_path / "again"
    voxlift(
        "render",
        *SOURCES,
        "--out",
        out,
        *SMALL,
        "--workers",
        "1",
        "--appearance",
        "random",
        "--restart-every",
        "2",
    )
    for name in FILES:
        assert (renders / "random" / name).read_bytes() == (out / name).read_bytes(), name


def test_a_dataset_keeps_its_appearance(renders):
    res = voxlift("render", *SOURCES, "--out", renders / "random", *SMALL, check=False)
    assert (
        res.returncode == 1
        and "appearance random" in res.stderr
        and len(res.stderr.strip().splitlines()) == 1
    )
    res = voxlift(
        "render",
        "synthetic:1",
        "--out",
        renders / "x",
        "--appearance",
        "random",
        "--engine",
        "cycles",
        check=False,
    )
    assert res.returncode == 1 and "workbench" in res.stderr
    res = voxlift("merge", renders / "plain", renders / "random", "--out", renders / "mixed", check=False)
    assert (
        res.returncode == 1 and "appearance random differs" in res.stderr and not (renders / "mixed").exists()
    )


def test_camera_jitter_stores_each_models_cameras(tmp_path):
    out = tmp_path / "jitter"
    voxlift("render", "synthetic:3", "--out", out, *SMALL, "--workers", "1", "--camera-jitter")
    ds = open_dataset(out)
    assert ds.views is None and ds.cameras.shape == (3, 4, 16)
    assert ds.manifest["render"]["camera_jitter"]["elevation"] > 0
    base = fixed_views(4, size=64)
    for m in ds.models:  # the stored matrices are the ones the parent drew, exactly
        assert np.array_equal(
            ds.world_to_pixel(m.index), np.stack([v.world_to_pixel for v in jittered_views(m.id, base, 64)])
        )
    assert not np.allclose(ds.world_to_pixel(0), ds.world_to_pixel(1))
    assert qa_dataset(out)["summary"]["min_score"] >= 0.97
    # Shards of a jittered render merge (per-model cameras travel with their models).
    voxlift("merge", out, "--out", tmp_path / "merged")
    merged = open_dataset(tmp_path / "merged")
    assert np.array_equal(merged.cameras, ds.cameras) and merged.manifest["render"] == ds.manifest["render"]


TEXTURE_SCRIPT = """
import io, json, numpy as np
from voxlift.blender.render import Renderer, RenderSettings
from voxlift.dataset_tools.camera import fixed_views
from voxlift.dataset_tools.mesh import Material, MeshMaterials
from voxlift.dataset_tools.png import encode_png
from voxlift.render_appearance import model_look

# A flat slab facing the camera (azimuth 0 looks along +Y), a black and white checker texture over it.
v = np.array([[-0.5, 0, -0.5], [0.5, 0, -0.5], [0.5, 0, 0.5], [-0.5, 0, 0.5]], float)
f = np.array([[0, 1, 2], [0, 2, 3]])
uv = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]], np.float32)
checker = (np.indices((64, 64)).sum(0) // 16 % 2 * 255).astype(np.uint8)
png = encode_png(np.repeat(checker[..., None], 3, 2))
material = Material("m", (0.5, 0.5, 0.5), 1.0, "c.png")
mats = MeshMaterials(np.zeros(2, np.int32), [material], uv, {"c.png": png})
r = Renderer(RenderSettings(views=fixed_views(1, elevation=0, size=64), image_size=64, appearance="random"))
out = {}
for textured in (True, False):
    look = model_look("x", 1, [(0.5, 0.5, 0.5)], textured)
    look.use_textures = textured
    for vl in look.views:
        vl.light, vl.exposure, vl.shadows, vl.cavity = "FLAT", 0.0, False, False
    gray, alpha = r.render(v, f, look, mats)
    out[str(textured)] = np.asarray(gray[0][alpha[0] == 255], float).std()
r.close()
print(json.dumps(out))
"""


def test_textures_show_over_their_uvs(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", TEXTURE_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]
    std = json.loads(res.stdout.strip().splitlines()[-1])
    assert std["True"] > 60 and std["False"] < 2, std  # the checker shows; the plain colour is flat


PANEL_SCRIPT = """
import json, bpy
from voxlift.blender import ui_dataset
ui_dataset.register()
s = bpy.context.scene.voxlift_dataset
prop = s.bl_rna.properties["appearance"]
s.appearance = "random"
opts = ui_dataset.options_from_settings(s)
print(json.dumps({"appearance": opts.appearance, "items": [i.identifier for i in prop.enum_items],
                  "tips": [i.description for i in prop.enum_items], "description": prop.description}))
ui_dataset.unregister()
"""


def test_the_panel_offers_the_appearance_with_a_tooltip():
    res = subprocess.run(
        [sys.executable, "-c", PANEL_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["appearance"] == "random" and out["items"] == ["plain", "random"]
    assert all(len(t) > 20 for t in out["tips"]) and out["description"]
