"""The mask model (models/mask.py): trains through the one loop, its loss falls, and reconstruct's framing
uses it to cut the object out of a picture without alpha."""

import numpy as np
import pytest
import torch
from _paired_util import make_dataset
from _train_util import log_rows, train

from voxlift.backend import mask_finder
from voxlift.backend.data import Augment, AugmentConfig, ViewDataset
from voxlift.backend.framing import frame_picture
from voxlift.backend.models.mask import box_error
from voxlift.dataset_tools import open_dataset
from voxlift.dataset_tools.errors import VoxliftError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("mask") / "data", chairs=6, tables=6, size=32, views=4)


def test_mask_pictures_put_the_object_anywhere_with_its_alpha(data):
    ds = open_dataset(data)
    items = ViewDataset(data, ds.indices())
    batch = torch.utils.data.default_collate([items[i] for i in range(8)])
    aug = Augment(AugmentConfig(), seed=2)
    pictures, alpha = aug.mask_pictures(batch, torch.device("cpu"), step=4, size=32)
    again = aug.mask_pictures(batch, torch.device("cpu"), step=4, size=32)
    assert torch.equal(pictures, again[0]) and torch.equal(alpha, again[1])  # a function of the step
    assert pictures.shape == alpha.shape == (8, 1, 32, 32) and pictures.min() >= -1 and pictures.max() <= 1
    sizes = (alpha > 0.5).flatten(1).sum(1).float()
    assert sizes.min() > 0 and sizes.max() / sizes.min() > 1.5  # moved and scaled
    assert np.all(box_error(alpha[:, 0], alpha[:, 0]) == 0)


def test_the_mask_model_learns_and_frames_a_picture_without_alpha(data, tmp_path):
    run = tmp_path / "mask"
    argv = [
        "--data",
        data,
        "--out",
        run,
        "--steps",
        "120",
        "--val-every",
        "60",
        "--size",
        "32",
        "--width",
        "8",
    ]
    assert train("mask", [*argv, "--batch-size", "16", "--val-samples", "16", "--quiet"]) == 0
    losses = [r["losses"]["loss"] for r in log_rows(run, "step")]
    assert np.mean(losses[-2:]) < 0.92 * np.mean(losses[:2])
    finder = mask_finder.load_mask_finder(run)
    ds = open_dataset(data)
    obj = np.asarray(ds.alpha[0, 0]) > 127
    noisy = np.random.default_rng(0).uniform(0.2, 0.9, (48, 48))  # a busy background
    noisy[8:40, 8:40] = np.where(obj, np.asarray(ds.images[0, 0]) / 255.0, noisy[8:40, 8:40])
    probs = finder(noisy)
    assert probs.shape == (48, 48) and 0 <= probs.min() <= probs.max() <= 1
    # the finder averages the picture with its mirror image: a mirrored picture gets the mirrored mask
    assert np.allclose(finder(noisy[:, ::-1]), probs[:, ::-1], atol=1e-5)
    inside = np.zeros((48, 48), bool)
    inside[8:40, 8:40] = obj
    assert probs[inside].mean() > probs[~inside].mean()  # it tells the object from the clutter
    # framing uses it for a busy picture (or says it found nothing: a weak model may)
    try:
        how = frame_picture(noisy, 32, 1.0, 0.75, find_mask=finder)[2]
    except VoxliftError as exc:
        how = "mask model" if "no object" in str(exc) else str(exc)
    assert how == "mask model"


def test_a_mask_config_without_the_new_fields_builds_the_first_shipped_network():
    """Checkpoints of the first mask model (one conv per stage, logits at half size) keep loading: their
    config lacks stage_convs and full_res_head, and the network built for it has exactly their tensors."""
    from voxlift.backend.mask_net import MaskNet
    from voxlift.backend.models.mask import MaskConfig, mask_network

    old = {"kind": "mask", "version": 2, "size": 64, "width": 8, "input_size": 64}
    config = MaskConfig.from_dict(old, "old.safetensors")
    assert (config.stage_convs, config.full_res_head) == (1, False)
    first = {k: v.shape for k, v in MaskNet(8).state_dict().items()}
    assert {k: v.shape for k, v in mask_network(config).state_dict().items()} == first
    new = MaskConfig.from_dict({**old, "stage_convs": 2, "full_res_head": True}, "new.safetensors")
    keys = set(mask_network(new).state_dict())
    assert set(first) < keys and any(k.startswith("full.") for k in keys)
    out = mask_network(new)(torch.zeros(2, 1, 32, 32))
    assert out.shape == (2, 1, 32, 32)
    with pytest.raises(VoxliftError, match="stage_convs"):
        MaskConfig.from_dict({**old, "stage_convs": 99}, "hostile.safetensors")
