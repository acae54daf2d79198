"""CLIP cutouts per region: budget, placement inside each region, batched crops, augmentations."""

from __future__ import annotations

import random
import time

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from engine.cutout_augment import CutoutAugment
from engine.cutout_crops import _SeparableRoiAverage, make_cutouts, upload
from engine.cutouts import CutoutPlanner, RegionCutouts, allocate_cutouts, region_bounds

torch.set_num_threads(1)


# ---------------------------------------------------------------- allocation


@pytest.mark.parametrize(
    ("areas", "total", "minimum", "expected"),
    [
        ([1, 1, 1], 9, 1, [3, 3, 3]),
        ([3, 1], 8, 1, [6, 2]),
        ([1, 1, 1], 10, 0, [4, 3, 3]),  # a tie in remainders goes to the earlier region
        ([0.9, 0.1], 10, 2, [8, 2]),  # the small one is lifted to the minimum, the rest follows area
        ([1000, 1, 1], 12, 2, [8, 2, 2]),  # tiny regions
        ([5, 0, 5], 8, 1, [4, 0, 4]),  # a region of zero area is not guided
        ([5, 0, 1e-6], 7, 3, [4, 0, 3]),
        ([1, 1, 1], 2, 2, [2, 2, 2]),  # total under minimum * R: everyone gets the minimum
        ([7, 1], 0, 0, [0, 0]),
        ([0, 0], 16, 4, [0, 0]),
        ([], 16, 4, []),
    ],
)
def test_allocation_cases(areas, total, minimum, expected):
    assert allocate_cutouts(areas, total, minimum) == expected


def test_allocation_properties_on_random_cases():
    rng = random.Random(0)
    for _ in range(500):
        areas = [
            rng.choice([0.0, rng.random(), rng.random() * 1e-4, rng.random() * 1e4]) for _ in range(rng.randint(1, 6))
        ]
        total, minimum = rng.randint(0, 64), rng.randint(0, 6)
        counts = allocate_cutouts(areas, total, minimum)
        live = [i for i, a in enumerate(areas) if a > 0]
        assert sum(counts) == (max(total, minimum * len(live)) if live else 0)
        assert all(counts[i] == 0 for i, a in enumerate(areas) if a == 0)
        assert all(counts[i] >= minimum for i in live)
        # A larger region never gets fewer cutouts.
        for i in live:
            for j in live:
                if areas[i] > areas[j]:
                    assert counts[i] >= counts[j], (areas, total, minimum, counts)
        # Without the minimum in play, every share is its proportional quota rounded up or down.
        if live and minimum == 0:
            whole = sum(areas)
            assert all(abs(c - total * a / whole) < 1 for c, a in zip(counts, areas, strict=True))


def test_allocation_rejects_negative_input():
    with pytest.raises(ValueError):
        allocate_cutouts([1.0, -1.0], 8, 1)
    with pytest.raises(ValueError):
        allocate_cutouts([1.0], -1, 1)


# ---------------------------------------------------------------- bounds and placement


def test_region_bounds_ignore_faint_tails_and_empty_regions():
    w = torch.zeros(3, 1, 40, 50)
    w[0, :, 5:20, 10:45] = 1.0
    w[0, :, 0:40, 0:50] += 0.001  # a feather tail under the threshold
    w[1, :, 39, 49] = 0.5  # one pixel in the corner
    bounds = region_bounds(w)
    assert bounds.tolist() == [[5, 10, 20, 45], [39, 49, 40, 50], [0, 0, 0, 0]]


def rectangle(h: int, w: int, rng: random.Random) -> torch.Tensor:
    m = torch.zeros(h, w)
    y0, x0 = rng.randrange(h - 4), rng.randrange(w - 4)
    m[y0 : rng.randrange(y0 + 1, h + 1), x0 : rng.randrange(x0 + 1, w + 1)] = 1
    return m


