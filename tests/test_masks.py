"""Region masks: feathering, keep precedence, overlap normalisation, and bit-exact keep pixels."""

from __future__ import annotations

import jobkit
import numpy as np
import pytest
import torch

from engine.cli import run_spec_file
from engine.masks import build_layout, feather_outward

SIZE = 64


# ---- feathering -------------------------------------------------------------------------


def test_feather_zero_is_identity():
    mask = jobkit.rect_mask(32, 8, 8, 20, 20).astype(np.float32) / 255
    assert feather_outward(mask, 0) is mask


@pytest.mark.parametrize("feather", [2.0, 4.0, 9.0])
def test_feather_extends_outward_only(feather):
    mask = jobkit.rect_mask(48, 16, 16, 32, 32).astype(np.float32) / 255
    soft = feather_outward(mask, feather)
    assert soft.dtype == np.float32
    # inside: exactly the painted values
    np.testing.assert_array_equal(soft[mask == 1], 1.0)
    # never below the mask, never above 1
    assert (soft >= mask).all() and soft.max() <= 1.0
    # a soft ramp just outside the edge
    ring = soft[15, 16:32]
    assert (ring > 0).all() and (ring < 1).all()
    # and nothing far away
    reach = int(np.ceil(feather / 2 + 4 * feather / 4)) + 1
    far = np.ones_like(mask, dtype=bool)
    far[16 - reach : 32 + reach, 16 - reach : 32 + reach] = False
    np.testing.assert_array_equal(soft[far], 0.0)


def test_feather_ramp_is_monotonic_outward():
    mask = jobkit.rect_mask(48, 0, 0, 48, 20).astype(np.float32) / 255
    row = feather_outward(mask, 8.0)[24, 19:40]
    assert row[0] == 1.0
    assert (np.diff(row) <= 1e-7).all()
    assert row[-1] == 0.0


def test_partial_mask_values_are_kept():
    mask = np.zeros((32, 32), np.float32)
    mask[4:12, 4:12] = 128 / 255
    np.testing.assert_array_equal(feather_outward(mask, 0), mask)
    assert feather_outward(mask, 4)[8, 8] == pytest.approx(128 / 255)


# ---- layout -----------------------------------------------------------------------------


def as_float(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32) / 255


def test_no_regions_is_one_canvas_region():
    layout = build_layout(20, 30, [], False, torch.device("cpu"))
    assert layout.names == ["canvas"] and layout.modes == ["edit"]
    assert layout.guided.shape == (1, 1, 20, 30)
    assert torch.all(layout.guided == 1) and torch.all(layout.free == 1) and torch.all(layout.embolden == 0)


@pytest.mark.parametrize("feathers", [(0, 0), (6, 0), (6, 10)])
def test_overlapping_regions_sum_to_at_most_one(feathers):
    a = as_float(jobkit.rect_mask(SIZE, 0, 0, SIZE, 40))
    b = as_float(jobkit.rect_mask(SIZE, 0, 24, SIZE, SIZE))
    layout = build_layout(
        SIZE, SIZE, [("a", "edit", a, feathers[0]), ("b", "edit", b, feathers[1])], True, torch.device("cpu")
    )
    guided = layout.guided[:, 0].numpy()
    total = guided.sum(0)
    assert total.max() <= 1.0 + 1e-6
    # where both are painted fully they share the pixel equally
    np.testing.assert_allclose(guided[:, :, 24:40], 0.5, atol=1e-6)
    # out of reach of the other's feather (about 1.5 x feather), a region owns the pixel
    np.testing.assert_allclose(guided[0, :, :8], 1.0, atol=1e-6)
    np.testing.assert_allclose(guided[1, :, 52:], 1.0, atol=1e-6)
    # in a feather ramp the shares are still normalised, and the painted region keeps the larger
    if feathers[1]:
        ramp = guided[:, :, 18:24]
        assert (ramp[1] > 0).all() and (ramp[0] > ramp[1]).all()
    # every pixel is covered, so everything is free
    np.testing.assert_allclose(layout.free[0, 0].numpy(), 1.0, atol=1e-6)


