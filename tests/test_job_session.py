"""addon/job_session.py against a real engine server: events in order, blobs sent once, readable failures, cancel
at any point, retries, and a main-thread side (drain, cancel) that never waits on the network."""

from __future__ import annotations

import contextlib
import gc
import http.server
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import serverkit
from importrules import imported_modules
from regia_package import addon_module
from serverkit import IMAGES, LONG, SIZE, job_spec

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "addon" / "job_session.py"
TOKEN = "session-token"
# drain() runs on Blender's main thread: its typical call is microseconds; the slowest is allowed a scheduler slice
# on a loaded 2-core machine, but not a network round trip.
DRAIN_TYPICAL, DRAIN_BUDGET = 0.001, 0.02
JOB_TIMEOUT = 90.0
pytestmark = pytest.mark.slow  # an engine server process for the module


js = addon_module("job_session")
engine_client = addon_module("engine_client")
png_codec = addon_module("png_codec")
EngineClient = engine_client.EngineClient
JobSession = js.JobSession


# ---- helpers ---------------------------------------------------------------------------------------------------


def blobs_of(images: dict[str, np.ndarray]) -> tuple[dict[str, str], dict[str, bytes]]:
    """Encode with the add-on's own codec, as the add-on will: refs by name, and bytes by sha256."""
    refs, blobs = {}, {}
    for name, pixels in images.items():
        data = png_codec.encode_png(pixels)
        sha = png_codec.sha256_hex(data)
        refs[name], blobs[sha] = f"blob:{sha}", data
    return refs, blobs


def unique_images(seed: int) -> dict[str, np.ndarray]:
    """The shared test images with a noisy init: blobs no earlier test has uploaded."""
    init = np.random.default_rng(seed).integers(0, 256, size=IMAGES["init"].shape, dtype=np.uint8)
    return {**IMAGES, "init": init}


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Timings of the session's own work: a garbage collection of this torch-laden test process is not it."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def collect(session: Any, timeout: float = JOB_TIMEOUT) -> tuple[list[Any], list[float]]:
    """Drain until the final event, as a Blender timer would; returns the events and how long each drain() took."""
    events: list[Any] = []
    durations: list[float] = []
    deadline = time.monotonic() + timeout
    with no_gc():
        while not (events and isinstance(events[-1], js.FINAL_EVENTS)):
            assert time.monotonic() < deadline, f"no final event after {timeout}s: {kinds(events)}"
            started = time.perf_counter()
            events += session.drain()
            durations.append(time.perf_counter() - started)
            time.sleep(0.005)
    assert session.finished and session.outcome is events[-1]
    assert session.join(5) and session.drain() == [], "nothing after the final event"
    return events, durations


def check_quick(durations: list[float]) -> None:
    typical, slowest = statistics.median(durations), max(durations)
    assert typical < DRAIN_TYPICAL and slowest < DRAIN_BUDGET, f"median {typical * 1e3:.2f} ms, max {slowest * 1e3:.1f}"


def kinds(events: list[Any]) -> list[str]:
    return [type(event).__name__ for event in events]