def l_shape(h: int, w: int, rng: random.Random) -> torch.Tensor:
    m = torch.zeros(h, w)
    y0, x0 = rng.randrange(h // 2), rng.randrange(w // 2)
    y1, x1 = rng.randrange(y0 + 8, h + 1), rng.randrange(x0 + 8, w + 1)
    t = rng.randint(2, min(y1 - y0, x1 - x0) // 2)
    m[y0:y1, x0 : x0 + t] = 1
    m[y1 - t : y1, x0:x1] = 1
    return m


def two_blobs(h: int, w: int, rng: random.Random) -> torch.Tensor:
    return torch.maximum(rectangle(h, w, rng), rectangle(h, w, rng))


def strip(h: int, w: int, rng: random.Random) -> torch.Tensor:
    m = torch.zeros(h, w)
    y = rng.randrange(h - 3)
    m[y : y + 3, :] = 0.7  # a soft, thin strip: boxes are longer than the bounds vertically
    return m


def speck(h: int, w: int, rng: random.Random) -> torch.Tensor:
    m = torch.zeros(h, w)
    m[rng.randrange(h), rng.randrange(w)] = 1  # under min_pixels
    return m


SHAPES = [rectangle, l_shape, two_blobs, strip, speck]


def assert_boxes_inside_bounds(boxes: torch.Tensor, bounds: torch.Tensor, size: tuple[int, int]) -> None:
    """Per axis, a box lies inside the bounds, or (when longer than them) covers them centred, unless the
    image edge pushed it; and it always lies inside the image."""
    eps = 1e-3
    assert torch.allclose(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1], atol=eps)  # square
    for axis, length in enumerate(size):
        b0, b1 = boxes[:, axis], boxes[:, axis + 2]
        r0, r1 = bounds[:, axis].float(), bounds[:, axis + 2].float()
        assert (b0 >= -eps).all() and (b1 <= length + eps).all()
        inside = (b0 >= r0 - eps) & (b1 <= r1 + eps)
        centred = (b1 - b0 > r1 - r0) & ((b0 + b1 - r0 - r1).abs() < eps)
        at_edge = (b1 - b0 > r1 - r0) & (b0 <= r0 + eps) & (b1 >= r1 - eps) & ((b0 < eps) | (b1 > length - eps))
        assert (inside | centred | at_edge).all(), boxes[~(inside | centred | at_edge)]


def test_every_box_lies_inside_its_region_bounds():
    rng = random.Random(1)
    for case in range(60):
        h, w = rng.choice([(64, 64), (96, 160), (200, 72)])
        shapes = [rng.choice(SHAPES) for _ in range(rng.randint(1, 3))]
        weights = torch.stack([shape(h, w, rng) for shape in shapes])[:, None]
        planner = CutoutPlanner(weights, total=24, minimum=2, cut_pow=rng.choice([0.5, 1.0, 3.0]))
        bounds = region_bounds(weights)
        for seed in range(5):
            plan = planner.sample(torch.Generator().manual_seed(seed + 100 * case))
            assert plan.boxes.shape == (sum(planner.counts), 4)
            assert torch.bincount(plan.region, minlength=len(shapes)).tolist() == planner.counts
            assert_boxes_inside_bounds(plan.boxes, bounds[plan.region], (h, w))
            sizes = plan.boxes[:, 2] - plan.boxes[:, 0]
            assert (sizes >= planner.min_size[plan.region] - 1e-3).all()
            assert (sizes <= planner.max_size[plan.region] + 1e-3).all()
            assert ((plan.weights >= 0) & (plan.weights <= 1)).all()


def test_a_region_smaller_than_min_pixels_gets_boxes_of_min_pixels_around_it():
    weights = torch.zeros(2, 1, 64, 96)
    weights[0, 0, 30, 40] = 1
    weights[1, 0, 62:64, 94:96] = 1  # in the corner: the image edge pushes the box
    plan = CutoutPlanner(weights, total=8, minimum=1, min_pixels=16).sample(torch.Generator().manual_seed(0))
    first, second = plan.boxes[plan.region == 0], plan.boxes[plan.region == 1]
    torch.testing.assert_close(first, torch.tensor([[22.5, 32.5, 38.5, 48.5]]).expand_as(first))
    torch.testing.assert_close(second, torch.tensor([[48.0, 80.0, 64.0, 96.0]]).expand_as(second))


def test_cutout_centres_concentrate_on_an_l_shaped_mask():
    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 32:224, 32:80] = 1  # the upright, 48 wide
    mask[..., 176:224, 32:224] = 1  # the foot
    planner = CutoutPlanner(mask, total=2000, minimum=0, cut_pow=4.0, min_fraction=0.1)
    plan = planner.sample(torch.Generator().manual_seed(0))
    centres = ((plan.boxes[:, :2] + plan.boxes[:, 2:]) / 2).long()
    on_mask = mask[0, 0, centres[:, 0], centres[:, 1]] > 0
    # The L covers 44% of its bounding box; centres drawn blind to the mask would land on it as often.
    assert on_mask.float().mean() > 0.75
    # Any box that fits in the L's arms (under 2 x 45 px in a 192 px box) has its centre on the L.
    small = plan.boxes[:, 2] - plan.boxes[:, 0] < 90
    assert small.sum() > 500 and on_mask[small].all()