def test_three_way_overlap_is_normalised():
    masks = [as_float(jobkit.rect_mask(32, 0, 0, 32, 32)) for _ in range(3)]
    layout = build_layout(32, 32, [(f"r{i}", "edit", m, 3) for i, m in enumerate(masks)], False, torch.device("cpu"))
    np.testing.assert_allclose(layout.guided.numpy(), 1 / 3, atol=1e-6)


def test_keep_zeroes_free_where_painted():
    keep = as_float(jobkit.rect_mask(SIZE, 10, 10, 40, 40))
    edit = as_float(jobkit.rect_mask(SIZE, 0, 0, SIZE, SIZE))  # covers everything, keep included
    layout = build_layout(SIZE, SIZE, [("edit", "edit", edit, 0), ("keep", "keep", keep, 5)], True, torch.device("cpu"))
    assert layout.names == ["edit"]  # keep regions are not guided
    free = layout.free[0, 0].numpy()
    guided = layout.guided[0, 0].numpy()
    assert (free[keep == 1] == 0).all()
    assert (guided[keep == 1] == 0).all()
    # the keep feather ramps outward: partly free just outside, fully free far away
    assert 0 < free[9, 20] < 1
    assert free[SIZE - 1, SIZE - 1] == 1.0
    assert free.min() >= 0 and free.max() <= 1


def test_uncovered_pixels_free_only_without_init():
    edit = as_float(jobkit.rect_mask(32, 0, 0, 32, 16))
    with_init = build_layout(32, 32, [("e", "edit", edit, 0)], True, torch.device("cpu"))
    without = build_layout(32, 32, [("e", "edit", edit, 0)], False, torch.device("cpu"))
    assert torch.all(with_init.free[..., 16:] == 0) and torch.all(with_init.free[..., :16] == 1)
    assert torch.all(without.free == 1)


def test_embolden_share():
    edit = as_float(jobkit.rect_mask(32, 0, 0, 32, 20))
    bold = as_float(jobkit.rect_mask(32, 0, 12, 32, 32))
    layout = build_layout(32, 32, [("e", "edit", edit, 0), ("b", "embolden", bold, 0)], True, torch.device("cpu"))
    share = layout.embolden[0, 0].numpy()
    np.testing.assert_allclose(share[:, :12], 0.0, atol=1e-6)
    np.testing.assert_allclose(share[:, 12:20], 0.5, atol=1e-6)
    np.testing.assert_allclose(share[:, 20:], 1.0, atol=1e-6)


def test_layout_from_png_masks(tmp_path):
    """Through prepare_job: grayscale, RGBA-alpha and 16-bit masks are read as the design says."""
    size = 32
    gray = np.zeros((size, size), np.uint8)
    gray[:, :10] = 255
    gray[:, 10:12] = 128
    alpha = np.zeros((size, size, 4), np.uint8)
    alpha[..., :3] = 0  # black paint: only alpha counts
    alpha[:, 22:, 3] = 255
    deep = np.zeros((size, size), np.uint16)
    deep[:4, :] = 65535
    jobkit.save(tmp_path / "gray.png", gray)
    jobkit.save(tmp_path / "alpha.png", alpha)
    from PIL import Image

    Image.fromarray(deep).save(tmp_path / "deep.png")
    jobkit.save(tmp_path / "init.png", jobkit.coffee(size))
    data = jobkit.spec(
        size,
        init={"image": "init.png"},
        regions=[
            {"name": "g", "mask": "gray.png"},
            {"name": "a", "mask": "alpha.png"},
            {"name": "d", "mask": "deep.png", "mode": "keep"},
        ],
    )
    layout = jobkit.prepare(tmp_path, data).layout
    g = layout.weight_of("g")[0, 0].numpy()
    a = layout.weight_of("a")[0, 0].numpy()
    assert (g[4:, :10] == 1).all() and g[10, 10] == pytest.approx(128 / 255)
    assert (g[:, 12:] == 0).all()
    assert (a[4:, 22:] == 1).all() and (a[:, :22] == 0).all()
    free = layout.free[0, 0].numpy()
    assert (free[:4] == 0).all()  # the 16-bit keep mask
    assert (free[4:, 14:22] == 0).all()  # uncovered, with an init


