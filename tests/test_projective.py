"""Projective generator halves: the camera moves features between grid and image cells where they belong."""

import json

import numpy as np
import pytest
import torch
from _cyclegan_util import make_dataset, splat, voxelize_boxes
from _train_util import log_rows, train

from voxlift.backend import checkpoint, projective
from voxlift.backend.data import to_viewer_frame
from voxlift.backend.generators import UnpairedConfig, generator_halves
from voxlift.backend.models.cyclegan import CycleGAN, CycleGANConfig
from voxlift.backend.predict import load_predictor
from voxlift.cli import main as cli_main
from voxlift.dataset_tools.camera import make_view, project
from voxlift.dataset_tools.dataset import open_dataset, voxel_to_world
from voxlift.dataset_tools.errors import VoxliftError

torch.set_num_threads(1)
R, S = 16, 32  # grid side, image side


def _camera(elevation=25.0, distance=2.6, fov=40.0):
    view = make_view(0.0, elevation, distance, fov, S)
    return {
        "world_to_pixel": view.world_to_pixel.tolist(),
        "image_size": S,
        "distance": distance,
        "voxel_to_world": voxel_to_world(R).tolist(),
    }, view


def test_projected_grid_outline_is_the_rendered_outline():
    camera, view = _camera()
    # a chair-like set of boxes: the outline of its projection is the outline of its splatted rendering
    # off-centre and lopsided, so that a mirrored or upside-down projection would not line up
    boxes = [
        (np.array([-0.45, -0.3, 0.15]), np.array([0.05, 0.3, 0.25])),
        (np.array([-0.45, 0.2, 0.15]), np.array([-0.25, 0.3, 0.5])),
        (np.array([-0.45, -0.3, -0.5]), np.array([-0.35, -0.2, 0.15])),
    ]
    grid = voxelize_boxes(boxes, R)
    _, alpha = splat(grid, view, S)
    rays = projective.ray_samples(camera, R, S, 48)
    sil = projective.project(torch.from_numpy(grid).float()[None, None], rays).amax(1)[0] > 0.25
    ref = torch.from_numpy(alpha > 0)
    iou = float((sil & ref).sum() / (sil | ref).sum())
    assert iou > 0.8, iou
    for wrong in (
        ref.flip(1),
        ref.flip(0),
        ref.T,
    ):  # a mirrored, flipped or transposed axis would not line up
        assert float((sil & wrong).sum() / (sil | wrong).sum()) < 0.5


def test_soft_silhouette_matches_the_alpha_outline_and_carries_a_gradient():
    camera, view = _camera()
    boxes = [
        (np.array([-0.45, -0.3, 0.15]), np.array([0.05, 0.3, 0.25])),
        (np.array([-0.45, 0.2, 0.15]), np.array([-0.25, 0.3, 0.5])),
        (np.array([-0.45, -0.3, -0.5]), np.array([-0.35, -0.2, 0.15])),
    ]
    grid = torch.from_numpy(voxelize_boxes(boxes, R)).float()[None]
    _, alpha = splat(grid[0].numpy() > 0.5, view, S)
    rays = projective.ray_samples(camera, R, R, 3 * R)
    mask = projective.outline_masks(torch.from_numpy(alpha).float()[None] / 255, R)[0] > 0.5
    sil = projective.silhouette(grid, rays)[0] > 0.5
    assert float((sil & mask).sum() / (sil | mask).sum()) > 0.7  # 16 cells: coarse edges
    wrong = mask.flip(1)
    assert float((sil & wrong).sum() / (sil | wrong).sum()) < 0.5
    # an empty grid has an empty outline, and the outline term pulls the cells behind the mask up
    logits = torch.full((1, R, R, R), -4.0, requires_grad=True)
    out = projective.silhouette(torch.sigmoid(logits), rays)
    assert float(out.max()) < 0.8
    torch.nn.functional.binary_cross_entropy(out, mask[None].float()).backward()
    g = -logits.grad[0]  # the direction the term moves each cell's logit
    assert float(g[grid[0] > 0.5].mean()) > 0 and float(g[grid[0] > 0.5].mean()) > float(
        g[grid[0] < 0.5].mean()
    )


