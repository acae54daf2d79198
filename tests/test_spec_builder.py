"""addon/spec_builder.py and its pure helpers (pixels, region_maps, naming), without Blender.

The built spec must pass the engine's own validation, its blobs must decode to the masks and images given, and
every user mistake must be an InputError naming the region/guide, the value and what is allowed.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from regia.addon import naming, pixels, region_maps
from regia.addon.spec_builder import GuideInput, InputError, JobInput, RegionInput, build_job, parse_palette

from engine.spec import validate_spec

H, W = 48, 64


def _target() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.ones((H, W, 4), dtype=np.float32)
    image[..., :3] = rng.random((H, W, 3))
    return image


def _box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def _decode(built, ref: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(built.blobs[ref.removeprefix("blob:")])))


def _job(**fields) -> JobInput:
    style = np.zeros((20, 30, 4), dtype=np.float32)
    style[..., 0] = style[..., 3] = 1.0
    regions = [
        RegionInput("sky", _box(0, 0, W, 20), feather=3.0, guides=[GuideInput("STYLE", 0.5, image=style)]),
        RegionInput("face", _box(20, 20, 40, 40), mode="keep"),
        RegionInput("suit", _box(0, 40, W, H), mode="embolden", strength=2.0),
    ]
    base = dict(
        target_name="astronaut",
        target=_target(),
        regions=regions,
        guides=[GuideInput("PALETTE", colors="#223344, ddcc88")],
        steps=12,
        seed=7,
        preset="watercolour",
    )
    return JobInput(**{**base, **fields})


def test_built_spec_passes_the_engines_validation_and_its_blobs_hold_the_pixels() -> None:
    job = _job()
    built = build_job(job)
    spec = validate_spec(json.loads(json.dumps(built.spec)))
    assert (spec.width, spec.height, spec.steps, spec.seed, spec.preset) == (W, H, 12, 7, "watercolour")
    assert [r.name for r in spec.regions] == ["sky", "face", "suit"]
    assert [r.mode for r in spec.regions] == ["edit", "keep", "embolden"]
    assert spec.regions[0].feather == 3.0 and spec.regions[2].strength == 2.0
    assert spec.guides[0].colors == ["#223344", "#ddcc88"]
    for _, ref in spec.image_refs():
        assert ref.removeprefix("blob:") in built.blobs
    np.testing.assert_array_equal(_decode(built, spec.regions[1].mask) > 127, job.regions[1].mask > 0.5)
    init = _decode(built, spec.init.image)
    assert init.shape == (H, W, 3)
    assert np.abs(init.astype(np.float32) / 255 - job.target[..., :3]).max() <= 0.5 / 255 + 1e-6


def test_keep_region_guides_stay_out_of_the_spec() -> None:
    job = _job()
    job.regions[1].guides = [GuideInput("PALETTE", colors="#ffffff")]
    spec = build_job(job).spec
    assert "guides" not in spec["regions"][1]
    validate_spec(spec)


def test_scale_resizes_canvas_masks_and_init() -> None:
    built = build_job(_job(scale=0.5))
    assert (built.width, built.height) == (W // 2, H // 2)
    assert _decode(built, built.spec["regions"][0]["mask"]).shape == (H // 2, W // 2)
    assert _decode(built, built.spec["init"]["image"]).shape == (H // 2, W // 2, 3)


def test_text_and_negative_text_become_signed_text_guides() -> None:
    job = _job(guides=[GuideInput("TEXT", 0.8, text=" a red sky "), GuideInput("NEGATIVE_TEXT", 0.5, text="clouds")])
    guides = build_job(job).spec["guides"]
    assert guides == [
        {"kind": "text", "prompt": "a red sky", "weight": 0.8},
        {"kind": "text", "prompt": "clouds", "weight": -0.5},
    ]


def test_a_clip_model_goes_into_the_spec_with_its_weights() -> None:
    spec = build_job(_job(clip_model="ViT-B-32", clip_weights="laion2b_s34b_b79k")).spec
    assert spec["models"] == {"clip": {"name": "ViT-B-32", "weights": "laion2b_s34b_b79k"}}
    assert "models" not in build_job(_job()).spec


def test_tileable_goes_into_the_spec_only_when_asked() -> None:
    spec = build_job(_job(tileable=True)).spec
    assert spec["tileable"] is True and validate_spec(spec).tileable
    assert "tileable" not in build_job(_job()).spec  # an untiled job's spec is what it was before the option


def test_no_regions_means_one_edit_region_over_the_whole_image() -> None:
    built = build_job(_job(regions=[]))
    (region,) = built.spec["regions"]
    assert region["mode"] == "edit" and _decode(built, region["mask"]).min() == 255


def test_duplicate_region_names_get_suffixes() -> None:
    job = _job(regions=[RegionInput("a", _box(0, 0, 10, 10)), RegionInput("a", _box(10, 10, 20, 20))])
    assert [r["name"] for r in build_job(job).spec["regions"]] == ["a", "a.001"]


def test_identical_inputs_share_one_blob() -> None:
    job = _job(regions=[RegionInput("a", _box(0, 0, 10, 10)), RegionInput("b", _box(0, 0, 10, 10))])
    spec = build_job(job).spec
    assert spec["regions"][0]["mask"] == spec["regions"][1]["mask"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda j: j.regions.__setitem__(0, RegionInput("sky", np.zeros((H, W)))),
            "region 'sky' mask: the mask is empty",
        ),
        (lambda j: j.regions.__setitem__(0, RegionInput("sky", np.ones((10, 10)))), "(got '10x10'); allowed: 64x48"),
        (
            lambda j: j.regions[0].guides.append(GuideInput("SCRIBBLE", image=np.zeros((5, 5, 4)), image_name="s")),
            "region 'sky' guides[1] (scribble): image 's' is not the target image's size (got '5x5')",
        ),
        (lambda j: j.regions[0].guides.append(GuideInput("STYLE")), "guides[1] (style): no image is set"),
        (lambda j: j.guides.append(GuideInput("TEXT", text="  ")), "guides[1] (text): the text is empty"),
        (lambda j: j.guides.append(GuideInput("PALETTE", colors="#12345g")), "not a colour (got '#12345g')"),
        (lambda j: setattr(j, "use_init", False), "region 'face' mode: keep needs the target image"),
        (lambda j: setattr(j, "scale", 0.1), "scale: the canvas would be 6x5 pixels"),
        (
            lambda j: setattr(j, "generator", "vqgan"),
            "generator: unknown choice (got 'vqgan'); allowed: pixels, fourier",
        ),
        (
            lambda j: setattr(j, "clip_model", "ViT-B-32"),
            "CLIP weights: no weights are set for the CLIP model ViT-B-32",
        ),
    ],
)
def test_mistakes_name_where_they_are_the_value_and_what_is_allowed(change, expected: str) -> None:
    job = _job()
    change(job)
    with pytest.raises(InputError) as error:
        build_job(job)
    assert expected in str(error.value)


def test_palette_parsing() -> None:
    assert parse_palette("#AABBCC ddeeff;#000000") == ["#aabbcc", "#ddeeff", "#000000"]
    with pytest.raises(InputError, match="the palette is empty"):
        parse_palette(" , ")


# ---- pixels ----------------------------------------------------------------------------------------------


def test_blender_layout_round_trips_and_flips_rows() -> None:
    image = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    flat = pixels.to_blender(image)
    assert flat[:12].tolist() == image[1].ravel().tolist()  # Blender's first row is the bottom one
    np.testing.assert_array_equal(pixels.from_blender(flat, 3, 2), image)


def test_resize_keeps_the_mean_when_shrinking_and_constants_when_growing() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((64, 96, 3)).astype(np.float32)
    small = pixels.resize(image, 32, 16)
    assert small.shape == (16, 32, 3)
    np.testing.assert_allclose(small.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=1e-4)
    np.testing.assert_allclose(small[0, 0], image[:4, :3].mean(axis=(0, 1)), atol=1e-5)  # a 4x3 box average
    np.testing.assert_allclose(pixels.resize(np.full((4, 4), 0.25), 9, 7), 0.25, atol=1e-6)


def test_linear_to_srgb_matches_the_standard() -> None:
    np.testing.assert_allclose(
        pixels.linear_to_srgb(np.array([0.0, 0.002, 0.18, 1.0])), [0, 0.02584, 0.46135, 1], atol=1e-4
    )


# ---- region maps -------------------------------------------------------------------------------------------


def test_paint_mask_is_luminance_times_alpha_and_inverts() -> None:
    image = np.zeros((2, 2, 4), dtype=np.float32)
    image[0, 0] = (1, 1, 1, 1)
    image[0, 1] = (0.5, 0.5, 0.5, 1)
    image[1, 0] = (1, 1, 1, 0)
    mask = region_maps.paint_mask(image)
    np.testing.assert_allclose(mask, [[1, 0.5], [0, 0]], atol=1e-6)
    np.testing.assert_allclose(region_maps.paint_mask(image, invert=True), 1 - mask)


def test_color_keys_split_one_painting_into_regions() -> None:
    image = np.zeros((4, 6, 4), dtype=np.float32)
    image[:, :3] = (1, 0, 0, 1)
    image[:, 3:] = (0, 0.95, 0.05, 1)  # a slightly-off green still keys as green
    image[0, 0, 3] = 0  # transparent is nobody's
    red = region_maps.color_key_mask(image, (1, 0, 0))
    green = region_maps.color_key_mask(image, (0, 1, 0))
    assert red[:, :3].sum() == 11 and red[:, 3:].sum() == 0
    assert green[:, 3:].all() and not green[:, :3].any()
    assert region_maps.distinct_colors(image) == [(0.0, 242 / 255, 13 / 255), (1.0, 0.0, 0.0)]  # most common first


def test_empty_means_below_one_8bit_level() -> None:
    assert region_maps.is_empty(np.full((4, 4), 0.001))
    assert not region_maps.is_empty(np.full((4, 4), 0.01))


# ---- naming ------------------------------------------------------------------------------------------------


def test_result_names_count_up_past_the_highest_and_fit_blender_names() -> None:
    assert naming.next_result_name("cat", []) == "cat.regia.001"
    assert naming.next_result_name("cat", ["cat.regia.001", "cat.regia.007", "dog.regia.009"]) == "cat.regia.008"
    long = "é" * 40
    name = naming.next_result_name(long, [])
    assert len(name.encode()) <= 63 and name.endswith(".regia.001")
    assert naming.next_result_name(long, [name]).endswith(".regia.002")
