"""Scale-out on Ray (engine/cluster/), on a local Ray with two CPU actors: the same shot bytes as one process, an
actor killed mid-board retried by Ray with nothing written twice, a bad shot failing alone, cancel stopping the
rest, and the CLI's --ray."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jobkit
import pytest
import ray
import torch

from engine.cli import main
from engine.cluster.pool import PoolSettings
from engine.cluster.storyboard import ray_runner
from engine.refs import FolderSource
from engine.storyboard import load_storyboard_file, render_storyboard

pytestmark = pytest.mark.slow

CPU = torch.device("cpu")
SHOTS = 6


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def write_board(folder: Path, steps: int = 30, bad_shot: int | None = None) -> Path:
    jobkit.save(folder / "styles" / "brick.png", jobkit.brick_texture(48))
    shots = [{"name": f"shot {i}", "frame_start": 1 + 10 * i, "frame_end": 10 + 10 * i} for i in range(SHOTS)]
    if bad_shot is not None:
        shots[bad_shot]["init"] = {"image": "missing.png"}
    board = {
        "version": 1, "name": "Ray", "width": 48, "height": 48, "steps": steps, "generator": {"kind": "pixels"},
        "preview_every": 0, "style": {"images": ["styles/brick.png"], "weight": 1.0}, "shots": shots,
    }  # fmt: skip
    path = folder / "board.json"
    path.write_text(json.dumps(board))
    return path


def render(path: Path, out: Path, runner: Any = None, on_shot: Any = None) -> list[Any]:
    board = load_storyboard_file(path)
    return render_storyboard(board, FolderSource(path.parent), out, CPU, on_shot=on_shot, runner=runner)


def single_process(path: Path, out: Path) -> None:
    """The reference: this process at one torch thread, as each actor runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        render(path, out)
    finally:
        torch.set_num_threads(threads)


def same_outputs(a: Path, b: Path) -> bool:
    shots = sorted(p.name for p in (a / "shots").iterdir())
    assert shots == sorted(p.name for p in (b / "shots").iterdir())
    same_shots = all((a / "shots" / n).read_bytes() == (b / "shots" / n).read_bytes() for n in shots)
    same_sheet = (a / "contact_sheet.png").read_bytes() == (b / "contact_sheet.png").read_bytes()
    return same_shots and same_sheet and _without_times(a) == _without_times(b)


def _without_times(out: Path) -> dict[str, Any]:
    data = json.loads((out / "storyboard.json").read_text())
    data.pop("seconds")
    for shot in data["shots"]:
        shot.pop("seconds")
    return data


def on_two_actors(path: Path, **hooks: Any) -> Any:
    return ray_runner(FolderSource(path.parent), None, PoolSettings(actors=2, threads=1), **hooks)


def test_a_board_on_two_actors_gives_the_single_process_bytes(local_ray, tmp_path):
    path = write_board(tmp_path)
    single_process(path, tmp_path / "single")
    actors: list[dict[str, Any]] = []
    reports = render(path, tmp_path / "ray", on_two_actors(path, on_ready=actors.extend))
    assert [r.status for r in reports] == ["done"] * SHOTS, [r.error for r in reports]
    assert len({a["pid"] for a in actors}) == 2 and all(a["threads"] == 1 for a in actors)
    assert same_outputs(tmp_path / "single", tmp_path / "ray")


def test_actors_run_their_steps_in_the_capture_mode_asked(local_ray, tmp_path):
    """--capture reaches the actors; graph on the CPU falls back to the eager step, so the bytes are off's."""
    path = write_board(tmp_path, steps=5)
    single_process(path, tmp_path / "single")
    actors: list[dict[str, Any]] = []
    settings = PoolSettings(actors=1, threads=1, capture="graph")
    runner = ray_runner(FolderSource(path.parent), None, settings, on_ready=actors.extend)
    reports = render(path, tmp_path / "ray", runner)
    assert [r.status for r in reports] == ["done"] * SHOTS, [r.error for r in reports]
    assert [a["capture"] for a in actors] == ["graph"]
    assert same_outputs(tmp_path / "single", tmp_path / "ray")


def test_an_actor_killed_mid_board_is_restarted_and_its_shot_retried(local_ray, tmp_path):
    path = write_board(tmp_path, steps=60)
    single_process(path, tmp_path / "single")
    actors: list[dict[str, Any]] = []
    workers: dict[int, dict[str, Any]] = {}
    delivered: list[str] = []
    killed = threading.Event()

    def on_shot(report: Any) -> None:
        delivered.append(report.name)
        if not killed.is_set():  # the actor that did not deliver this shot is mid-shot: kill it
            busy = next(a["pid"] for a in actors if a["pid"] != workers[report.index - 1]["pid"])
            os.kill(busy, signal.SIGKILL)
            killed.set()

    def on_worker(index: int, who: dict[str, Any]) -> None:
        workers[index] = who

    runner = on_two_actors(path, on_ready=actors.extend, on_worker=on_worker)
    reports = render(path, tmp_path / "ray", runner, on_shot)
    assert killed.is_set() and [r.status for r in reports] == ["done"] * SHOTS
    assert sorted(delivered) == sorted(f"shot {i}" for i in range(SHOTS))  # each shot delivered, and written, once
    restarted = [index for index, who in workers.items() if who["restarted"]]
    assert restarted, workers  # the killed actor came back and ran shots again, its interrupted one among them
    assert not {a["pid"] for a in actors} & {workers[index]["pid"] for index in restarted}  # a new process
    assert same_outputs(tmp_path / "single", tmp_path / "ray")  # a retried shot has the same bytes


def test_a_bad_shot_fails_alone_and_names_its_field(local_ray, tmp_path):
    path = write_board(tmp_path, steps=10, bad_shot=2)
    reports = render(path, tmp_path / "ray", on_two_actors(path))
    assert [r.status for r in reports] == ["done", "done", "failed", "done", "done", "done"]
    assert reports[2].field == "shots[2].init.image" and "missing.png" in reports[2].error
    assert not (tmp_path / "ray" / "shots" / "003_shot_2.png").exists()


def test_cancel_stops_running_and_queued_shots(local_ray, tmp_path):
    path = write_board(tmp_path, steps=400)
    cancel = threading.Event()
    started = time.monotonic()

    def on_progress(done: int, total: int) -> None:
        if done > 0:
            cancel.set()  # as soon as the actors are stepping

    reports = render(path, tmp_path / "ray", on_two_actors(path, cancel=cancel, on_progress=on_progress))
    assert cancel.is_set() and [r.status for r in reports] == ["cancelled"] * SHOTS
    assert time.monotonic() - started < 60  # far less than 6 shots of 400 steps
    assert list((tmp_path / "ray" / "shots").iterdir()) == []
    assert json.loads((tmp_path / "ray" / "storyboard.json").read_text())["shots"][0]["status"] == "cancelled"


def test_the_cli_renders_on_ray_and_says_what_it_needs(local_ray, tmp_path, capsys):
    path = write_board(tmp_path, steps=5)
    assert main(["storyboard", str(path), "--out", str(tmp_path / "out"), "--ray", "--actors", "2", "--quiet"]) == 0
    assert len(list((tmp_path / "out" / "shots").iterdir())) == SHOTS
    assert main(["storyboard", str(path), "--out", str(tmp_path / "x"), "--ray", "--actors", "-1"]) == 2
    assert "--actors" in capsys.readouterr().err
