"""`tileable`: the canvas is a torus, so the result repeats without a seam, whatever the generator.

The seam statistic: in the result placed 2x2, the mean absolute difference across the wrap (column W-1 beside
column 0, row H-1 beside row 0) against the same difference for every interior pair of neighbouring columns (rows).
Without tiling a job whose smoothness loss and texture know no wrap leaves a seam many times the interior's; with it
the wrap is one more interior pair. The pieces are checked directly too: tv, cutouts, filters, features, feathered
masks, and the diffusion models' padding (circular during the job, back after it, however it ends).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import golden_jobs
import jobkit
import numpy as np
import pytest
import torch
from skimage import data

from engine.cutout_augment import AugmentParams, CutoutAugment
from engine.cutout_crops import make_cutouts
from engine.cutouts import CutoutPlanner
from engine.diffusion.loading import load_diffusion
from engine.diffusion.memory import apply_memory_savers
from engine.diffusion.tiling import circular_padding, padded_convs
from engine.errors import JobCancelled
from engine.execute import execute
from engine.features import RandomFeatureNet
from engine.filters import gaussian_blur, sobel_magnitude
from engine.guides.base import StepContext
from engine.guides.image_losses import TotalVariationTerm
from engine.masks import build_layout, feather_outward
from engine.progress import CancelToken
from engine.refs import FolderSource
from engine.spec import json_schema, validate_spec

CPU = torch.device("cpu")
SIZE, STEPS = 64, 30
TINY_SD = {"diffusion": {"weights": "random:tiny-sd"}}
SEAM_LIMIT = 1.5  # the wrap's difference over the interior median, with tiling
SEAM_WITHOUT = 4.0  # at least this without tiling, where the job makes a seam


# ---- the seam statistic ------------------------------------------------------------------------------------------


def seam_ratios(image: np.ndarray) -> dict[str, float]:
    """Per axis, the mean absolute difference across the wrap of the image tiled 2x2, over the median of the
    interior pairs' (columns: W-1 beside 0; rows: H-1 beside 0)."""
    tiled = np.tile(image.astype(np.float64), (2, 2, 1))
    height, width = image.shape[:2]
    ratios = {}
    for axis, name, size in ((1, "columns", width), (0, "rows", height)):
        pairs = np.abs(np.diff(tiled, axis=axis)).mean(axis=(1 - axis, 2))  # pair i: lines i and i + 1
        wrap = pairs[size - 1]  # the last line of the first copy beside the first line of the second
        interior = np.concatenate([pairs[: size - 1], pairs[size : 2 * size - 1]])
        ratios[name] = float(wrap / np.median(interior))
    return ratios


def test_the_seam_statistic_finds_a_seam_and_only_a_seam():
    rng = np.random.default_rng(0)
    periodic = np.tile(rng.uniform(0, 255, (8, 8, 3)), (4, 4, 1))  # one 8x8 tile, 32x32: no seam
    assert max(seam_ratios(periodic).values()) <= SEAM_LIMIT
    ramp = np.broadcast_to(np.linspace(0, 255, 32)[None, :, None], (32, 32, 3))  # its wrap jumps 255 at once
    assert seam_ratios(ramp + rng.uniform(0, 8, (32, 32, 3)))["columns"] > SEAM_WITHOUT


# ---- whole jobs ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tileable")
    jobkit.save(folder / "gravel.png", jobkit.resized(jobkit.tint(data.gravel(), (0.7, 0.6, 0.5)), 96))
    return folder


def run(folder: Path, spec: dict[str, Any], **kwargs: Any) -> np.ndarray:
    return execute(validate_spec(spec), FolderSource(folder), CPU, **kwargs).image


def texture_job(generator: str, tileable: bool) -> dict[str, Any]:
    """A gravel texture kept smooth: plain tv smooths every neighbour pair but the wrap's, so without tiling the
    edges are left apart."""
    guides = [{"kind": "style", "image": "gravel.png"}]
    return jobkit.spec(SIZE, STEPS, generator={"kind": generator}, guides=guides, losses={"tv": 1.0}, tileable=tileable)


