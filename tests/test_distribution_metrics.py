"""MMD, coverage and 1-NNA against brute-force and hand-made cases."""

import numpy as np
import pytest
import torch

from voxlift.backend.distribution_metrics import (
    coverage,
    distribution_scores,
    iou_distance,
    l1_distance,
    mmd,
    one_nna,
    prediction_scores,
)

torch.set_num_threads(1)


def _brute_iou_distance(a, b):
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = np.logical_or(x, y).sum()
            out[i, j] = 0.0 if union == 0 else 1 - np.logical_and(x, y).sum() / union
    return out


def test_iou_distance_matches_brute_force_in_any_batch_size():
    rng = np.random.default_rng(0)
    a = rng.random((7, 8, 8, 8)) < 0.2
    b = rng.random((5, 8, 8, 8)) < 0.3
    a[0] = False
    b[0] = False  # two empty grids are the same shape: distance 0
    expect = _brute_iou_distance(a, b)
    for batch in (2, 256):
        assert np.allclose(iou_distance(a, b, batch=batch).numpy(), expect, atol=1e-6)
    assert float(iou_distance(a[:1], b[:1])[0, 0]) == 0.0


def test_l1_distance_is_the_mean_absolute_difference():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 1, 4, 4)), rng.normal(size=(4, 1, 4, 4))
    expect = np.abs(a[:, None] - b[None]).reshape(3, 4, -1).mean(2)
    assert np.allclose(l1_distance(a, b, batch=2).numpy(), expect, atol=1e-5)


def test_hand_made_matrix():
    # 3 generated, 4 reference. g0 and g1 are both nearest to r0; g2 nearest to r3; r1 and r2 are missed.
    d_gr = torch.tensor([[0.1, 0.5, 0.6, 0.9], [0.2, 0.7, 0.5, 0.8], [0.9, 0.8, 0.7, 0.3]])
    assert mmd(d_gr) == pytest.approx((0.1 + 0.5 + 0.5 + 0.3) / 4)
    assert coverage(d_gr) == pytest.approx(2 / 4)
    d_gg = torch.tensor([[0.0, 0.05, 0.9], [0.05, 0.0, 0.9], [0.9, 0.9, 0.0]])
    d_rr = torch.tensor(
        [[0.0, 0.2, 0.9, 0.9], [0.2, 0.0, 0.9, 0.9], [0.9, 0.9, 0.0, 0.4], [0.9, 0.9, 0.4, 0.0]]
    )
    # g0: own 0.05 < other 0.1 right; g1: own 0.05 < 0.2 right; g2: own 0.9 > 0.3 wrong.
    # r0: own 0.2 > 0.1 wrong; r1: own 0.2 < 0.5 right; r2: own 0.4 < 0.5 right; r3: own 0.4 > 0.3 wrong.
    assert one_nna(d_gg, d_rr, d_gr) == pytest.approx(4 / 7)


def test_separate_sets_score_worst_and_good_samples_score_well():
    rng = np.random.default_rng(2)
    shapes = np.zeros((6, 8, 8, 8), bool)
    for i in range(6):  # six distinct boxes
        shapes[i, i : i + 2, :, :4] = True
    held = shapes
    good = shapes.copy()
    good[:, 0, 0, 0] ^= True  # almost the same shapes
    bad = rng.random((6, 8, 8, 8)) < 0.5  # noise
    s_good, s_bad = distribution_scores(good, held), distribution_scores(bad, held)
    assert s_good.mmd < 0.1 and s_bad.mmd > 0.5
    assert s_good.coverage == 1.0 and s_bad.coverage < 1.0
    assert s_bad.nna == 1.0  # noise is told from shapes every time
    assert (
        s_good.nna <= 0.5
    )  # near-copies are not (below 0.5: they sit closer to the reference than it does to itself)
    collapsed = np.repeat(shapes[:1], 6, 0)
    assert distribution_scores(collapsed, held).coverage == pytest.approx(1 / 6)
    with pytest.raises(ValueError):
        distribution_scores(good[:1], held)


def test_prediction_scores_take_one_view_per_model_in_turn():
    truths = np.zeros((3, 8, 8, 8), bool)
    for i in range(3):
        truths[i, 2 * i : 2 * i + 2] = True
    preds = []
    for i in range(3):  # 2 views each: the right shape in view i % 2 only, an empty grid in the other
        p = np.zeros((2, 8, 8, 8), np.float32)
        p[i % 2] = truths[i] * 0.9
        preds.append(p)
    s = prediction_scores(preds, truths)
    assert s["mmd"] == pytest.approx(0.0) and s["coverage"] == 1.0 and s["n_generated"] == 3
    preds_wrong = [p[::-1] for p in preds]
    assert prediction_scores(preds_wrong, truths)["mmd"] == pytest.approx(1.0)
