"""The paired data pipeline: frames and rotation, alignment of rotated targets, sampler, augmentation."""

import numpy as np
import pytest
import torch
from _paired_util import furniture_grid, make_dataset, voxel_centres

from voxlift.backend.data import (
    Augment,
    AugmentConfig,
    StepSampler,
    ViewDataset,
    dataset_statistics,
    make_loader,
    resample_z,
    rotation_z,
    to_object_frame_torch,
    to_viewer_frame,
)
from voxlift.backend.framing import frame_picture
from voxlift.backend.predict import to_object_frame
from voxlift.dataset_tools import make_view, open_dataset, project

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("paired") / "ds", chairs=3, tables=3, size=32)


def _grid(seed=0):
    return torch.from_numpy(furniture_grid("chair", np.random.default_rng(seed))).float()[None]


def test_quarter_turns_are_exact_and_agree_with_resampling():
    g = _grid()
    for angle in (90, 180, 270, -90):
        exact = resample_z(g, [angle])
        # The trilinear path lands on voxel centres at 90-degree multiples: same grid up to rounding.
        from voxlift.backend.data import _resample_trilinear

        resampled = _resample_trilinear(g, float(angle))
        assert torch.equal(exact, resampled.round())
        assert exact.sum() == g.sum()  # a permutation: nothing lost
    assert not torch.equal(resample_z(g, [90]), g)
    # Rz(90) takes +X to +Y: the point at +X in the object frame is where the viewer frame's -Y... check one voxel.
    one = torch.zeros(1, 4, 4, 4)
    one[0, 3, 1, 2] = 1  # x high, y low
    out = resample_z(one, [90])  # out(p) = in(Rz(90) p): in(3,1) is reached from p with Rz(90)p = (x3, y1)
    # Rz(90)(x, y) = (-y, x): -y = x3 -> y index 0; x = y1 -> x index 1
    assert out[0, 1, 0, 2] == 1 and out.sum() == 1


def test_rotation_round_trip_and_composition():
    # Inside the cylinder the cube inscribes, two 45-degree resamplings keep a solid shape nearly whole...
    box = torch.zeros(1, 32, 32, 32)
    box[0, 7:25, 9:23, 4:20] = 1
    back = to_object_frame_torch(to_viewer_frame(box, [45.0]), [45.0]) > 0.5
    assert (back & (box > 0.5)).sum() / box.sum() > 0.9 and back.sum() / box.sum() < 1.1
    # ...while corners beyond it leave the cube (a wide chair loses the tips of its legs and thin parts blur).
    g = _grid(1)
    back = to_object_frame_torch(to_viewer_frame(g, [45.0]), [45.0])
    inter = (back > 0.5) & (g > 0.5)
    assert 0.6 < inter.sum() / (g > 0.5).sum() < 0.95
    twice = resample_z(resample_z(g, [45.0]), [45.0])
    quarter = resample_z(g, [90.0]) > 0.5
    iou = ((twice > 0.5) & quarter).sum() / ((twice > 0.5) | quarter).sum()
    assert iou > 0.7
    assert torch.equal(to_object_frame_torch(to_viewer_frame(g, [270.0]), [270.0]), g)
    assert np.array_equal(to_object_frame(to_viewer_frame(g, [180.0]).numpy(), 180.0), g.numpy())


def test_viewer_centred_target_lands_on_the_views_alpha(tiny):
    """The acceptance check: project the rotated grid with the view's matrix (times Rz(az), the frame change)
    and it must fall on that view's alpha; the unrotated grid must not."""
    ds = open_dataset(tiny)
    unrotated = []
    for m in range(len(ds)):
        grid = torch.from_numpy(np.array(ds.voxels[m])).float()[None]
        for v, view in enumerate(ds.views):
            rotated = to_viewer_frame(grid, [view.azimuth])[0].numpy()
            pts = voxel_centres(rotated)
            # The viewer frame is seen by the camera at azimuth 0 with the view's elevation and distance.
            front = make_view(0.0, view.elevation, view.distance, view.fov, ds.image_size).world_to_pixel
            assert np.allclose(view.world_to_pixel @ rotation_z(view.azimuth), front, atol=1e-9)
            uv = np.floor(project(pts, front)).astype(int).clip(0, ds.image_size - 1)
            on = (ds.alpha[m, v][uv[:, 1], uv[:, 0]] > 0).mean()
            assert on > 0.98, (m, v, on)
            if view.azimuth % 180:
                raw = (
                    np.floor(project(voxel_centres(ds.voxels[m]), front))
                    .astype(int)
                    .clip(0, ds.image_size - 1)
                )
                unrotated.append((ds.alpha[m, v][raw[:, 1], raw[:, 0]] > 0).mean())
    assert np.mean(unrotated) < 0.9  # the control: without the rotation the grid misses the alpha