@pytest.mark.parametrize("generator", ["pixels", "fourier"])
def test_a_tileable_texture_has_no_seam_and_an_untiled_one_has(folder, generator):
    tiled = seam_ratios(run(folder, texture_job(generator, True)))
    untiled = seam_ratios(run(folder, texture_job(generator, False)))
    print(f"{generator}: seam ratio tileable {tiled}, not tileable {untiled}")
    assert max(tiled.values()) <= SEAM_LIMIT, tiled
    assert min(untiled.values()) >= SEAM_WITHOUT, untiled


def conv_modes(weights: str = "random:tiny-sd") -> set[str]:
    bundle = load_diffusion(weights, CPU)
    return {conv.padding_mode for conv in padded_convs([bundle.unet, bundle.vae])}


def diffusion_job(tileable: bool, steps: int = 6) -> dict[str, Any]:
    guides = [{"kind": "text", "prompt": "gravel"}]
    return jobkit.spec(SIZE, steps, generator={"kind": "diffusion"}, models=TINY_SD, guides=guides, tileable=tileable)


def test_the_diffusion_generator_pads_circularly_during_a_tileable_job_only(folder):
    seen: list[set[str]] = []
    image = run(folder, diffusion_job(True), on_progress=lambda progress: seen.append(conv_modes()))
    ratios = seam_ratios(image)
    print(f"diffusion: seam ratio tileable {ratios}")
    assert max(ratios.values()) <= SEAM_LIMIT, ratios
    assert seen and all(modes == {"circular"} for modes in seen)
    assert conv_modes() == {"zeros"}  # the cached model, as the next job gets it
    seen.clear()
    run(folder, diffusion_job(False, steps=2), on_progress=lambda progress: seen.append(conv_modes()))
    assert seen and all(modes == {"zeros"} for modes in seen)


def test_a_cancelled_tileable_diffusion_job_gives_the_padding_back(folder):
    cancel = CancelToken()
    with pytest.raises(JobCancelled):
        run(folder, diffusion_job(True), on_progress=lambda progress: cancel.cancel(), cancel=cancel)
    assert conv_modes() == {"zeros"}


def test_a_tileable_vae_decodes_rolled_latents_to_the_rolled_image():
    """With every padded convolution circular (as in a tileable job) the decoder has no edge: moving the latents
    round the torus moves the image with them, exactly; with zero padding the edges differ."""
    vae = load_diffusion("random:tiny-sd", CPU).vae
    latents = torch.randn(1, vae.config.latent_channels, 8, 8, generator=torch.Generator().manual_seed(0))

    def mismatch() -> float:
        with torch.no_grad():
            moved = vae.decode(latents.roll((3, 5), (-2, -1))).sample
            image = vae.decode(latents).sample
        factor = image.shape[-1] // latents.shape[-1]
        return float((moved - image.roll((3 * factor, 5 * factor), (-2, -1))).abs().max())

    with circular_padding([vae]):
        assert mismatch() < 1e-4
    assert mismatch() > 1e-2


def test_every_guide_kind_and_mode_runs_on_a_tileable_canvas(tmp_path):
    """The golden jobs (every guide kind, region mode and optimised generator, CLIP cutouts included), tileable."""
    golden_jobs._images(tmp_path)
    for name, spec in golden_jobs.jobs().items():
        image = run(tmp_path, {**spec, "steps": 2, "tileable": True})
        assert image.shape == (golden_jobs.SIZE, golden_jobs.SIZE, 3), name


def test_a_tileable_canvas_is_never_decoded_in_tiles(monkeypatch):
    """VAE tiling decodes tiles apart, each of which would wrap round on itself: a tileable job on a card short of
    memory decodes whole."""
    bundle = load_diffusion("random:tiny-sd", CPU)
    card = copy.copy(bundle)  # its own models: the savers change the ones they are given
    card.device, card.unet, card.vae = torch.device("cuda"), copy.deepcopy(bundle.unet), copy.deepcopy(bundle.vae)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1 << 30, 8 << 30))
    assert apply_memory_savers(card, 2048, 2048).vae_tiling
    plan = apply_memory_savers(card, 2048, 2048, tileable=True)
    assert not plan.vae_tiling and not card.vae.use_tiling and "tileable" in plan.reason


# ---- the pieces ---------------------------------------------------------------------------------------------------


def tv(image: torch.Tensor, tileable: bool) -> float:
    layout = build_layout(image.shape[-2], image.shape[-1], [], False, CPU)
    return float(TotalVariationTerm("tv", 1.0).raw(StepContext(image, layout, None, tileable=tileable)))


