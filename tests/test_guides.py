"""Every guide lowers its own loss on a small image, and does what it says in pixels.

History values are normalised by a fixed per-term scale, so history[-1][key] / history[0][key]
is how much of the term's loss is left.
"""

from __future__ import annotations

from pathlib import Path

import jobkit
import numpy as np
import pytest
import torch

from engine.features import RandomFeatureNet, image_stats, masked_stats, masks_for, style_distance
from engine.filters import sobel_magnitude
from engine.guides.embolden import max_change

SIZE = 48


def tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32).transpose(2, 0, 1).copy() / 255.0)[None]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("guides")
    jobkit.save(d / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(d / "coffee.png", jobkit.coffee(SIZE))
    jobkit.save(d / "styles" / "brick.png", jobkit.brick_texture(96))
    strokes = np.zeros((SIZE, SIZE, 4), np.uint8)
    strokes[10:16, 5:40] = (255, 0, 0, 255)
    strokes[30:36, 8:44] = (0, 0, 255, 255)
    jobkit.save(d / "scribble.png", strokes)
    paper = np.full((SIZE, SIZE), 255, np.uint8)
    paper[24, 4:44] = 0
    paper[4:44, 24] = 0
    jobkit.save(d / "outline.png", paper)
    jobkit.save(d / "masks" / "left.png", jobkit.rect_mask(SIZE, 0, 0, SIZE, 24))
    jobkit.save(d / "masks" / "helmet.png", jobkit.rect_mask(SIZE, 10, 10, 40, 40))
    return d


def palette_error(image: np.ndarray, colours: np.ndarray) -> float:
    pixels = image.reshape(-1, 1, 3).astype(np.float64) / 255
    return float(((pixels - colours[None]) ** 2).sum(-1).min(1).mean())


# ---- each guide lowers its own loss ------------------------------------------------------


def test_style_lowers_its_loss(folder):
    result = jobkit.run_job(folder, jobkit.spec(SIZE, 30, guides=[{"kind": "style", "image": "styles/brick.png"}]))
    assert len(result.history) == 30
    assert jobkit.drop(result, "canvas/style.g0") < 0.3
    # and the image took on the brick's colour: mean moved towards it
    brick = jobkit.brick_texture(96).reshape(-1, 3).mean(0)
    assert np.abs(result.image.reshape(-1, 3).mean(0) - brick).max() < 40


def test_content_lowers_its_loss(folder):
    data = jobkit.spec(SIZE, 30, guides=[{"kind": "content", "image": "coffee.png"}])
    result = jobkit.run_job(folder, data)
    assert jobkit.drop(result, "canvas/content.g0") < 0.5
    # the layout of the reference shows through: strong correlation of the blurred images
    reference = jobkit.coffee(SIZE).astype(np.float64).mean(2)
    got = result.image.astype(np.float64).mean(2)
    coarse = [a.reshape(12, 4, 12, 4).mean((1, 3)).ravel() for a in (reference, got)]
    assert np.corrcoef(*coarse)[0, 1] > 0.8


def test_scribble_lowers_its_loss_and_paints_the_strokes(folder):
    data = jobkit.spec(SIZE, 30, init={"image": "init.png"}, guides=[{"kind": "scribble", "image": "scribble.png"}])
    result = jobkit.run_job(folder, data)
    assert jobkit.drop(result, "canvas/scribble.g0") < 0.3
    red = result.image[11:15, 8:36].reshape(-1, 3).mean(0)
    blue = result.image[31:35, 10:42].reshape(-1, 3).mean(0)
    assert red[0] > 180 and red[1] < 80 and red[2] < 80, red
    assert blue[2] > 180 and blue[0] < 80 and blue[1] < 80, blue


def test_outline_lowers_its_loss_and_draws_edges_on_the_lines(folder):
    result = jobkit.run_job(folder, jobkit.spec(SIZE, 40, guides=[{"kind": "outline", "image": "outline.png"}]))
    assert jobkit.drop(result, "canvas/outline.g0") < 0.5
    gray = tensor(result.image).mean(1, keepdim=True)
    edges = sobel_magnitude(gray)[0, 0].numpy()
    on = np.concatenate([edges[23:26, 8:20].ravel(), edges[8:20, 23:26].ravel()])
    off = np.concatenate([edges[4:16, 32:44].ravel(), edges[32:44, 4:16].ravel()])
    assert on.mean() > 2 * off.mean(), (on.mean(), off.mean())


def test_palette_lowers_its_loss_in_its_region(folder):
    colours = ["#1d2a5c", "#f2e9dc"]
    data = jobkit.spec(
        SIZE,
        30,
        init={"image": "init.png"},
        regions=[{"name": "sky", "mask": "masks/left.png", "guides": [{"kind": "palette", "colors": colours}]}],
    )
    result = jobkit.run_job(folder, data)
    assert jobkit.drop(result, "sky/palette.0") < 0.3
    rgb = np.array([[0x1D, 0x2A, 0x5C], [0xF2, 0xE9, 0xDC]]) / 255
    init = jobkit.astronaut(SIZE)
    before, after = palette_error(init[:, :24], rgb), palette_error(result.image[:, :24], rgb)
    assert after < 0.3 * before
    # the other half is uncovered and has an init: untouched
    np.testing.assert_array_equal(result.image[:, 24:], init[:, 24:])


def test_embolden_lowers_its_loss_within_bounds(folder):
    data = jobkit.spec(
        SIZE,
        30,
        init={"image": "init.png"},
        regions=[{"name": "helmet", "mask": "masks/helmet.png", "mode": "embolden", "strength": 1.0}],
    )
    result = jobkit.run_job(folder, data)
    assert jobkit.drop(result, "helmet/embolden") < 0.6
    init = jobkit.astronaut(SIZE).astype(int)
    out = result.image.astype(int)
    inside = out[10:40, 10:40] - init[10:40, 10:40]
    # it changed, but never by more than the bound (in 8 bits, plus rounding)
    assert np.abs(inside).mean() > 3
    assert np.abs(inside).max() <= max_change(1.0) * 255 + 1
    # stronger character: more local contrast (detail) inside the region
    assert np.abs(np.diff(out[10:40, 10:40], axis=1)).mean() > np.abs(np.diff(init[10:40, 10:40], axis=1)).mean()
    # outside it, nothing moved
    outside = np.ones((SIZE, SIZE), bool)
    outside[10:40, 10:40] = False
    np.testing.assert_array_equal(out[outside], init[outside])


def test_embolden_strength_bounds_the_change(folder):
    changes = []
    for strength in (0.5, 2.0):
        data = jobkit.spec(
            SIZE,
            20,
            optimizer={"kind": "adam", "lr": 0.2},
            init={"image": "init.png"},
            regions=[{"name": "helmet", "mask": "masks/helmet.png", "mode": "embolden", "strength": strength}],
        )
        out = jobkit.run_job(folder, data).image.astype(int)
        change = np.abs(out - jobkit.astronaut(SIZE).astype(int))
        assert change.max() <= max_change(strength) * 255 + 1
        changes.append(change.mean())
    assert changes[1] > changes[0]


def tv_of(image: np.ndarray) -> float:
    x = image.astype(np.float64) / 255
    return float((np.diff(x, axis=0) ** 2).mean() + (np.diff(x, axis=1) ** 2).mean())


def saturation_of(image: np.ndarray) -> float:
    x = image.astype(np.float64) / 255
    high, low = x.max(2), x.min(2)
    return float(((high - low) / (high + 1e-3)).mean())


def asymmetry_of(image: np.ndarray) -> float:
    x = image.astype(np.float64) / 255
    return float(((x - x[:, ::-1]) ** 2).mean())


@pytest.mark.parametrize(
    ("name", "measure", "direction"),
    [("tv", tv_of, -1), ("saturation", saturation_of, +1), ("symmetry", asymmetry_of, -1)],
)
def test_global_loss_lowers_itself(folder, name, measure, direction):
    data = jobkit.spec(SIZE, 30, init={"image": "init.png"}, losses={name: 1.0})
    result = jobkit.run_job(folder, data)
    assert list(result.history[0]) == ["total", f"global/{name}"]
    assert jobkit.drop(result, f"global/{name}") < 0.7
    before, after = measure(jobkit.astronaut(SIZE)), measure(result.image)
    if direction < 0:
        assert after < 0.7 * before
    else:
        assert after > before + 0.05


def test_negative_saturation_weight_desaturates(folder):
    data = jobkit.spec(SIZE, 30, init={"image": "init.png"}, losses={"saturation": -1.0})
    result = jobkit.run_job(folder, data)
    assert result.history[-1]["global/saturation"] < -1.0  # raw loss went up: pushed away
    assert saturation_of(result.image) < saturation_of(jobkit.astronaut(SIZE)) - 0.05


def test_term_keys(folder):
    data = jobkit.spec(
        SIZE,
        2,
        init={"image": "init.png"},
        guides=[{"kind": "palette", "colors": ["#000000"]}],
        losses={"tv": 0.1, "symmetry": 0.2},
        regions=[
            {"name": "sky", "mask": "masks/left.png", "guides": [{"kind": "style", "image": "styles/brick.png"}]},
            {"name": "helmet", "mask": "masks/helmet.png", "mode": "embolden"},
        ],
    )
    job = jobkit.prepare(folder, data)
    assert [t.key for t in job.terms] == [
        "sky/style.0",
        "sky/palette.g0",
        "helmet/embolden",
        "global/tv",
        "global/symmetry",
    ]
    result = jobkit.run_job(folder, data)
    assert list(result.history[0]) == ["total", *[t.key for t in job.terms]]
    first = result.history[0]
    assert first["total"] == pytest.approx(sum(v for k, v in first.items() if k != "total"), rel=1e-5)
    assert all(np.isfinite(v) for v in first.values())
    # a term's reported value is proportional to its weight, so weights compare across terms
    heavier = jobkit.run_job(folder, {**data, "losses": {"tv": 0.3, "symmetry": 0.2}})
    assert heavier.history[0]["global/tv"] == pytest.approx(3 * first["global/tv"], rel=1e-5)
    assert heavier.history[0]["global/symmetry"] == pytest.approx(first["global/symmetry"], rel=1e-5)


# ---- three regions, three styles ---------------------------------------------------------

STYLES = {"space": jobkit.space_texture, "brick": jobkit.brick_texture, "grass": jobkit.grass_texture}
THIRDS = 48


def colour_descriptor(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = pixels.reshape(-1, 3).astype(np.float64) / 255
    return x.mean(0), np.cov(x.T)


def colour_distance(a, b) -> float:
    return float(np.linalg.norm(a[0] - b[0]) + np.linalg.norm(a[1] - b[1]))


@pytest.fixture(scope="module")
def three_styles(tmp_path_factory):
    d = tmp_path_factory.mktemp("three")
    refs = {}
    for name, make in STYLES.items():
        refs[name] = make(96)
        jobkit.save(d / "styles" / f"{name}.png", refs[name])
    masks = jobkit.column_masks(THIRDS, 3)
    regions = []
    for (name, _), mask in zip(STYLES.items(), masks, strict=True):
        jobkit.save(d / "masks" / f"{name}.png", mask)
        regions.append(
            {"name": name, "mask": f"masks/{name}.png", "guides": [{"kind": "style", "image": f"styles/{name}.png"}]}
        )
    data = jobkit.spec(THIRDS, 40, optimizer={"kind": "adam", "lr": 0.08}, regions=regions)
    result = jobkit.run_job(d, data)
    return result, refs, masks


def test_three_style_regions_each_lower_their_loss(three_styles):
    result, _, _ = three_styles
    for name in STYLES:
        assert jobkit.drop(result, f"{name}/style.0") < 0.5, name


def test_three_style_regions_match_their_own_colours(three_styles):
    """Independent of the engine: per-region mean colour + colour covariance."""
    result, refs, masks = three_styles
    names = list(STYLES)
    for i, name in enumerate(names):
        mine = colour_descriptor(result.image[masks[i] == 255])
        distances = {other: colour_distance(mine, colour_descriptor(refs[other])) for other in names}
        others = [distances[o] for o in names if o != name]
        assert distances[name] < min(others), (name, distances)


def symmetric_distance(a, b) -> float:
    """Per-layer Gram + mean distance, normalised by both sides' energy (comparable across refs)."""
    total = 0.0
    for (mean_a, gram_a), (mean_b, gram_b) in zip(a, b, strict=True):
        for x, y in ((gram_a, gram_b), (mean_a, mean_b)):
            total += ((x - y).pow(2).sum() / (x.pow(2).sum() + y.pow(2).sum()).clamp_min(1e-12)).item()
    return total


def test_three_style_regions_match_their_own_features(three_styles):
    """With the engine's random-feature statistics, measured on the 8-bit result."""
    result, refs, masks = three_styles
    net = RandomFeatureNet().eval()
    names = list(STYLES)
    weights = torch.stack([torch.from_numpy(m.astype(np.float32) / 255)[None] for m in masks])
    with torch.no_grad():
        features = net(tensor(result.image))
        stats = [masked_stats(f, masks_for(f, weights)) for f in features]
        targets = {n: image_stats(net(tensor(jobkit.resized(refs[n], THIRDS)))) for n in names}
        # style_distance is relative to the target's energy, so compare regions per reference:
        # of the three regions, the one styled after a reference is the closest to it.
        for j, name in enumerate(names):
            column = style_distance(stats, targets[name])
            assert column.argmin().item() == j, (name, column.tolist())
        # and per region, with a symmetric normalisation: its own reference is the closest.
        for i, name in enumerate(names):
            mine = [(mean[i : i + 1], gram[i : i + 1]) for mean, gram in stats]
            distances = {n: symmetric_distance(mine, targets[n]) for n in names}
            assert distances[name] < min(d for n, d in distances.items() if n != name), (name, distances)