def wait_event(session: Any, events: list[Any], until: Callable[[Any], bool], timeout: float = JOB_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for event in session.drain():
            events.append(event)
            if until(event):
                return event
        assert time.monotonic() < deadline, f"no such event after {timeout}s: {kinds(events)}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[serverkit.Server]:
    with serverkit.serving(tmp_path_factory.mktemp("session") / "data", token=TOKEN) as srv:
        yield srv


@pytest.fixture
def client(server: serverkit.Server) -> EngineClient:
    """A main-thread client (the 100 ms default) on an idle server."""
    serverkit.cancel_all(server.client())
    return EngineClient(server.base_url, token=TOKEN)


def server_state(server: serverkit.Server, job_id: str) -> str:
    return serverkit.status_of(server.client(), job_id)["state"]


# ---- a job from start to finish --------------------------------------------------------------------------------


def test_a_job_runs_to_done_with_previews_progress_and_blobs_sent_once(client, server):
    refs, blobs = blobs_of(unique_images(1))
    steps = 80
    session = JobSession(client, job_spec(refs, steps, preview_every=4), blobs, poll_interval=0.02)
    assert session.start() is session
    events, _ = collect(session)
    names = kinds(events)

    assert isinstance(events[0], js.Submitted) and events[0].job_id == session.job_id, names
    assert isinstance(events[-1], js.Done), (names, events[-1])
    done = events[-1]
    assert done.status["state"] == "done" and done.status["step"] == steps
    assert serverkit.decode_png(done.png).size == (SIZE, SIZE)

    previews = [event for event in events if isinstance(event, js.Preview)]
    assert previews and names.index("Preview") < names.index("Done"), names
    assert any(p.step < steps for p in previews), f"no preview while running: {[p.step for p in previews]}"
    assert all(p.step % 4 == 0 or p.step in (1, steps) for p in previews), "labelled with the step they were made at"
    assert [p.step for p in previews] == sorted({p.step for p in previews}), "previews move forward"
    for preview in previews:
        assert serverkit.decode_png(preview.png).size == (SIZE, SIZE)

    progress = [event.status for event in events if isinstance(event, js.Progress)]
    running_steps = [status["step"] for status in progress if status["state"] == "running"]
    assert len(running_steps) >= 2 and running_steps == sorted(running_steps), running_steps
    assert all({"state", "step", "steps", "fraction", "eta_seconds", "losses"} <= set(s) for s in progress)

    assert sorted(session.uploaded) == sorted(blobs) and session.skipped == [], "a fresh server lacks them all"
    assert all(client.has_blob(sha) for sha in blobs)

    again = JobSession(client, job_spec(refs, 2), blobs, poll_interval=0.02).start()
    assert isinstance(collect(again)[0][-1], js.Done)
    assert again.uploaded == [] and sorted(again.skipped) == sorted(blobs), "HEAD finds them: nothing is sent"


@pytest.mark.perf
def test_drain_never_waits_while_a_job_runs(client):
    refs, blobs = blobs_of(unique_images(2))
    session = JobSession(client, job_spec(refs, 40, preview_every=4), blobs, poll_interval=0.02).start()
    events, durations = collect(session)
    assert isinstance(events[-1], js.Done), kinds(events)
    check_quick(durations)


def test_a_job_without_previews_still_shows_its_result_before_done(client):
    refs, blobs = blobs_of(IMAGES)
    events, _ = collect(JobSession(client, job_spec(refs, 3, preview_every=0), blobs).start())
    assert kinds(events)[-2:] == ["Preview", "Done"] and events[-2].png == events[-1].png, kinds(events)


# ---- failures a user reads -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, field, label, shown",
    [
        ({"steps": -3}, "steps", "Steps", "-3"),
        ({"stepz": 5}, "stepz", "stepz", "allowed: "),
        ({"width": 100_000}, "width", "Size", "100000"),
    ],
)
def test_a_bad_spec_fails_naming_the_field(client, change, field, label, shown):
    refs, blobs = blobs_of(IMAGES)
    spec = {**job_spec(refs, 3), **change}
    session = JobSession(client, spec, blobs).start()
    events, _ = collect(session)
    assert kinds(events) == ["Failed"] and session.job_id is None, events
    failed = events[0]
    assert failed.message.startswith(f"{label}: ") and shown in failed.message, failed.message
    assert failed.errors and failed.errors[0]["field"] == field and failed.errors[0]["message"]
    assert "Traceback" not in failed.message


def test_a_missing_blob_fails_where_it_is_referenced(client):
    refs, blobs = blobs_of(IMAGES)
    refs["brick"] = "blob:" + "0" * 64  # referenced but never handed to the session
    events, _ = collect(JobSession(client, job_spec(refs, 3), blobs).start())
    assert kinds(events) == ["Failed"] and events[0].errors[0]["field"] == "regions[0].guides[0].image", events