def test_box_weights_measure_how_much_of_the_box_is_region():
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 0:128, 0:64] = 1  # the left half: a box's weight is the share of it left of x = 64
    planner = CutoutPlanner(mask, total=200, minimum=0)
    plan = planner.sample(torch.Generator().manual_seed(3))
    x0, x1 = plan.boxes[:, 1], plan.boxes[:, 3]
    exact = ((64 - x0).clamp(0) / (x1 - x0)).clamp(max=1)
    torch.testing.assert_close(plan.weights, exact, atol=0.04, rtol=0)
    assert (plan.weights < 0.9).any() and (plan.weights > 0.99).any()


# ---------------------------------------------------------------- crops


def test_cutouts_of_a_constant_image_are_that_constant():
    image = torch.full((1, 3, 100, 140), 0.25)
    image[:, 1] = 0.5
    boxes = torch.tensor([[0.0, 0.0, 100.0, 100.0], [10.3, 20.7, 33.1, 43.5], [50.0, 90.0, 100.0, 140.0]])
    cut = make_cutouts(image, boxes, 64)
    assert cut.shape == (3, 3, 64, 64)
    torch.testing.assert_close(cut[:, 0], torch.full((3, 64, 64), 0.25))
    torch.testing.assert_close(cut[:, 1], torch.full((3, 64, 64), 0.5))


def gradient_image(h: int, w: int) -> torch.Tensor:
    y = torch.linspace(0, 1, h)[:, None].expand(h, w)
    x = torch.linspace(0, 1, w)[None, :].expand(h, w)
    return torch.stack([x, y, (x + y) / 2])[None]


def reference(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """pixray's crop then (adaptive average + adaptive max) / 2."""
    y0, x0, y1, x1 = box
    crop = image[:, :, y0:y1, x0:x1]
    return (F.adaptive_avg_pool2d(crop, size) + F.adaptive_max_pool2d(crop, size)) / 2


def test_cutouts_of_a_gradient_match_a_reference_crop_and_resize():
    image = gradient_image(300, 400)
    exact = [(0, 0, 256, 256), (44, 100, 172, 228), (100, 272, 164, 400)]  # whole multiples of 64
    cut = make_cutouts(image, torch.tensor(exact, dtype=torch.float32), 64)
    for i, box in enumerate(exact):
        torch.testing.assert_close(cut[i : i + 1], reference(image, box, 64), atol=1e-5, rtol=0)
    # Other sizes, shrinking and enlarging: the same up to where bin edges fall, under a pixel's step.
    other = [(3, 5, 203, 205), (60, 30, 100, 70), (17, 250, 290, 390)]
    cut = make_cutouts(image, torch.tensor(other, dtype=torch.float32), 64)
    step = 1 / 299
    for i, box in enumerate(other):
        torch.testing.assert_close(cut[i : i + 1], reference(image, box, 64), atol=1.5 * step, rtol=0)


@pytest.mark.parametrize("box", [(101, 61, 179, 139), (120.5, 80.25, 140.5, 100.25)], ids=["shrink", "enlarge"])
def test_a_box_on_a_single_colour_patch_gives_that_colour(box):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 256, 256)  # noise around the patch would show through any leak
    colour = torch.tensor([0.9, 0.2, 0.4])
    image[0, :, 100:180, 60:140] = colour[:, None, None]
    cut = make_cutouts(image, torch.tensor([box]), 64)
    torch.testing.assert_close(cut, colour[None, :, None, None].expand(1, 3, 64, 64))


def test_gradients_reach_the_image_only_inside_the_boxes():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 160, 200, requires_grad=True)
    boxes = torch.tensor([[10.0, 20.0, 74.0, 84.0], [90.5, 100.25, 150.0, 159.75], [40.0, 150.0, 60.0, 170.0]])
    cut = make_cutouts(image, boxes, 32)
    (cut * torch.randn_like(cut)).sum().backward()
    touched = image.grad.abs().sum(1)[0] > 0
    # Bilinear sampling near a fractional edge reads the neighbouring pixel: allow one pixel around each box.
    allowed = torch.zeros_like(touched)
    for y0, x0, y1, x1 in boxes.tolist():
        allowed[max(int(y0) - 1, 0) : int(y1) + 2, max(int(x0) - 1, 0) : int(x1) + 2] = True
    assert not (touched & ~allowed).any()
    assert touched[10:74, 20:84].all()  # a box shrunk by a whole factor averages every pixel in it
    assert touched[91:149, 101:159].float().mean() > 0.9


