"""Smoothness, saturation, symmetry and palette as guides: each acts in its own region (or in every edit region, top
level), and a region without it keeps its look. Same seed, same everything else, with and without the guide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jobkit
import numpy as np
import pytest

from engine.errors import SpecErrors
from engine.spec import validate_spec
from engine.storyboard import shot_spec, validate_storyboard

SIZE, STEPS = 48, 40
LEFT, RIGHT = slice(0, SIZE // 2), slice(SIZE // 2, SIZE)
FAR_RIGHT = slice(SIZE // 2 + 8, SIZE)  # B beyond a band along the border, where A's style features reach


def run(folder: Path, left_extra: list[dict[str, Any]], seed: int = 0, **fields: Any) -> np.ndarray:
    """Astronaut init; region a (left half) brick style plus `left_extra`, region b (right half) grass style."""
    jobkit.save(folder / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(folder / "a.png", jobkit.rect_mask(SIZE, 0, 0, SIZE, SIZE // 2))
    jobkit.save(folder / "b.png", jobkit.rect_mask(SIZE, 0, SIZE // 2, SIZE, SIZE))
    jobkit.save(folder / "brick.png", jobkit.brick_texture(48))
    jobkit.save(folder / "grass.png", jobkit.grass_texture(48))
    regions = [
        {"name": "a", "mask": "a.png", "guides": [{"kind": "style", "image": "brick.png"}, *left_extra]},
        {"name": "b", "mask": "b.png", "guides": [{"kind": "style", "image": "grass.png"}]},
    ]
    spec = jobkit.spec(SIZE, STEPS, seed=seed, init={"image": "init.png"}, regions=regions, **fields)
    return jobkit.run_job(folder, spec).image.astype(np.float64) / 255.0


def saturation(image: np.ndarray) -> np.ndarray:
    high, low = image.max(2), image.min(2)
    return (high - low) / (high + 1e-3)


def mirror_error(image: np.ndarray) -> float:
    return float(np.abs(image - image[:, ::-1]).mean())


def change(a: np.ndarray, b: np.ndarray, columns: slice) -> float:
    return float(np.abs(a[:, columns] - b[:, columns]).mean())


@pytest.fixture(scope="module")
def without(tmp_path_factory) -> np.ndarray:
    return run(tmp_path_factory.mktemp("without"), [])


@pytest.mark.slow
def test_a_saturation_guide_raises_its_region_and_leaves_the_other(tmp_path, without):
    with_guide = run(tmp_path, [{"kind": "saturation", "weight": 1.0}])
    assert saturation(with_guide)[:, LEFT].mean() > saturation(without)[:, LEFT].mean() + 0.08
    assert abs(saturation(with_guide)[:, RIGHT].mean() - saturation(without)[:, RIGHT].mean()) < 0.03
    assert change(with_guide, without, FAR_RIGHT) < 0.1 * change(with_guide, without, LEFT)
    greyed = run(tmp_path / "negative", [{"kind": "saturation", "weight": -1.0}])  # a negative weight greys it
    assert saturation(greyed)[:, LEFT].mean() < saturation(without)[:, LEFT].mean() - 0.08


@pytest.mark.slow
def test_a_symmetry_guide_mirrors_its_region_about_its_own_middle_and_nothing_else(tmp_path, without):
    with_guide = run(tmp_path, [{"kind": "symmetry", "weight": 2.0}])
    assert mirror_error(with_guide[:, LEFT]) < 0.4 * mirror_error(without[:, LEFT])
    assert abs(mirror_error(with_guide[:, RIGHT]) - mirror_error(without[:, RIGHT])) < 0.1 * mirror_error(
        without[:, RIGHT]
    )
    assert change(with_guide, without, FAR_RIGHT) < 0.1 * change(with_guide, without, LEFT)
    flipped = run(tmp_path / "horizontal", [{"kind": "symmetry", "axis": "horizontal", "weight": 2.0}])
    top_bottom = flipped[:, LEFT][::-1]
    assert np.abs(flipped[:, LEFT] - top_bottom).mean() < 0.4 * np.abs(without[:, LEFT] - without[:, LEFT][::-1]).mean()


@pytest.mark.slow
def test_smoothness_and_palette_as_region_and_top_level_guides(tmp_path, without):
    smooth = run(tmp_path, [{"kind": "tv", "weight": 3.0}])

    def roughness(image: np.ndarray) -> float:
        return float(np.abs(np.diff(image, axis=1)).mean() + np.abs(np.diff(image, axis=0)).mean())

    assert roughness(smooth[:, LEFT]) < 0.7 * roughness(without[:, LEFT])
    assert change(smooth, without, FAR_RIGHT) < 0.1 * change(smooth, without, LEFT)
    # Top level, a guide acts in every edit region.
    everywhere = run(tmp_path / "top", [], guides=[{"kind": "tv", "weight": 3.0}])
    for half in (LEFT, RIGHT):
        assert roughness(everywhere[:, half]) < 0.7 * roughness(without[:, half])


def test_the_new_kinds_validate_everywhere_and_name_bad_fields():
    loss_guides = [{"kind": "tv"}, {"kind": "saturation", "weight": -2}, {"kind": "symmetry", "axis": "horizontal"}]
    spec = validate_spec(
        jobkit.spec(32, 2, guides=loss_guides, regions=[{"name": "r", "mask": "m.png", "guides": loss_guides}])
    )
    assert [g.kind for g in spec.regions[0].guides] == ["tv", "saturation", "symmetry"]
    assert spec.guides[2].axis == "horizontal" and spec.regions[0].guides[0].weight == 1.0
    with pytest.raises(SpecErrors) as info:
        validate_spec(
            jobkit.spec(
                32, 2, regions=[{"name": "r", "mask": "m.png", "guides": [{"kind": "symmetry", "axis": "diagonal"}]}]
            )
        )
    error = info.value.errors[0]
    assert error.field == "regions[0].guides[0].axis" and "vertical" in error.allowed and "horizontal" in error.allowed
    board = validate_storyboard(
        {"width": 32, "height": 32, "steps": 2, "shots": [{"name": "One", "frame_start": 1, "frame_end": 2,
                                                           "guides": [{"kind": "saturation", "weight": 0.5}]}]}
    )  # fmt: skip
    assert shot_spec(board, 0).guides[0].kind == "saturation"