def test_blob_bytes_that_do_not_match_their_name_fail_before_any_upload(client):
    refs, blobs = blobs_of(unique_images(2))
    sha = next(iter(blobs))
    blobs[sha] = blobs[sha] + b"x"
    session = JobSession(client, job_spec(refs, 3), blobs).start()
    events, _ = collect(session)
    assert kinds(events) == ["Failed"] and sha in events[0].message and "does not hold" in events[0].message
    assert session.uploaded == [] and not client.has_blob(sha)


def test_a_guide_this_engine_cannot_run_is_refused_naming_it(client):
    refs, blobs = blobs_of(IMAGES)
    spec = job_spec(refs, 3)
    spec["regions"][0]["guides"] = [{"kind": "text", "prompt": "brick wall"}]
    events, _ = collect(JobSession(client, spec, blobs).start())
    assert kinds(events) == ["Failed"], events
    name = spec["regions"][0]["name"]
    assert events[0].message.startswith(f"Region '{name}', Text guide 1: ") and "CLIP" in events[0].message


def test_a_job_that_fails_on_the_engine_ends_with_its_message(client):
    """The engine marks a job failed when it raises (out of memory, say): its `error` is what the user reads."""

    class FailingJob(EngineClient):
        def status(self, job_id: str) -> dict[str, Any]:
            return {**super().status(job_id), "state": "failed", "error": "out of memory: try a smaller canvas"}

    refs, blobs = blobs_of(IMAGES)
    session = JobSession(lambda: FailingJob(client.base_url, TOKEN, 10), job_spec(refs, LONG), blobs, 0.01)
    events, _ = collect(session.start())
    assert kinds(events)[0] == "Submitted" and events[-1] == js.Failed("out of memory: try a smaller canvas"), events
    client.cancel(session.job_id)


def one_blob() -> dict[str, bytes]:
    data = png_codec.encode_png(np.zeros((4, 4), np.uint8))
    return {png_codec.sha256_hex(data): data}


def test_unreachable_when_nothing_listens():
    port = serverkit.free_port()
    session = JobSession(EngineClient(f"http://127.0.0.1:{port}"), {"version": 1}, one_blob())
    started = time.monotonic()
    events, _ = collect(session.start(), timeout=10)
    assert time.monotonic() - started < 2
    assert kinds(events) == ["Unreachable"], events
    assert f"http://127.0.0.1:{port}" in events[0].message and "not running" in events[0].message


def test_a_factory_that_cannot_give_a_client_is_unreachable():
    def no_engine() -> EngineClient:
        raise RuntimeError("the engine is not ready yet")

    events, _ = collect(JobSession(no_engine, {}, {}).start(), timeout=10)
    assert kinds(events) == ["Unreachable"] and "not ready yet" in events[0].message


def test_a_wrong_token_fails_saying_so(server):
    events, _ = collect(JobSession(EngineClient(server.base_url, token="wrong"), {}, one_blob()).start())
    assert kinds(events) == ["Failed"] and "token" in events[0].message, events


# ---- cancel ----------------------------------------------------------------------------------------------------


def test_cancel_while_running_ends_cancelled_on_the_server_too(client, server):
    refs, blobs = blobs_of(IMAGES)
    session = JobSession(client, job_spec(refs, LONG, preview_every=0), blobs, poll_interval=0.05).start()
    events: list[Any] = []
    wait_event(session, events, lambda e: isinstance(e, js.Progress) and e.status["step"] >= 1)
    session.cancel()  # test_drain_and_cancel_never_wait_while_the_worker_is_in_a_request times it
    more, _ = collect(session)
    final = more[-1]
    assert isinstance(final, js.Cancelled) and final.status["state"] == "cancelled", kinds(more)
    assert server_state(server, session.job_id) == "cancelled"