def test_the_cpu_crop_is_roi_align_in_values_and_gradients():
    """On the CPU the average crop is two matrix products per box; it must be torchvision's roi_align (aligned,
    adaptive sampling) to float rounding: shrinking and enlarging, boxes past the image's edges, empty boxes."""
    torch.manual_seed(0)
    image = torch.rand(1, 3, 90, 130, requires_grad=True)
    boxes = torch.tensor(
        [
            [0.0, 0.0, 90.0, 130.0],  # the whole image, shrunk
            [10.3, 20.7, 33.1, 43.5],  # enlarged, fractional
            [-4.0, 100.0, 40.0, 140.0],  # past the top and right edges
            [89.0, 129.0, 90.0, 130.0],  # the last pixel
            [5.0, 5.0, 5.0, 30.0],  # no height
            [0.0, 0.0, 64.0, 128.0],  # exactly two and four pixels per cell
            [95.0, 10.0, 120.0, 30.0],  # wholly below the image: reads nothing
        ]
    )
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes[:, [1, 0, 3, 2]]], 1)
    expected = roi_align(image, rois, 32, aligned=True)
    actual = _SeparableRoiAverage.apply(image, boxes, 32)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)
    grad = torch.randn_like(expected)
    (want,) = torch.autograd.grad(expected, image, grad)
    (got,) = torch.autograd.grad(actual, image, grad)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- the whole step


