"""The shared building blocks: the decoders' two heads (transposed convolution, sub-pixel shuffle)."""

import pytest
import torch

from voxlift.backend.networks import ImageDecoder, VoxelDecoder, _shuffle_up, decoder_head


def test_2d_shuffle_is_pixel_shuffle():
    x = torch.randn(3, 4, 5, 6)
    assert torch.equal(_shuffle_up(x, 2), torch.nn.PixelShuffle(2)(x))


def test_3d_shuffle_puts_each_channel_at_its_sub_voxel():
    x = torch.zeros(1, 8, 2, 3, 4)
    for f in range(8):
        x[0, f] = f + 1
    y = _shuffle_up(x, 3)[0, 0]
    assert y.shape == (4, 6, 8)
    for i in range(4):
        for j in range(6):
            for k in range(8):
                # channel f = 4 * (i % 2) + 2 * (j % 2) + (k % 2), as PixelShuffle orders the factors
                assert y[i, j, k] == 4 * (i % 2) + 2 * (j % 2) + (k % 2) + 1
    # and the voxel comes from its own coarse cell, not a neighbour's
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 1, 2, 3, 4).repeat(1, 8, 1, 1, 1)
    y = _shuffle_up(x, 3)[0, 0]
    assert torch.equal(y[::2, ::2, ::2], x[0, 0]) and torch.equal(y[1::2, 1::2, 1::2], x[0, 0])


@pytest.mark.parametrize("head", ["deconv", "shuffle"])
def test_both_heads_decode_to_full_size_and_learn(head):
    torch.manual_seed(0)
    dec = VoxelDecoder(16, 8, 4, "batch", head=head)
    assert dec(torch.randn(2, 8)).shape == (2, 16, 16, 16)
    assert ImageDecoder(32, 8, 4, "batch", head=head)(torch.randn(2, 8)).shape == (2, 1, 32, 32)
    # one fixed target from one fixed code: the loss must fall
    z, target = torch.randn(4, 8), (torch.rand(4, 16, 16, 16) < 0.2).float()
    opt = torch.optim.Adam(dec.parameters(), 1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(dec(z), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_runs_from_before_the_option_use_transposed_convolutions():
    assert decoder_head({}) == "deconv"
    assert decoder_head({"decoder_head": "shuffle"}) == "shuffle"
    with pytest.raises(ValueError, match="head"):
        VoxelDecoder(16, 8, 4, "batch", head="nearest")


def test_lifted_image_cells_land_in_the_viewer_frame_column_behind_them():
    from voxlift.backend.paired_net import lift_to_grid

    cols = torch.zeros(1, 2 * 4, 8, 8)  # 2 channels x depth 4, on an 8x8 image map
    cols[0, 1 * 4 + 3, 2, 5] = 1.0  # channel 1, depth 3, image row 2 (near the top), column 5
    grid = lift_to_grid(cols, 2)
    assert grid.shape == (1, 2, 8, 4, 8)
    assert grid.nonzero().tolist() == [[0, 1, 5, 3, 8 - 1 - 2]]  # x = column, y = depth, z = up


def test_paired_model_with_and_without_lift():
    from _paired_util import paired_network

    cfg = {
        "input_size": 32,
        "resolution": 32,
        "latent_dim": 16,
        "encoder_width": 4,
        "decoder_width": 4,
        "norm": "batch",
        "decoder_head": "shuffle",
    }
    x = torch.randn(2, 1, 32, 32)
    plain, lifted = paired_network(cfg), paired_network({**cfg, "lift": True})
    assert plain.lift is None and lifted.lift is not None
    assert plain(x).shape == lifted(x).shape == (2, 32, 32, 32)
    # the lifted path is part of the graph: the loss reaches its weights
    y = lifted(x).sum()
    y.backward()
    assert lifted.lift.weight.grad.abs().sum() > 0