# ---- bit-exact keep and uncovered pixels in the result PNG -------------------------------


@pytest.mark.parametrize("kind", ["pixels", "fourier"])
def test_keep_and_uncovered_pixels_are_bit_exact(tmp_path, kind):
    """A feathered keep region beside a feathered edit region, an unfeathered edit region, and
    uncovered pixels. Strong guides repaint the edit regions; the rest must not move a bit."""
    init = jobkit.astronaut(SIZE)
    jobkit.save(tmp_path / "init.png", init)
    keep = jobkit.rect_mask(SIZE, 0, 0, 30, 26)
    beside = jobkit.rect_mask(SIZE, 0, 26, 30, 52)  # touches the keep region; feathers into it
    lower = jobkit.rect_mask(SIZE, 40, 0, SIZE, 20)  # hard edge
    for name, mask in (("keep", keep), ("beside", beside), ("lower", lower)):
        jobkit.save(tmp_path / "masks" / f"{name}.png", mask)
    magenta = {"kind": "palette", "colors": ["#ff00ff"], "weight": 1.0}
    data = jobkit.spec(
        SIZE,
        steps=25,
        generator={"kind": kind},
        optimizer={"kind": "adam", "lr": 0.3, "schedule": "constant"},
        init={"image": "init.png"},
        losses={"tv": 0.3, "saturation": 0.3},
        regions=[
            {"name": "keep", "mask": "masks/keep.png", "mode": "keep", "feather": 6},
            {"name": "beside", "mask": "masks/beside.png", "feather": 6, "guides": [magenta]},
            {"name": "lower", "mask": "masks/lower.png", "guides": [magenta]},
        ],
    )
    spec_path = jobkit.write_spec(tmp_path, data)
    run_spec_file(spec_path, tmp_path / "out", "cpu", quiet=True)
    result = jobkit.read_rgb(tmp_path / "out" / "result.png")
    assert result.shape == init.shape

    # the edit regions really were repainted (otherwise exactness below means nothing)
    for mask in (beside, lower):
        inside = mask == 255
        change = np.abs(result[inside].astype(int) - init[inside].astype(int)).mean()
        assert change > 20, change

    kept = keep == 255
    np.testing.assert_array_equal(result[kept], init[kept])

    # uncovered: out of reach of every region's feather (ramp reaches about 1.5 x feather)
    reach = np.zeros_like(keep, dtype=bool)
    reach[: 30 + 10, : 52 + 10] = True
    reach[40 - 1 :, : 20 + 1] = True
    uncovered = ~reach
    assert uncovered.sum() > 300
    np.testing.assert_array_equal(result[uncovered], init[uncovered])

    # with the edit region's feather inside the keep region, keep still wins: even the keep
    # pixels right at the shared edge are exact
    np.testing.assert_array_equal(result[:30, 20:26], init[:30, 20:26])


def test_keep_exact_with_embolden_and_overlap(tmp_path):
    """A keep region on top of an overlapping edit and embolden region stays exact."""
    size = 48
    init = jobkit.coffee(size)
    jobkit.save(tmp_path / "init.png", init)
    jobkit.save(tmp_path / "all.png", np.full((size, size), 255, np.uint8))
    jobkit.save(tmp_path / "bold.png", jobkit.rect_mask(size, 0, 0, size, 30))
    keep = jobkit.rect_mask(size, 10, 10, 30, 30)
    jobkit.save(tmp_path / "keep.png", keep)
    data = jobkit.spec(
        size,
        steps=15,
        optimizer={"kind": "adam", "lr": 0.3},
        init={"image": "init.png"},
        regions=[
            {"name": "all", "mask": "all.png", "guides": [{"kind": "palette", "colors": ["#00ff00"]}]},
            {"name": "bold", "mask": "bold.png", "mode": "embolden", "feather": 4},
            {"name": "keep", "mask": "keep.png", "mode": "keep", "feather": 3},
        ],
    )
    result = jobkit.run_job(tmp_path, data).image
    kept = keep == 255
    np.testing.assert_array_equal(result[kept], init[kept])
    assert np.abs(result[:, 36:].astype(int) - init[:, 36:].astype(int)).mean() > 10
