"""The optimisation loop: optimisers, schedules, progress, previews, cancellation, determinism."""

from __future__ import annotations

import itertools
import math
import threading
import warnings
from pathlib import Path

import jobkit
import numpy as np
import pytest
import torch

from engine.errors import JobCancelled
from engine.optimize import run
from engine.progress import CancelToken, Progress
from engine.spec import Optimizer
from engine.stepper import Stepper

SIZE = 40


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("optimize")
    jobkit.save(d / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(d / "brick.png", jobkit.brick_texture(64))
    jobkit.save(d / "left.png", jobkit.rect_mask(SIZE, 0, 0, SIZE, 20))
    return d


STYLE = [{"kind": "style", "image": "brick.png"}]
PALETTE = [{"kind": "palette", "colors": ["#ff0000", "#00ffff"]}]


# ---- optimisers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "lr"),
    [("adam", 0.05), ("adamw", 0.05), ("sgd", 0.5)],  # plain SGD needs a larger step than Adam
)
@pytest.mark.parametrize("generator", ["pixels", "fourier"])
def test_each_optimizer_reduces_the_total(folder, kind, lr, generator):
    data = jobkit.spec(
        SIZE,
        30,
        generator={"kind": generator},
        init={"image": "init.png"},
        optimizer={"kind": kind, "lr": lr},
        guides=STYLE,
        losses={"tv": 0.1},
    )
    result = jobkit.run_job(folder, data)
    assert len(result.history) == 30
    assert jobkit.drop(result, "total") < 0.6


def lrs(steps: int, **config) -> list[float]:
    """The learning rate each step of a run uses (the loop moves the schedule on after each step)."""
    stepper = Stepper(Optimizer(lr=0.2, **config), [torch.nn.Parameter(torch.zeros(2))], steps)
    out = []
    for _ in range(steps):
        out.append(stepper.lr)
        stepper.step()
        stepper.next_lr()
    return out


def test_constant_schedule():
    assert lrs(40, schedule="constant") == pytest.approx([0.2] * 40)


def test_cosine_schedule():
    values = lrs(100, schedule="cosine")
    assert values[0] == pytest.approx(0.2)
    assert values[50] == pytest.approx(0.2 * 0.55, rel=1e-6)  # half way: half way down to 10%
    assert values[-1] == pytest.approx(0.02, abs=0.002)  # ends at about 10% of lr
    assert min(values) >= 0.02 - 1e-9
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(values))
    # cosine: flat at both ends, steep in the middle
    assert values[0] - values[10] < values[45] - values[55]


def test_linear_schedule():
    values = lrs(100, schedule="linear")
    assert values[0] == pytest.approx(0.2)
    assert values[50] == pytest.approx(0.2 * 0.55, rel=1e-6)
    assert values[-1] == pytest.approx(0.02, abs=0.002)
    steps = np.diff(values)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-6)
    assert steps[0] < 0


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_warmup_ramps_up_first(schedule):
    values = lrs(50, schedule=schedule, warmup=0.2)  # 10 warm-up steps
    np.testing.assert_allclose(values[:10], [0.2 * (k + 1) / 10 for k in range(10)], rtol=1e-6)
    assert values[10] == pytest.approx(0.2)
    assert max(values) == pytest.approx(0.2)


# ---- progress and previews --------------------------------------------------------------


def test_progress_every_step_with_previews_on_multiples(folder):
    steps, every = 25, 10
    data = jobkit.spec(SIZE, steps, init={"image": "init.png"}, guides=PALETTE, losses={"tv": 0.1}, preview_every=every)
    job = jobkit.prepare(folder, data)
    keys = {t.key for t in job.terms}
    seen: list[Progress] = []
    result = run(job, on_progress=seen.append)
    assert [p.step for p in seen] == list(range(1, steps + 1))
    assert all(p.steps == steps for p in seen)
    for p in seen:
        if p.step < steps:
            assert (p.preview is not None) == (p.step % every == 0 or p.step == 1), p.step
        if p.preview is not None:
            assert p.preview.dtype == np.uint8 and p.preview.shape == (SIZE, SIZE, 3)
        if p.losses:
            assert set(p.losses) == keys
            assert math.isfinite(p.total)
    # losses are reported from the first preview step on, and at the end
    assert all(set(p.losses) == keys for p in seen if p.step >= every)
    assert seen[-1].losses == {k: v for k, v in result.history[-1].items() if k != "total"}
    assert seen[-1].fraction == 1.0 and seen[-1].eta == 0.0
    assert seen[4].eta is not None and seen[4].eta >= 0
    # a preview is the image at that step: the palette has been pulling since step 1
    first_preview = seen[every - 1].preview
    assert np.abs(first_preview.astype(int) - jobkit.astronaut(SIZE).astype(int)).mean() > 2