def regions(h: int = 128, w: int = 160) -> torch.Tensor:
    weights = torch.zeros(3, 1, h, w)
    weights[0, :, : h // 2] = 1
    weights[1, :, h // 2 :, : w // 3] = 1
    weights[2, :, h // 2 + 10 : h - 10, w // 2 : w - 10] = 0.5
    return weights


def test_cutout_count_is_the_allocated_total_and_regions_follow_it():
    weights = regions()
    image = torch.rand(1, 3, 128, 160)
    cutouts = RegionCutouts(48, total=20, minimum=3, augment=False)
    cut = cutouts(image, weights, torch.Generator().manual_seed(0))
    expected = allocate_cutouts(weights.sum((1, 2, 3)).tolist(), 20, 3)
    assert cut.pixels.shape == (sum(expected), 3, 48, 48)
    assert torch.bincount(cut.region, minlength=3).tolist() == expected
    assert cut.weights.shape == (sum(expected),) and cut.boxes.shape == (sum(expected), 4)
    # Under the minimum per region, everyone gets the minimum.
    small = RegionCutouts(48, total=4, minimum=3, augment=False)(image, weights, torch.Generator().manual_seed(0))
    assert small.pixels.shape[0] == 9


def test_regions_without_pixels_get_no_cutouts():
    weights = regions()
    weights[1] = 0
    cut = RegionCutouts(32, 12, 2)(torch.rand(1, 3, 128, 160), weights, torch.Generator().manual_seed(0))
    assert 1 not in cut.region.tolist() and cut.pixels.shape[0] == 12
    empty = RegionCutouts(32, 12, 2)(torch.rand(1, 3, 128, 160), weights * 0, torch.Generator().manual_seed(0))
    assert empty.pixels.shape == (0, 3, 32, 32) and empty.region.shape == (0,)


def test_same_seed_same_cutouts_other_seed_other_cutouts():
    weights = regions()
    image = torch.rand(1, 3, 128, 160)
    state = torch.get_rng_state()

    def run(seed: int):
        generator = torch.Generator().manual_seed(seed)
        cutouts = RegionCutouts(32, 12, 2, cut_pow=1.5)
        return cutouts(image, weights, generator), cutouts(image, weights, generator)

    (a1, a2), (b1, _), (c1, _) = run(7), run(7), run(8)
    for field in ("pixels", "region", "weights", "boxes"):
        assert torch.equal(getattr(a1, field), getattr(b1, field))
    assert not torch.equal(a1.boxes, c1.boxes) and not torch.equal(a1.pixels, c1.pixels)
    assert not torch.equal(a1.boxes, a2.boxes)  # the generator moves on from step to step
    assert torch.equal(torch.get_rng_state(), state)  # torch's global RNG is left alone
    # The same boxes with and without augmentation: switching augmentation off changes only the pixels.
    plain = RegionCutouts(32, 12, 2, cut_pow=1.5, augment=False)(image, weights, torch.Generator().manual_seed(7))
    assert torch.equal(plain.boxes, a1.boxes)


def test_upload_keeps_every_shape_and_dtype():
    tensors = [torch.rand(5, 4), torch.arange(5), torch.rand(5, 1, 1, 1).double()]
    for device in (torch.device("cpu"), torch.device("meta")):  # meta takes the one-copy path of a GPU
        moved = upload(tensors, device)
        assert [(t.shape, t.dtype, t.device.type) for t in moved] == [(t.shape, t.dtype, device.type) for t in tensors]


def test_the_planner_is_built_once_per_mask_tensor():
    weights = regions()
    cutouts = RegionCutouts(32, 12, 2)
    assert cutouts.planner(weights) is cutouts.planner(weights)
    assert cutouts.planner(weights.clone()) is not cutouts.planner(weights)


def test_augmentations_change_pixels_but_keep_shape_and_range():
    torch.manual_seed(0)
    image = F.interpolate(torch.rand(1, 3, 16, 16), size=(256, 256), mode="bilinear")
    weights = torch.ones(1, 1, 256, 256)
    plain = RegionCutouts(64, 16, 1, augment=False)(image, weights, torch.Generator().manual_seed(1))
    varied = RegionCutouts(64, 16, 1, augment=True)(image, weights, torch.Generator().manual_seed(1))
    assert varied.pixels.shape == plain.pixels.shape
    change = (varied.pixels - plain.pixels).abs().mean((1, 2, 3))
    assert (change > 0.01).float().mean() > 0.8  # nearly every cutout is changed
    assert varied.pixels.min() > -0.6 and varied.pixels.max() < 1.6
    assert (varied.pixels.mean() - plain.pixels.mean()).abs() < 0.05


def test_augmentation_switched_off_piece_by_piece_is_the_identity():
    pixels = torch.rand(8, 3, 40, 40)
    still = CutoutAugment(p_perspective=0, p_affine=0, p_colour=0, noise=0)
    torch.testing.assert_close(still(pixels, torch.Generator().manual_seed(0)), pixels, atol=1e-5, rtol=0)
    # Hue turns about the grey axis and saturation pulls towards grey: grey stays grey, wherever it moves.
    grey = torch.full((8, 3, 40, 40), 0.3)
    colour_only = CutoutAugment(noise=0, hue=0.5, saturation=0.5, p_colour=1)
    torch.testing.assert_close(colour_only(grey, torch.Generator().manual_seed(0)), grey, atol=1e-5, rtol=0)


def test_gradients_flow_through_the_augmentations():
    image = torch.rand(1, 3, 96, 96, requires_grad=True)
    cut = RegionCutouts(32, 8, 1)(image, torch.ones(1, 1, 96, 96), torch.Generator().manual_seed(0))
    cut.pixels.square().sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0 and torch.isfinite(image.grad).all()


def test_timing_32_cutouts_of_224_from_512():
    """Not a limit on speed (CI machines vary): it prints the figure and guards against a gross slowdown."""
    torch.manual_seed(0)
    image = torch.rand(1, 3, 512, 512, requires_grad=True)
    weights = torch.zeros(2, 1, 512, 512)
    weights[0, :, :300] = 1
    weights[1, :, 300:, 100:400] = 1
    generator = torch.Generator().manual_seed(0)
    for augment in (False, True):
        cutouts = RegionCutouts(224, 32, 4, augment=augment)
        cutouts(image, weights, generator)  # builds the planner
        start = time.perf_counter()
        cut = cutouts(image, weights, generator)
        forward = time.perf_counter() - start
        cut.pixels.sum().backward()
        backward = time.perf_counter() - start - forward
        print(
            f"\n32 cutouts of 224 from 512x512, augment={augment}: {forward * 1e3:.0f} ms forward, "
            f"{backward * 1e3:.0f} ms backward ({torch.get_num_threads()} CPU thread)"
        )
        assert cut.pixels.shape == (32, 3, 224, 224)
        assert forward < 10.0