def test_cancel_before_submit_submits_nothing(client, server):
    refs, blobs = blobs_of(IMAGES)
    gate = threading.Event()

    def slow_factory() -> EngineClient:
        gate.wait(30)
        return EngineClient(client.base_url, token=TOKEN, timeout=10)

    jobs_before = server.client().get("/jobs").json()["jobs"]
    session = JobSession(slow_factory, job_spec(refs, 3), blobs).start()
    session.cancel()
    gate.set()
    events, _ = collect(session)
    assert kinds(events) == ["Cancelled"] and events[0].status is None and session.job_id is None
    assert server.client().get("/jobs").json()["jobs"] == jobs_before, "nothing was submitted"


def test_cancel_during_submit_cancels_right_after_it(client, server):
    refs, blobs = blobs_of(IMAGES)
    submitting, gate = threading.Event(), threading.Event()

    class SlowSubmit(EngineClient):
        def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
            status = super().submit(spec)
            submitting.set()
            gate.wait(30)  # the answer is "in flight" while the test cancels
            return status

    spec = job_spec(refs, LONG, preview_every=0)
    session = JobSession(lambda: SlowSubmit(client.base_url, TOKEN, 10), spec, blobs, poll_interval=5.0).start()
    assert submitting.wait(30)
    session.cancel()
    gate.set()
    started = time.monotonic()
    events, _ = collect(session)
    assert time.monotonic() - started < 4, "cancel goes out at once, not after a 5 s poll interval"
    assert kinds(events)[0] == "Submitted" and isinstance(events[-1], js.Cancelled), kinds(events)
    assert events[-1].status["state"] == "cancelled" == server_state(server, session.job_id)


# ---- robustness and the main thread ----------------------------------------------------------------------------


def flaky_client(base_url: str, failures: int) -> EngineClient:
    """A client whose first `failures` status polls find no engine."""

    class Flaky(EngineClient):
        polls = 0

        def status(self, job_id: str) -> dict[str, Any]:
            Flaky.polls += 1
            if Flaky.polls <= failures:
                raise engine_client.EngineUnreachable(f"the engine at {self.base_url} is not running (test)")
            return super().status(job_id)

    return Flaky(base_url, TOKEN, 10)


def test_transient_poll_errors_are_retried(client):
    refs, blobs = blobs_of(IMAGES)
    session = JobSession(lambda: flaky_client(client.base_url, 2), job_spec(refs, 3), blobs, 0.01)
    events, _ = collect(session.start())
    assert isinstance(events[-1], js.Done), kinds(events)


def test_an_engine_gone_for_good_is_unreachable_after_a_few_tries(client):
    refs, blobs = blobs_of(IMAGES)
    session = JobSession(lambda: flaky_client(client.base_url, 100), job_spec(refs, 3), blobs, 0.01)
    events, _ = collect(session.start())
    assert kinds(events)[0] == "Submitted" and isinstance(events[-1], js.Unreachable), kinds(events)
    assert client.base_url in events[-1].message


class GatedHandler(http.server.BaseHTTPRequestHandler):
    """Holds every request until the test opens the gate, then says the blob is there."""

    entered: threading.Event
    gate: threading.Event

    def do_HEAD(self) -> None:
        self.entered.set()
        self.gate.wait(30)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.perf
def test_drain_and_cancel_never_wait_while_the_worker_is_in_a_request():
    handler = type("Gated", (GatedHandler,), {"entered": threading.Event(), "gate": threading.Event()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
        blobs = one_blob()
        session = JobSession(EngineClient(base_url), {}, blobs).start()
        assert handler.entered.wait(10), "the worker never asked"
        durations = []
        with no_gc():
            for _ in range(200):
                started = time.perf_counter()
                assert session.drain() == []
                durations.append(time.perf_counter() - started)
            started = time.perf_counter()
            session.cancel()
            durations.append(time.perf_counter() - started)
        check_quick(durations)
        assert not session.finished
        handler.gate.set()
        events, _ = collect(session, timeout=10)
        assert kinds(events) == ["Cancelled"] and session.skipped == list(blobs)
    finally:
        handler.gate.set()
        httpd.shutdown()
        httpd.server_close()


def test_the_session_imports_only_the_standard_library():
    names = imported_modules(MODULE)
    assert names <= set(sys.stdlib_module_names), names - set(sys.stdlib_module_names)