def test_back_projection_fills_the_cells_behind_an_image_cell():
    camera, view = _camera()
    n = R // 2
    pixels, depth = projective.cell_pixels(camera, n)
    image = torch.zeros(1, 1, n, n)
    image[0, 0, 2, 5] = 1.0  # row 2, column 5
    vol = projective.back_project(image, pixels)[0, 0]  # [x, y, z]
    centres = -0.5 + (np.arange(n) + 0.5) / n
    pts = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)
    uv = project(pts, view.world_to_pixel) * n / S  # in code cells
    inside = (np.floor(uv[:, 0]) == 5) & (np.floor(uv[:, 1]) == 2)
    lit = vol.reshape(-1).numpy()
    assert inside.sum() >= 2
    far = (np.abs(uv[:, 0] - 5.5) >= 1) | (np.abs(uv[:, 1] - 2.5) >= 1)  # a cell or more from that centre
    assert lit[inside].min() > 0.2 and (lit[far] == 0).all() and far.sum() > 0.8 * len(lit)
    # depth grows away from the camera (at -Y, above): the far, low corner is deeper than the near, high one
    assert depth[0, 0, 0, -1, 0] > depth[0, 0, 0, 0, -1]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"world_to_pixel": [[1, 2]]},
        "camera",
        {
            "world_to_pixel": np.zeros((3, 4)).tolist(),
            "image_size": 32,
            "distance": 2,
            "voxel_to_world": np.eye(4).tolist(),
        },
    ],
)
def test_a_config_without_a_usable_camera_is_refused(bad):
    with pytest.raises(ValueError, match="camera"):
        projective.camera_from_config({"camera": bad})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("pj") / "ds", n_per_category=8, image_size=S, resolution=R)


TINY = [
    "--latent-dim",
    "16",
    "--encoder-width",
    "4",
    "--decoder-width",
    "4",
    "--batch-size",
    "4",
    "--quiet",
    "--critic-width",
    "4",
    "--n-critic",
    "1",
    "--val-every",
    "100",
    "--val-samples",
    "8",
]


