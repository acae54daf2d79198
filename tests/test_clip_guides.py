"""CLIP guidance per region (engine/guides/clip.py), with the tiny open_clip config and explicit random weights.

Random weights give a real, differentiable CLIP-shaped model: losses, gradients, cutout placement and the one
batched forward per step are all testable without downloading anything.
"""

from __future__ import annotations

from pathlib import Path

import jobkit
import numpy as np
import pytest
import torch

from engine.guides.clip import ClipTerm, spherical_distance
from engine.models import load_clip
from engine.optimize import run

TINY = {"name": "regia-tiny", "weights": "random"}
SIZE = 64


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clip")
    jobkit.save(root / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(root / "coffee.png", jobkit.coffee(96))
    for i, mask in enumerate(jobkit.column_masks(SIZE, 4)):
        jobkit.save(root / f"col{i}.png", mask)
    jobkit.save(root / "left.png", jobkit.rect_mask(SIZE, 0, 0, SIZE, SIZE // 2))
    jobkit.save(root / "box.png", jobkit.rect_mask(SIZE, 8, 8, 28, 28))
    return root


def _text(prompt: str, weight: float = 1.0) -> dict:
    return {"kind": "text", "prompt": prompt, "weight": weight}


def _spec(steps: int = 20, **fields) -> dict:
    base = {"models": {"clip": TINY}, "cutouts": {"count": 16, "min_per_region": 2}, "init": {"image": "init.png"}}
    return jobkit.spec(SIZE, steps, **{**base, **fields})


def _similarity(job, image: torch.Tensor, prompt: str) -> float:
    """Mean cosine similarity of the image's cutouts to a prompt, with a fixed sampler (independent of the job)."""
    bundle = job.clip_bank.bundle
    with torch.no_grad():
        target = bundle.encode_texts([prompt])[0]
        cut = job.clip_bank.cutouts(image, torch.ones_like(image[:, :1]), torch.Generator().manual_seed(99))
        return float((bundle.encode_images(cut.pixels) @ target).mean())


def test_text_loss_falls(folder: Path) -> None:
    spec = _spec(30, regions=[{"name": "left", "mask": "left.png", "guides": [_text("a red fox in the snow")]}])
    result = jobkit.run_job(folder, spec)
    assert jobkit.drop(result, "left/text.0") < 0.9


def test_negative_text_similarity_falls(folder: Path) -> None:
    prompt = "a dark stormy sea"
    spec = _spec(30, guides=[_text(prompt, -1.0)])
    job = jobkit.prepare(folder, spec)
    before = _similarity(job, job.render().detach(), prompt)
    run(job)
    after = _similarity(job, job.render().detach(), prompt)
    assert after < before - 1e-3, (before, after)


def test_one_clip_forward_per_step_whatever_the_number_of_regions(folder: Path) -> None:
    steps = 4
    counts = []
    for parts in (1, 4):
        regions = [{"name": f"c{i}", "mask": f"col{i}.png", "guides": [_text(f"colour {i}")]} for i in range(parts)]
        job = jobkit.prepare(folder, _spec(steps, regions=regions))
        bundle = job.clip_bank.bundle
        start = bundle.image_forwards
        run(job)
        counts.append(bundle.image_forwards - start)
    # One per step, plus one for the noise image that sets the loss scale.
    assert counts == [steps + 1, steps + 1]


def test_all_regions_cutouts_share_the_budget(folder: Path) -> None:
    regions = [{"name": f"c{i}", "mask": f"col{i}.png", "guides": [_text("x")]} for i in range(4)]
    job = jobkit.prepare(folder, _spec(1, regions=regions, cutouts={"count": 24, "min_per_region": 2}))
    cut = job.clip_bank.cutouts(job.render(), job.clip_bank.weights, torch.Generator().manual_seed(0))
    assert cut.pixels.shape[0] == 24
    assert torch.bincount(cut.region, minlength=4).tolist() == [6, 6, 6, 6]  # equal areas, equal shares


def test_clip_gradient_stays_inside_its_region_bounds(folder: Path) -> None:
    spec = _spec(1, regions=[{"name": "box", "mask": "box.png", "guides": [_text("a blue square")]}])
    job = jobkit.prepare(folder, spec)
    image = job.render().detach().requires_grad_(True)
    ctx = job.context(image)
    (term,) = [t for t in job.terms if isinstance(t, ClipTerm)]
    term.raw(ctx).backward()
    grad = image.grad.abs().sum(1)[0]
    near = torch.zeros_like(grad, dtype=torch.bool)
    near[7:29, 7:29] = True  # the box 8..28, plus the one-pixel reach of bilinear sampling at its edges
    assert grad[8:28, 8:28].sum() > 0
    assert grad[~near].sum() == 0


def test_inspiration_image_is_closer_to_itself_than_noise_is(folder: Path) -> None:
    spec = _spec(1, guides=[{"kind": "image", "image": "coffee.png", "weight": 1.0}])
    job = jobkit.prepare(folder, spec)
    (term,) = [t for t in job.terms if isinstance(t, ClipTerm)]
    coffee = torch.from_numpy(jobkit.coffee(SIZE).astype(np.float32) / 255).permute(2, 0, 1)[None]
    noise = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert term.raw(job.context(coffee)) < term.raw(job.context(noise))


def test_preset_style_prompt_and_negative_apply_to_every_edit_region(folder: Path) -> None:
    regions = [{"name": f"c{i}", "mask": f"col{i}.png"} for i in range(2)]
    job = jobkit.prepare(folder, _spec(1, preset="watercolour", regions=regions, guides=[_text("a fox")]))
    clip_keys = sorted(t.key for t in job.terms if isinstance(t, ClipTerm))
    assert clip_keys == sorted(f"c{i}/text.g{g}" for i in range(2) for g in (0, 2, 3))
    weights = {t.key: t.weight for t in job.terms if isinstance(t, ClipTerm)}
    assert weights["c0/text.g3"] < 0 < weights["c0/text.g2"]  # the preset's negative text repels


def test_embolden_pushes_along_the_regions_own_clip_direction(folder: Path) -> None:
    spec = _spec(1, regions=[{"name": "box", "mask": "box.png", "mode": "embolden", "strength": 1.0}])
    job = jobkit.prepare(folder, spec)
    keys = {t.key for t in job.terms}
    assert {"box/embolden", "box/embolden.clip"} <= keys


def test_without_a_clip_model_no_model_is_loaded(folder: Path) -> None:
    job = jobkit.prepare(folder, jobkit.spec(SIZE, 1, guides=[{"kind": "palette", "colors": ["#ff0000"]}]))
    assert job.clip_bank is None


def test_spherical_distance_is_zero_for_equal_and_grows_with_angle() -> None:
    a = torch.nn.functional.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert torch.allclose(spherical_distance(a, a), torch.zeros(5), atol=1e-6)
    assert torch.all(spherical_distance(a, -a) > spherical_distance(a, a.roll(1, 0)) - 1e-6)


def test_the_model_is_loaded_once_per_process() -> None:
    cpu = torch.device("cpu")
    assert load_clip(TINY["name"], "random", cpu) is load_clip(TINY["name"], "random", cpu)