def test_tv_of_a_tileable_canvas_counts_the_wrap():
    half = torch.zeros(1, 3, 16, 16)
    half[..., 8:] = 1.0  # one edge inside; on the torus a second one where the right edge meets the left
    # twice the plain loss, less the mean's 16 pairs a row for 15
    assert tv(half, True) == pytest.approx(2 * tv(half, False) * 15 / 16, rel=1e-6)
    noise = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    plain = {tv(noise.roll((dy, dx), (-2, -1)), False) for dy, dx in ((0, 0), (5, 0), (0, 7))}
    on_torus = [tv(noise.roll((dy, dx), (-2, -1)), True) for dy, dx in ((0, 0), (5, 0), (0, 7))]
    assert len(plain) == 3  # the plain loss sees where the canvas is cut
    assert on_torus == pytest.approx([on_torus[0]] * 3, rel=1e-6)  # the torus's has no cut


def test_a_cutout_across_the_edge_wraps():
    image = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    across = torch.tensor([[40.0, 50.0, 70.0, 80.0]])  # past the bottom and the right edge
    inside = torch.tensor([[10.0, 10.0, 40.0, 40.0]])  # the same box on the image moved up 30 and left 40
    wrapped = make_cutouts(image, across, 24, wrap=True)
    torch.testing.assert_close(wrapped, make_cutouts(image.roll((-30, -40), (-2, -1)), inside, 24))


def test_tileable_cutouts_cross_the_edges_of_a_whole_canvas_region():
    weights = torch.ones(1, 1, 64, 64)
    generator = torch.Generator().manual_seed(0)
    boxes = CutoutPlanner(weights, total=200, minimum=1, wrap=True).sample(generator).boxes
    assert ((boxes[:, :2] >= 0) & (boxes[:, :2] < 64)).all()  # every box starts on the canvas
    assert (boxes[:, 2:] > 64).any(0).all()  # some run past the bottom, some past the right edge
    plain = CutoutPlanner(weights, total=200, minimum=1).sample(torch.Generator().manual_seed(0)).boxes
    assert (plain[:, 2:] <= 64 + 1e-4).all()


def test_tileable_augmentations_wrap_where_they_would_mirror():
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    shift = torch.eye(3).repeat(2, 1, 1)
    shift[:, 0, 2] = -2 * 3 / 16  # every output pixel reads the one 3 to its left
    still = AugmentParams(shift, torch.eye(3).repeat(2, 1, 1), torch.zeros(2, 1, 1, 1), seed=0)
    moved = CutoutAugment(wrap=True).apply(pixels, still)
    torch.testing.assert_close(moved, pixels.roll(3, -1), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "apply",
    [
        lambda image, circular: gaussian_blur(image, 2.0, circular),
        lambda image, circular: sobel_magnitude(image[:, :1], circular=circular),
        lambda image, circular: RandomFeatureNet()(image, circular)[2],
    ],
    ids=["blur", "sobel", "features"],
)
def test_tileable_filters_and_features_have_no_edge(apply):
    """On the torus a filter commutes with moving the image round it; with edge padding it does not."""
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    step = 8  # a multiple of the feature net's strides

    def mismatch(circular: bool) -> float:
        moved = apply(image.roll((step, -step), (-2, -1)), circular)
        stride = image.shape[-1] // moved.shape[-1]
        return float((moved - apply(image, circular).roll((step // stride, -step // stride), (-2, -1))).abs().max())

    assert mismatch(True) < 1e-5
    assert mismatch(False) > 1e-3


def test_a_mask_feathers_across_the_wrap():
    mask = np.zeros((16, 32), np.float32)
    mask[:, :4] = 1.0  # at the left edge
    assert feather_outward(mask, 6.0, wrap=True)[:, -2:].min() > 0.1  # reaches round to the right edge
    assert feather_outward(mask, 6.0)[:, -2:].max() == 0.0


def test_tileable_is_off_by_default_and_in_the_schema():
    assert validate_spec(jobkit.spec()).tileable is False
    assert validate_spec(jobkit.spec(tileable=True)).tileable is True
    assert json_schema()["properties"]["tileable"]["type"] == "boolean"