def test_no_previews_when_preview_every_is_zero(folder):
    seen: list[Progress] = []
    run(jobkit.prepare(folder, jobkit.spec(SIZE, 12, guides=PALETTE, preview_every=0)), on_progress=seen.append)
    assert [p.step for p in seen] == list(range(1, 13))
    assert all(p.preview is None for p in seen)
    assert seen[-1].losses  # still reported


def test_preview_matches_the_result_when_it_is_the_last_render(folder):
    """With a constant lr of 0, every render is the same: previews equal the result exactly."""
    data = jobkit.spec(
        SIZE,
        7,
        init={"image": "init.png"},
        optimizer={"kind": "sgd", "lr": 1e-9, "schedule": "constant"},
        guides=PALETTE,
        preview_every=3,
    )
    seen: list[Progress] = []
    result = run(jobkit.prepare(folder, data), on_progress=seen.append)
    previews = [p.preview for p in seen if p.preview is not None]
    assert len(previews) == 3  # after step 1, then at steps 3 and 6
    for preview in previews:
        np.testing.assert_array_equal(preview, result.image)
    np.testing.assert_array_equal(result.image, jobkit.astronaut(SIZE))


def test_no_terms_returns_the_init(folder):
    result = jobkit.run_job(folder, jobkit.spec(SIZE, 3, init={"image": "init.png"}))
    np.testing.assert_array_equal(result.image, jobkit.astronaut(SIZE))
    assert result.history == []


def test_no_terms_runs_without_torch_warnings(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jobkit.run_job(folder, jobkit.spec(SIZE, 3, init={"image": "init.png"}))


# ---- cancellation -----------------------------------------------------------------------


def test_cancel_from_the_callback_stops_within_one_step(folder):
    token = CancelToken()
    seen: list[int] = []

    def on_progress(progress: Progress) -> None:
        seen.append(progress.step)
        if progress.step == 3:
            token.cancel()

    data = jobkit.spec(SIZE, 50, guides=STYLE)
    with pytest.raises(JobCancelled, match="after 3 of 50"):
        run(jobkit.prepare(folder, data), on_progress=on_progress, cancel=token)
    assert seen == [1, 2, 3]
    assert token.cancelled


def test_cancelled_before_start_runs_nothing(folder):
    token = CancelToken()
    token.cancel()
    seen: list[int] = []
    with pytest.raises(JobCancelled, match="after 0 of"):
        run(jobkit.prepare(folder, jobkit.spec(SIZE, 5, guides=PALETTE)), lambda p: seen.append(p.step), token)
    assert seen == []


def test_cancel_from_another_thread(folder):
    token = CancelToken()
    started = threading.Event()
    seen: list[int] = []
    outcome: list[BaseException] = []

    def on_progress(progress: Progress) -> None:
        seen.append(progress.step)
        started.set()

    def work() -> None:
        try:
            run(jobkit.prepare(folder, jobkit.spec(SIZE, 3000, guides=PALETTE)), on_progress, token)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    assert started.wait(60)
    token.cancel()
    at_cancel = len(seen)  # the step in flight may still finish; no step starts after it
    worker.join(60)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], JobCancelled)
    assert len(seen) <= at_cancel + 1


# ---- determinism ------------------------------------------------------------------------


@pytest.mark.parametrize("generator", ["pixels", "fourier"])
def test_same_spec_and_seed_same_result(folder, generator):
    data = jobkit.spec(SIZE, 12, seed=5, generator={"kind": generator}, guides=STYLE, losses={"tv": 0.1})
    a = jobkit.run_job(folder, data)
    b = jobkit.run_job(folder, data)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.history == b.history


@pytest.mark.parametrize("generator", ["pixels", "fourier"])
def test_other_seed_other_result(folder, generator):
    data = jobkit.spec(SIZE, 12, seed=5, generator={"kind": generator}, guides=STYLE)
    a = jobkit.run_job(folder, data).image
    b = jobkit.run_job(folder, {**data, "seed": 6}).image
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 3
