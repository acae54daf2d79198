"""The per-region statistics the style guide optimises: gathered supports equal dense masking."""

from __future__ import annotations

import pytest
import torch

from engine.features import RandomFeatureNet, RegionSupport, jittered_features, masked_stats, masks_for, shifted

torch.set_num_threads(1)


def region_masks(height: int, width: int) -> torch.Tensor:
    masks = torch.zeros(3, 1, height, width)
    masks[0, :, :, : width // 2] = 1.0
    masks[1, :, 4:30, width // 3 : width - 4] = 0.5  # soft, overlapping the first
    masks[2] = torch.linspace(0, 1, width)  # a ramp over everything
    return masks


@pytest.mark.parametrize("dense", [False, True], ids=["gathered (CPU path)", "dense (GPU path)"])
@pytest.mark.parametrize("shift", [(0, 0), (8, -16), (-8, 8)])
def test_support_stats_match_dense_masking_and_follow_the_jitter(shift, dense):
    torch.manual_seed(0)
    height, width, stride = 40, 64, 2
    feature = torch.randn(1, 16, height // stride, width // stride, requires_grad=True)
    masks = region_masks(height, width)
    support = RegionSupport(masks, [tuple(feature.shape[-2:])], [stride], dense=dense)
    # the jittered feature pass sees the map moved by shift / stride; the support follows it
    mean, gram = support.stats(0, shifted(feature, shift, stride), shift)
    dense_mean, dense_gram = masked_stats(feature, masks_for(feature, masks))
    torch.testing.assert_close(mean, dense_mean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gram, dense_gram, atol=1e-6, rtol=1e-5)
    grad = torch.autograd.grad(gram.pow(2).sum() + mean.sum(), feature)[0]
    dense_grad = torch.autograd.grad(dense_gram.pow(2).sum() + dense_mean.sum(), feature)[0]
    torch.testing.assert_close(grad, dense_grad, atol=1e-6, rtol=1e-5)


def test_full_canvas_region_is_order_free():
    torch.manual_seed(1)
    feature = torch.randn(1, 8, 12, 20)
    support = RegionSupport(torch.ones(1, 1, 24, 40), [(12, 20)], [2])
    assert support.layers[0].index is None  # no gather at all for the unmasked case
    mean, gram = support.stats(0, feature)
    rolled_mean, rolled_gram = support.stats(0, torch.roll(feature, (3, 5), dims=(-2, -1)), (6, 10))
    torch.testing.assert_close(mean, rolled_mean)
    torch.testing.assert_close(gram, rolled_gram, atol=1e-5, rtol=1e-5)


def test_jittered_features_are_the_shifted_image_features():
    net = RandomFeatureNet().eval()
    image = torch.rand(1, 3, 128, 128)
    shift = (32, -32)  # the wrap seam lands on row 32 and column 96 of the shifted image
    with torch.no_grad():
        plain = net(image)
        jittered = jittered_features(net, image, shift)
    assert len(jittered) == len(net.strides)
    # Away from the borders and the seam (further than the deepest receptive field, 31 px), the
    # jittered maps are the plain maps moved by shift / stride.
    top, bottom, left, right = 56, 104, 24, 72
    for feature, moved, stride in zip(plain, jittered, net.strides, strict=True):
        expected = shifted(feature, shift, stride)
        window = (..., slice(top // stride, bottom // stride), slice(left // stride, right // stride))
        torch.testing.assert_close(moved[window], expected[window], atol=1e-4, rtol=1e-4)
