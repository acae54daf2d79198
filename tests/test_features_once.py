"""Feature extraction runs once per step for all regions, not once per region or per guide."""

from __future__ import annotations

from pathlib import Path

import jobkit
import pytest

SIZE = 48
STEPS = 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("once")
    jobkit.save(d / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(d / "coffee.png", jobkit.coffee(SIZE))
    for name, make in (
        ("space", jobkit.space_texture),
        ("brick", jobkit.brick_texture),
        ("grass", jobkit.grass_texture),
    ):
        jobkit.save(d / "styles" / f"{name}.png", make(64))
    for index, mask in enumerate(jobkit.column_masks(SIZE, 3)):
        jobkit.save(d / "masks" / f"m{index}.png", mask)
    return d


def regions(count: int) -> list[dict]:
    styles = ["space", "brick", "grass"]
    return [
        {
            "name": f"r{i}",
            "mask": f"masks/m{i}.png",
            "feather": 2,
            "guides": [
                {"kind": "style", "image": f"styles/{styles[i]}.png"},
                {"kind": "content", "image": "coffee.png", "weight": 0.5},
            ],
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [1, 3])
def test_one_feature_pass_per_step_whatever_the_number_of_regions(folder, count):
    job = jobkit.prepare(folder, jobkit.spec(SIZE, STEPS, init={"image": "init.png"}, regions=regions(count)))
    assert sum(term.kind == "style" for term in job.terms) == count
    calls = []
    original = job.net.forward
    job.net.forward = lambda image, *rest: calls.append(image.shape) or original(image, *rest)
    try:
        from engine.optimize import run

        run(job)
    finally:
        job.net.forward = original
    # one pass for the noise yardstick that normalises the losses, then exactly one per step
    assert len(calls) == 1 + STEPS, calls
    assert all(shape[0] == 1 for shape in calls)


def test_style_targets_are_computed_once_per_reference(folder):
    spec = jobkit.spec(SIZE, 1, init={"image": "init.png"}, regions=regions(3))
    for region in spec["regions"]:
        region["guides"][0]["image"] = "styles/brick.png"  # three regions, one shared reference
    job = jobkit.prepare(folder, spec)
    targets = {id(term.target) for term in job.terms if term.kind == "style"}
    assert len(targets) == 1