def test_view_dataset_items_and_loader(tiny):
    ds = open_dataset(tiny)
    items = ViewDataset(tiny, ds.indices())
    assert len(items) == len(ds) * ds.views_per_model
    it = items[11]
    m, v = items.locate(11)
    assert (m, v) == (1, 3) and it["model"] == 1 and it["view"] == 3
    assert np.array_equal(it["image"].numpy(), ds.images[1, 3]) and it["image"].dtype == torch.uint8
    assert it["voxels"].shape == (32, 32, 32) and it["azimuth"] == pytest.approx(135.0)
    loader = make_loader(items, 5, workers=1)
    batch = next(iter(loader))
    assert batch["image"].shape == (5, 32, 32) and batch["voxels"].dtype == torch.uint8


def test_sampler_resumes_mid_stream_and_ranks_split_epochs():
    full = StepSampler(10, seed=3)
    stream = [i for _, i in zip(range(35), iter(full))]
    assert sorted(stream[:10]) == list(range(10)) and stream[:10] != stream[10:20]
    resumed = [i for _, i in zip(range(22), iter(StepSampler(10, seed=3, start=13)))]
    assert resumed == stream[13:35]
    r0 = [i for _, i in zip(range(5), iter(StepSampler(10, seed=3, rank=0, world=2)))]
    r1 = [i for _, i in zip(range(5), iter(StepSampler(10, seed=3, rank=1, world=2)))]
    assert sorted(r0 + r1) == list(range(10))


def test_augmentation_is_a_function_of_the_step_and_keeps_the_object(tiny):
    ds = open_dataset(tiny)
    items = ViewDataset(tiny, ds.indices())
    batch = torch.utils.data.default_collate([items[i] for i in range(8)])
    aug = Augment(AugmentConfig(background=1.0), seed=1)
    a1, t1 = aug(batch, torch.device("cpu"), step=5)
    a2, t2 = aug(batch, torch.device("cpu"), step=5)
    a3, _ = aug(batch, torch.device("cpu"), step=6)
    assert torch.equal(a1, a2) and torch.equal(t1, t2) and not torch.equal(a1, a3)
    assert a1.shape == (8, 1, 32, 32) and a1.min() >= -1 and a1.max() <= 1
    plain, target = aug(batch, torch.device("cpu"), train=False)
    assert torch.allclose(plain, batch["image"].float().unsqueeze(1) / 127.5 - 1)
    # Where the object is (alpha 255, away from the shifted border) the augmented image keeps its shading.
    inside = batch["alpha"].unsqueeze(1) == 255
    assert (a1 - plain)[inside].abs().median() < 0.5
    # Target: the viewer-centred grid of each view.
    assert torch.equal(target[0], batch["voxels"][0].float())  # azimuth 0
    assert torch.equal(target[2], torch.rot90(batch["voxels"][2].float(), 1, dims=(1, 0)))  # azimuth 90
    obj = Augment(AugmentConfig(viewer_centred=False))(batch, torch.device("cpu"), train=False)[1]
    assert torch.equal(obj, batch["voxels"].float())


def test_statistics_measure_the_dataset(tiny):
    ds = open_dataset(tiny)
    st = dataset_statistics(ds, ds.indices())
    occ = np.mean([ds.voxels[i].mean() for i in range(len(ds))])
    assert st["occupancy"] == pytest.approx(occ) and st["background"] == pytest.approx(1.0)
    assert 0.2 < st["fill"] < 0.9


def test_frame_picture_frames_a_user_image_like_the_renderings(tiny):
    ds = open_dataset(tiny)
    img, alpha = ds.images[0, 1], ds.alpha[0, 1]
    # The same object, twice as large, off-centre, on a grey RGBA canvas.
    big = np.kron(img, np.ones((2, 2), np.uint8))
    big_a = np.kron(alpha, np.ones((2, 2), np.uint8))
    canvas = np.zeros((100, 120, 4), np.uint8)
    canvas[..., :3] = 90
    canvas[10:74, 40:104, :3] = big[..., None]
    canvas[10:74, 40:104, 3] = big_a
    fill = max(np.ptp(np.nonzero(alpha)[0]), np.ptp(np.nonzero(alpha)[1])) / 32 + 1 / 32
    framed = frame_picture(canvas, 32, background=1.0, fill=fill)
    gray, a = framed.gray, framed.alpha
    assert framed.how == "alpha"
    assert gray.shape == (32, 32) and a.shape == (32, 32)
    ys, xs = np.nonzero(a > 0.5)
    assert abs(max(np.ptp(xs), np.ptp(ys)) + 1 - fill * 32) <= 2
    assert abs((xs.min() + xs.max()) / 2 - 15.5) <= 1.5 and abs((ys.min() + ys.max()) / 2 - 15.5) <= 1.5
    assert gray[a < 0.01].min() > 0.95  # composited on the training background, not the grey canvas
    from voxlift.dataset_tools import VoxliftError

    with pytest.raises(VoxliftError, match="no object"):
        frame_picture(np.zeros((20, 20, 4), np.uint8), 32)
