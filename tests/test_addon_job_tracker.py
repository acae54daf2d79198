"""addon/job_tracker.py without Blender or an engine: fake sessions post scripted events, fake views record them.

One tracker follows every job (image-editor targets and storyboard shots): one job whose result cannot be written
fails alone, with a readable message, and the timer and the other jobs go on.
"""

from __future__ import annotations

from typing import Any

import pytest
from regia_package import addon_module

tracker_module = addon_module("job_tracker")
js = addon_module("job_session")
Tracker, Waiting, Sending, Cancelling = (
    tracker_module.Tracker,
    tracker_module.Waiting,
    tracker_module.Sending,
    tracker_module.Cancelling,
)


class FakeEngine:
    def __init__(self, state: str = "ready") -> None:
        self.state = state

    def poll(self) -> str:
        return self.state

    def client(self) -> object | None:
        return object() if self.state in ("ready", "remote") else None

    def failure(self) -> str:
        return "no torch in that Python"


class FakeSession:
    """Posts one scripted batch of events per drain(), as a worker would between two timer calls."""

    def __init__(self, script: list[list[Any]]) -> None:
        self.script = list(script)
        self.cancelled = False

    def start(self) -> FakeSession:
        return self

    def cancel(self) -> None:
        self.cancelled = True

    def drain(self) -> list[Any]:
        return self.script.pop(0) if self.script else []


class FakeView:
    """Records every event per job key; `broken` keys raise while writing their result (Done)."""

    def __init__(self, broken: tuple[tuple[str, ...], ...] = ()) -> None:
        self.events: dict[tuple[str, ...], list[str]] = {}
        self.failed: dict[tuple[str, ...], str] = {}
        self.broken = broken
        self.gone: set[tuple[str, ...]] = set()

    def alive(self, job: Any) -> bool:
        return job.key not in self.gone

    def apply(self, job: Any, event: Any) -> None:
        self.events.setdefault(job.key, []).append(type(event).__name__)
        if isinstance(event, js.Done) and job.key in self.broken:
            raise PermissionError(13, "Permission denied", "/shots/A_v001.png")

    def fail(self, job: Any, message: str) -> None:
        self.failed[job.key] = message


def _run(script_by_key: dict[tuple[str, ...], list[list[Any]]], view: FakeView, engine: FakeEngine | None = None):
    sessions: dict[tuple[str, ...], FakeSession] = {}
    order = list(script_by_key)

    def factory(client: object, spec: dict, blobs: dict) -> FakeSession:
        key = order[len(sessions)]
        sessions[key] = FakeSession(script_by_key[key])
        return sessions[key]

    tracker = Tracker(engine or FakeEngine(), session_factory=factory, interval=0.1, log=lambda _: None)
    return tracker, sessions


DONE = js.Done(b"png", {"state": "done", "step": 3, "steps": 3})


def progress(step: int) -> Any:
    return js.Progress({"state": "running", "step": step, "steps": 3})


def test_one_jobs_result_writer_raising_fails_that_job_alone_and_the_timer_goes_on() -> None:
    shot, image = ("shot", "Scene", "a1"), ("image", "photo")
    view = FakeView(broken=(shot,))
    script = {
        shot: [[js.Submitted("j1"), progress(1)], [DONE]],
        image: [[js.Submitted("j2")], [progress(1)], [progress(2)], [DONE]],
    }
    tracker, sessions = _run(script, view)
    tracker.submit(shot, view, {"steps": 3}, {})
    tracker.submit(image, view, {"steps": 3}, {})
    intervals = [tracker.poll() for _ in range(3)]
    assert intervals == [0.1, 0.1, 0.1], "the timer keeps its interval while a job runs"
    assert view.events[shot] == ["Waiting", "Sending", "Submitted", "Progress", "Done"]
    message = view.failed[shot]
    assert message.startswith("Could not keep the result: PermissionError:") and "A_v001.png" in message, message
    assert not tracker.is_running(shot) and tracker.is_running(image), "the failed job is dropped, the other runs"
    assert sessions[shot].cancelled
    assert tracker.poll() is None, "the image job's Done arrives: nothing is left to watch, the timer may stop"
    assert view.events[image] == ["Waiting", "Sending", "Submitted", "Progress", "Progress", "Done"]
    assert image not in view.failed and not tracker.jobs


