"""Training pictures made from renderings (compositing.py) and the framing of users' pictures (framing.py),
on images whose answer is known."""

import numpy as np
import pytest
import torch

from voxlift.backend import compositing
from voxlift.backend.compositing import BACKGROUND_KINDS, PictureConfig, load_bank, picture
from voxlift.backend.framing import frame_picture
from voxlift.dataset_tools.errors import VoxliftError

S = 64
NO_CHANGES = PictureConfig(photometric=0.0, blur=0.0, noise=0.0)


def _rendering(b=6, level=1.0):
    """A dark square object with exact alpha on the render background `level`: [B, S, S] each."""
    alpha = torch.zeros(b, S, S)
    alpha[:, 20:44, 24:40] = 1.0
    img = alpha * 0.3 + (1 - alpha) * level
    return img, alpha


def test_the_bank_holds_real_photographs():
    bank = load_bank()
    assert bank.dtype == torch.uint8 and bank.shape[1:] == (compositing.BANK_TILE,) * 2 and len(bank) >= 100
    spread = bank.float().flatten(1).std(1) / 255
    assert (spread > 0.05).float().mean() > 0.8  # textured, not flat fills
    assert len({bytes(t[::8, ::8].numpy()) for t in bank}) == len(bank)  # all different


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_each_background_kind_replaces_the_render_background_and_keeps_the_object(kind):
    img, alpha = _rendering()
    k = BACKGROUND_KINDS.index(kind)
    cfg = PictureConfig(
        kinds=tuple(1.0 if i == k else 0.0 for i in range(len(BACKGROUND_KINDS))),
        **{"photometric": 0.0, "blur": 0.0, "noise": 0.0},
    )
    gen = torch.Generator().manual_seed(1)
    out, a = picture(img, alpha, 1.0, torch.ones(6), torch.zeros(6, 2), cfg, gen, load_bank())
    inside, outside = alpha > 0.99, alpha < 0.01
    assert torch.allclose(out[inside], img[inside], atol=1e-5)  # the object as rendered
    assert torch.allclose(a, alpha, atol=1e-5) and out.min() >= 0 and out.max() <= 1
    if kind == "render":
        assert torch.allclose(out[outside], torch.ones_like(out[outside]))
    else:
        assert (out[outside] - 1).abs().mean() > 0.05  # another background
    if kind in ("noise", "photo", "shapes"):
        assert out[0][outside[0]].std() > 0.02  # with texture in it


def test_pictures_are_a_function_of_the_seed_and_move_the_mask_with_the_object():
    img, alpha = _rendering()
    scale, shift = torch.full((6,), 0.5), torch.tensor([[0.2, -0.1]] * 6)
    a1 = picture(
        img, alpha, 1.0, scale, shift, PictureConfig(), torch.Generator().manual_seed(3), load_bank()
    )
    a2 = picture(
        img, alpha, 1.0, scale, shift, PictureConfig(), torch.Generator().manual_seed(3), load_bank()
    )
    assert torch.equal(a1[0], a2[0]) and torch.equal(a1[1], a2[1])
    mask = a1[1][0] > 0.5
    ys, xs = torch.nonzero(mask, as_tuple=True)
    # half the size, its centre moved by (0.2, -0.1) of the side: x right, y up-screen is -
    assert abs((xs.max() - xs.min() + 1) - 8) <= 1 and abs((ys.max() - ys.min() + 1) - 12) <= 1
    assert abs(xs.float().mean() - (32 + 0.2 * S)) <= 1.5 and abs(ys.float().mean() - (32 - 0.1 * S)) <= 1.5


def test_photometric_changes_act_on_the_whole_picture():
    img, alpha = _rendering()
    cfg = PictureConfig(kinds=(1, 0, 0, 0, 0, 0), photometric=1.0, blur=1.0, noise=1.0)
    out, _ = picture(
        img, alpha, 1.0, torch.ones(6), torch.zeros(6, 2), cfg, torch.Generator().manual_seed(0), None
    )
    assert not torch.allclose(out, img, atol=0.02)
    assert out.min() >= 0 and out.max() <= 1


# ---------------------------------------------------------------------------------------------- framing