def test_auto_picks_projective_where_the_views_share_a_camera(data, tmp_path):
    run = tmp_path / "run"
    assert cli_main(["train", "cyclegan", "--data", str(data), "--out", str(run), "--steps", "2", *TINY]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["generators"] == "projective"
    assert np.allclose(config["camera"]["world_to_pixel"], _camera()[1].world_to_pixel)
    model = CycleGAN(CycleGANConfig.from_dict(config, "config.json"))
    assert isinstance(model.enc3d, projective.VoxelToCode) and isinstance(
        model.dec3d, projective.CodeToVoxels
    )
    # prediction rebuilds the camera from the config; a damaged camera is one line naming the file
    p = load_predictor(run, "cpu")
    assert p.predict(np.asarray(open_dataset(data).images[0])).shape == (2, R, R, R)
    tensors, meta = checkpoint.load_checkpoint(run / checkpoint.LAST)
    meta["config"]["camera"]["world_to_pixel"] = "x"
    bad = tmp_path / "bad.safetensors"
    checkpoint.save_checkpoint(bad, tensors, meta)
    with pytest.raises(VoxliftError, match="bad.safetensors.*camera"):
        load_predictor(bad, "cpu")


def test_views_of_several_elevations_fall_back_to_latent_or_refuse(tmp_path, capsys):
    data = make_dataset(
        tmp_path / "ds", n_per_category=4, image_size=S, resolution=R, views=4
    )  # 25 and 10 deg
    run = tmp_path / "run"
    assert cli_main(["train", "cyclegan", "--data", str(data), "--out", str(run), "--steps", "1", *TINY]) == 0
    assert json.loads((run / "config.json").read_text())["generators"] == "latent"
    rc = cli_main(
        [
            "train",
            "autoencoder",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "ae"),
            "--steps",
            "1",
            "--generators",
            "projective",
            "--latent-dim",
            "16",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "--generators latent" in err and str(data) in err


def test_an_autoencoder_of_the_other_generators_does_not_start_a_run(data, tmp_path):
    ae = tmp_path / "ae"
    assert (
        cli_main(
            [
                "train",
                "autoencoder",
                "--data",
                str(data),
                "--out",
                str(ae),
                "--steps",
                "1",
                "--generators",
                "latent",
                "--latent-dim",
                "16",
                "--encoder-width",
                "4",
                "--decoder-width",
                "4",
                "--batch-size",
                "4",
                "--quiet",
            ]
        )
        == 0
    )
    args = [
        "train",
        "cyclegan",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "gan"),
        "--steps",
        "1",
        "--init-from",
        str(ae),
        *TINY,
    ]
    with pytest.raises(VoxliftError, match="generators"):
        train("cyclegan", args[2:])


def test_projective_generators_learn_a_paired_reconstruction(data):
    """Each projective generator, trained on pairs with a direct loss, fits them (the diagnostics' check)."""
    ds = open_dataset(data)
    camera = projective.viewer_camera(ds)
    config = {
        "kind": "test",
        "image_size": S,
        "input_size": S,
        "resolution": R,
        "latent_dim": 16,
        "encoder_width": 4,
        "decoder_width": 4,
        "norm": "batch",
        "spectral": "critics",
        "generators": "projective",
        "camera": camera,
    }
    halves = generator_halves(UnpairedConfig.from_dict(config, "test config"))
    images = torch.from_numpy(np.asarray(ds.images[:8, 0])).float()[:, None] / 127.5 - 1
    grids = to_viewer_frame(torch.from_numpy(np.asarray(ds.voxels[:8])).float(), [ds.views[0].azimuth] * 8)
    torch.manual_seed(0)
    params = [p for h in halves.values() for p in h.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(60):
        vox = halves["dec3d"](halves["enc2d"](images))
        img = torch.tanh(halves["dec2d"](halves["enc3d"](grids)))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(vox, grids) + (img - images).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses[::10]


def test_code_gap_compares_codes_as_distributions():
    from voxlift.backend.models.autoencoder import code_gap

    g = torch.Generator().manual_seed(0)
    a = (torch.randn(64, 3, 4, 4, generator=g), torch.randn(64, 8, generator=g))
    same = (torch.randn(64, 3, 4, 4, generator=g), torch.randn(64, 8, generator=g))
    shifted = (a[0] * 3 + 2, a[1])
    assert float(code_gap(a, a)) == 0.0
    assert float(code_gap(a, same)) < 0.1 < float(code_gap(a, shifted))
    assert float(code_gap(a[1], a[1] + 1)) == pytest.approx(1.0)  # latent codes: plain tensors


def test_aligned_autoencoders_pull_the_codes_together(data, tmp_path):
    gaps = {}
    for align in ("0", "3"):
        out = tmp_path / f"ae{align}"
        assert (
            cli_main(
                [
                    "train",
                    "autoencoder",
                    "--data",
                    str(data),
                    "--out",
                    str(out),
                    "--steps",
                    "40",
                    "--align",
                    align,
                    "--latent-dim",
                    "16",
                    "--encoder-width",
                    "4",
                    "--decoder-width",
                    "4",
                    "--batch-size",
                    "8",
                    "--val-every",
                    "40",
                    "--val-samples",
                    "8",
                    "--quiet",
                ]
            )
            == 0
        )
        assert "crossed_iou@0.3" in log_rows(out, "val")[-1]["val"]
        gaps[align] = [r["losses"] for r in log_rows(out, "step") if "code_gap" in r["losses"]]
    assert not gaps["0"] and gaps["3"]
    assert gaps["3"][-1]["code_gap"] < gaps["3"][0]["code_gap"]


def test_the_outline_term_falls_in_training(data, tmp_path):
    """--lambda-silhouette: G_2D->3D learns to draw grids whose outline through the camera is the image's own
    alpha outline (no pair); the term is logged and falls."""
    out = tmp_path / "run"
    assert (
        cli_main(
            [
                "train",
                "cyclegan",
                "--data",
                str(data),
                "--out",
                str(out),
                "--steps",
                "60",
                "--lambda-silhouette",
                "30",
                "--latent-dim",
                "16",
                "--encoder-width",
                "4",
                "--decoder-width",
                "4",
                "--batch-size",
                "8",
                "--val-every",
                "100",
                "--val-samples",
                "8",
                "--quiet",
                "--critic-width",
                "4",
                "--n-critic",
                "1",
                "--lr",
                "1e-3",
            ]
        )
        == 0
    )
    assert json.loads((out / "config.json").read_text())["lambda_silhouette"] == 30
    rows = [r["losses"] for r in log_rows(out, "step")]
    first, last = rows[0]["silhouette"], np.mean([r["silhouette"] for r in rows[-2:]])
    assert last < 0.7 * first, [r["silhouette"] for r in rows]