def test_every_kind_of_exception_in_a_view_is_contained() -> None:
    class Exploding(FakeView):
        def apply(self, job: Any, event: Any) -> None:
            super().apply(job, event)
            if isinstance(event, js.Preview):
                raise RuntimeError("the preview image was removed")

    view, good = Exploding(), FakeView()
    script = {("image", "a"): [[js.Preview(b"p", 1)]], ("image", "b"): [[js.Preview(b"p", 1)], [DONE]]}
    tracker, _ = _run(script, view)
    tracker.submit(("image", "a"), view, {}, {})
    tracker.submit(("image", "b"), good, {}, {})
    assert tracker.poll() == 0.1 and tracker.poll() is None
    assert view.failed[("image", "a")] == "Could not show the preview: RuntimeError: the preview image was removed"
    assert good.events[("image", "b")][-1] == "Done" and not good.failed


def test_a_view_whose_fail_raises_too_still_ends_its_job() -> None:
    class Hopeless(FakeView):
        def fail(self, job: Any, message: str) -> None:
            raise KeyError("the scene is gone")

    view = Hopeless(broken=(("shot", "S", "x"),))
    tracker, _ = _run({("shot", "S", "x"): [[DONE]]}, view)
    tracker.submit(("shot", "S", "x"), view, {}, {})
    assert tracker.poll() is None and not tracker.jobs


def test_jobs_wait_for_a_starting_engine_and_fail_when_it_does_not_start() -> None:
    engine, view = FakeEngine("starting"), FakeView()
    tracker, sessions = _run({("image", "a"): [[DONE]]}, view, engine)
    tracker.submit(("image", "a"), view, {}, {})
    assert tracker.poll() == 0.1 and not sessions and view.events[("image", "a")] == ["Waiting"]
    engine.state = "failed"
    assert tracker.poll() is None
    assert view.events[("image", "a")] == ["Waiting", "Unreachable"] and not tracker.jobs


def test_cancel_by_prefix_ends_waiting_jobs_at_once_and_asks_running_ones() -> None:
    engine, view = FakeEngine("ready"), FakeView()
    keys = [("shot", "S", "a"), ("shot", "S", "b"), ("shot", "T", "c")]
    tracker, sessions = _run({key: [[js.Submitted("j")], [], []] for key in keys[:2]}, view, engine)
    for key in keys[:2]:
        tracker.submit(key, view, {}, {})
    tracker.poll()  # a and b get sessions
    engine.state = "starting"
    tracker.submit(keys[2], view, {}, {})  # c waits for the engine
    assert tracker.cancel(("shot", "S")) == 2 and tracker.cancel(("shot", "T")) == 1
    assert view.events[keys[2]] == ["Waiting", "Cancelled"] and not tracker.is_running(("shot", "T"))
    assert all(sessions[key].cancelled for key in keys[:2]) and view.events[keys[0]][-1] == "Cancelling"
    assert tracker.is_running(("shot", "S")), "a job the engine has ends with the engine's Cancelled"


def test_a_deleted_owner_cancels_its_job() -> None:
    view = FakeView()
    tracker, sessions = _run({("image", "a"): [[js.Submitted("j")], []]}, view)
    tracker.submit(("image", "a"), view, {}, {})
    tracker.poll()
    view.gone.add(("image", "a"))
    assert tracker.poll() is None and sessions[("image", "a")].cancelled and not tracker.jobs


@pytest.mark.parametrize("failing", ["poll", "client"])
def test_a_broken_connection_never_stops_the_timer(failing: str) -> None:
    class Broken(FakeEngine):
        def poll(self) -> str:
            if failing == "poll":
                raise OSError("gone")
            return "ready"

        def client(self) -> object:
            raise OSError("gone")

    view = FakeView()
    tracker, _ = _run({("image", "a"): [[DONE]]}, view, Broken())
    tracker.submit(("image", "a"), view, {}, {})
    tracker.submit(("image", "b"), view, {}, {})
    tracker.poll()  # never raises
    assert view.failed[("image", "a")].startswith("Could not send the job: OSError")
    assert set(view.failed) == {("image", "a"), ("image", "b")} and not tracker.jobs