def _chair_picture(h=120, w=160, top=30, left=50, size=48):
    """A gray 'chair' silhouette (seat, back, two legs) at a known place: (picture uint8 [h, w], alpha)."""
    a = np.zeros((h, w), np.float32)
    a[top : top + size // 2, left + size - 8 : left + size] = 1  # back
    a[top + size // 2 : top + size // 2 + 6, left : left + size] = 1  # seat
    a[top + size // 2 : top + size, left : left + 5] = 1  # legs
    a[top + size // 2 : top + size, left + size - 5 : left + size] = 1
    return a


def _on(background: np.ndarray, alpha: np.ndarray, level=0.25) -> np.ndarray:
    return np.round((alpha * level + (1 - alpha) * background) * 255).astype(np.uint8)


def test_a_plain_border_takes_the_fast_path_and_frames_like_the_alpha():
    a = _chair_picture()
    with_alpha = np.dstack([_on(np.ones_like(a), a)] * 3 + [np.round(a * 255).astype(np.uint8)])
    g1, m1, how1, _ = frame_picture(with_alpha, 64, 1.0, 0.7)
    g2, m2, how2, _ = frame_picture(_on(np.full_like(a, 0.8), a), 64, 1.0, 0.7)  # grey backdrop, no alpha
    assert (how1, how2) == ("alpha", "border")
    assert np.abs(m1 - m2).mean() < 0.01 and np.abs(g1 - g2).mean() < 0.01
    ys, xs = np.nonzero(m1 > 0.5)
    assert abs(max(np.ptp(xs), np.ptp(ys)) + 1 - 0.7 * 64) <= 2  # framed to `fill`
    assert g1[m1 < 0.01].min() > 0.95  # composited on the training background


def test_a_busy_background_goes_to_the_mask_model():
    rng = np.random.default_rng(0)
    a = _chair_picture()
    busy = _on(rng.uniform(0.3, 1.0, a.shape).astype(np.float32), a)
    calls = []

    def mask_model(gray):  # a perfect mask model: the known silhouette
        calls.append(gray.shape)
        return a

    g, m, how, box = frame_picture(busy, 64, 1.0, 0.7, find_mask=mask_model)
    ref, ref_m, _, ref_box = frame_picture(_on(np.ones_like(a), a), 64, 1.0, 0.7)
    assert how == "mask model" and calls == [a.shape]
    np.testing.assert_allclose(box, ref_box)
    assert np.abs(m - ref_m).mean() < 0.01 and np.abs(g - ref).mean() < 0.02  # the clutter is gone
    # without a mask model the border rule is used anyway, and says so
    assert frame_picture(busy, 64, 1.0, 0.7)[2] == "border*"


def test_the_mask_model_keeps_the_largest_object_only():
    a = _chair_picture()
    speck = a.copy()
    speck[2:5, 2:5] = 1  # a fleck of noise in a corner
    busy = _on(np.random.default_rng(1).uniform(0.3, 1.0, a.shape).astype(np.float32), a)
    _, m, _, _ = frame_picture(busy, 64, 1.0, 0.7, find_mask=lambda g: speck)
    _, ref, _, _ = frame_picture(busy, 64, 1.0, 0.7, find_mask=lambda g: a)
    assert np.abs(m - ref).mean() < 0.01


def test_the_mask_model_keeps_thin_parts_joined_to_the_object():
    """A table top the mask model is sure of (0.9) on legs it is unsure of (0.3): the legs stay, so the frame
    holds the whole table; an unsure blob apart from it and a smaller sure one are dropped."""
    from voxlift.backend.framing import grown_object

    probs = np.zeros((60, 60), np.float32)
    probs[10:16, 10:50] = 0.9  # the top
    probs[16:40, 11:13] = probs[16:40, 47:49] = 0.3  # two legs, a pixel or two wide
    probs[50:56, 50:56] = 0.35  # a shadow elsewhere
    probs[45:48, 2:5] = 0.8  # a smaller thing the model is sure of
    alpha = grown_object(probs)
    on = alpha > 0.5
    assert on[10:16, 10:50].all() and on[16:40, 11:13].all() and on[16:40, 47:49].all()
    assert not on[50:, 50:].any() and not on[45:48, 2:5].any()
    assert np.nonzero(on.any(1))[0].max() == 39  # framed by the legs' ends, not the top's
    assert not grown_object(np.full((8, 8), 0.3, np.float32)).any()  # nothing sure: no object


def test_bad_pictures_are_one_clear_error():
    with pytest.raises(VoxliftError, match="8x8 pixels is too small"):
        frame_picture(np.zeros((8, 8), np.uint8), 64)
    with pytest.raises(VoxliftError, match="no object found"):
        frame_picture(np.full((40, 40, 3), 200, np.uint8), 64)
    with pytest.raises(VoxliftError, match="no object found"):
        frame_picture(np.zeros((40, 40), np.uint8), 64, find_mask=lambda g: np.zeros_like(g))


def test_a_large_photo_is_shrunk_first_and_framed_the_same():
    a = _chair_picture(h=3000, w=4000, top=900, left=1500, size=1200)
    big = np.dstack([_on(np.full_like(a, 0.9), a)] * 3)
    _, m, how, box = frame_picture(big, 64, 1.0, 0.7)
    ys, xs = np.nonzero(m > 0.5)
    assert how == "border" and abs(max(np.ptp(xs), np.ptp(ys)) + 1 - 0.7 * 64) <= 2
    # the object's box in the picture, as fractions: the chair stands at (1500, 900) .. (2700, 2100)
    np.testing.assert_allclose(box, [1500 / 4000, 900 / 3000, 2700 / 4000, 2100 / 3000], atol=2 / 512)


def test_the_bank_takes_each_photograph_once_and_never_the_held_out_ones(tmp_path):
    """`python build.py assets` reads Debian's wallpapers: Plasma ships one picture at many sizes (counted
    once, the largest), and mate-backgrounds is the robustness benchmark's held-out set (refused)."""
    from voxlift.blender import backgrounds

    sizes = tmp_path / "Autumn" / "contents" / "images"
    sizes.mkdir(parents=True)
    for name in ("640x480.jpg", "1920x1080.jpg", "1280x1024.jpg"):
        (sizes / name).write_bytes(b"")
    (tmp_path / "leaves.webp").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a photo")
    found = backgrounds.photo_files([tmp_path])
    assert found == sorted([sizes / "1920x1080.jpg", tmp_path / "leaves.webp"])
    for held_out in (backgrounds.HELD_OUT, backgrounds.HELD_OUT / "nature", backgrounds.HELD_OUT.parent):
        with pytest.raises(SystemExit, match="held-out"):
            backgrounds.photo_files([held_out])
