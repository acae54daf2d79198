"""addon/engine_client.py against a real engine server: the calls, the skipped upload, and errors a user can read.

The client is pure standard library (it runs inside Blender), so it is tested here without bpy.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import serverkit
from importrules import imported_modules, relative_imports
from serverkit import IMAGES, LONG, job_spec, png

pytestmark = pytest.mark.slow  # engine server processes

REPO = Path(__file__).resolve().parent.parent
CLIENT_FILE = REPO / "addon" / "engine_client.py"


def _load_client() -> ModuleType:
    """Load the file alone: importing the `addon` package would import bpy, which the client itself never needs."""
    spec = importlib.util.spec_from_file_location("regia_engine_client", CLIENT_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


engine_client = _load_client()
EngineClient = engine_client.EngineClient
EngineError = engine_client.EngineError
EngineUnreachable = engine_client.EngineUnreachable
TOKEN = "client-token"
TEST_TIMEOUT = 10.0  # the server runs jobs on a loaded test machine; the 100 ms default is checked separately


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[serverkit.Server]:
    with serverkit.serving(tmp_path_factory.mktemp("client") / "data") as srv:
        yield srv


@pytest.fixture
def engine(server: serverkit.Server) -> EngineClient:
    """A client on an idle server: jobs left by an earlier test are cancelled first."""
    serverkit.cancel_all(server.client())
    return EngineClient(server.base_url, timeout=TEST_TIMEOUT)


@pytest.fixture(scope="module")
def refs(server: serverkit.Server) -> dict[str, str]:
    client = EngineClient(server.base_url, timeout=TEST_TIMEOUT)
    return {name: client.upload_png(png(pixels)) for name, pixels in IMAGES.items()}


def wait_until(engine: EngineClient, job_id: str, states: tuple[str, ...], timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status = engine.status(job_id)
    while status["state"] not in states:
        assert time.monotonic() < deadline, f"job {job_id} timed out; last status {status}"
        time.sleep(0.05)
        status = engine.status(job_id)
    return status


def record_requests(engine: EngineClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wrap the client's one transport method: the methods it sent, in order."""
    sent: list[str] = []
    inner = engine._request

    def recording(method: str, path: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        sent.append(method)
        return inner(method, path, *args, **kwargs)

    monkeypatch.setattr(engine, "_request", recording)
    return sent


def closed_port() -> int:
    """A port nothing listens on: bound once to get a free number, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- calls ------------------------------------------------------------------------------------


def test_health(engine):
    health = engine.health()
    assert {"version", "device", "models", "limits", "queue"} <= set(health)


def test_upload_skips_a_blob_already_stored(engine, monkeypatch):
    data = png(serverkit.jobkit.coffee(24))
    sent = record_requests(engine, monkeypatch)
    ref = engine.upload_png(data)
    assert ref == f"blob:{serverkit.sha256(data)}"
    assert sent == ["HEAD", "PUT"]
    assert engine.has_blob(serverkit.sha256(data))
    sent.clear()
    assert engine.upload_png(data) == ref
    assert sent == ["HEAD"]


def test_has_blob_is_false_for_a_missing_blob(engine):
    assert engine.has_blob("0" * 64) is False


def test_submit_poll_and_fetch_the_result(engine, refs):
    status = engine.submit(job_spec(refs, 5, preview_every=2))
    serverkit.check_status(status)
    done = wait_until(engine, status["id"], serverkit.FINAL_STATES)
    assert done["state"] == "done", done
    image = serverkit.decode_png(engine.result(status["id"]))
    assert image.size == (serverkit.SIZE, serverkit.SIZE)
    assert engine.preview(status["id"]) is not None
    assert status["id"] in [job["id"] for job in engine.jobs()]


def test_preview_is_none_before_the_first_and_cancel(engine, refs):
    job_id = engine.submit(job_spec(refs, LONG, preview_every=0))["id"]
    wait_until(engine, job_id, ("running",))
    assert engine.preview(job_id) is None
    with pytest.raises(EngineError) as caught:
        engine.result(job_id)
    assert caught.value.status == 409
    engine.cancel(job_id)
    assert wait_until(engine, job_id, serverkit.FINAL_STATES)["state"] == "cancelled"
    assert engine.requeue(job_id)["state"] in ("queued", "running")
    engine.cancel(job_id)


# ---- errors -----------------------------------------------------------------------------------


def test_a_spec_error_names_its_field(engine, refs):
    spec = job_spec(refs, 5)
    spec["init"]["image"] = "blob:" + "0" * 64
    with pytest.raises(EngineError) as caught:
        engine.submit(spec)
    error = caught.value
    assert error.status == 422 and not isinstance(error, EngineUnreachable)
    assert error.errors and error.errors[0]["field"] == "init.image", error.errors
    assert str(error).startswith("init.image: "), str(error)
    assert "Traceback" not in str(error)


def test_a_limit_error_says_what_is_allowed(engine, refs):
    with pytest.raises(EngineError) as caught:
        engine.submit(job_spec(refs, 0))
    assert caught.value.status == 422
    error = caught.value.errors[0]
    assert error["field"] == "steps" and error["allowed"], error
    assert str(caught.value) == f"steps: {error['message']} (allowed: {error['allowed']})"


def test_a_wrong_token_is_a_401_that_says_so(tmp_path):
    with serverkit.serving(tmp_path / "data", token=TOKEN) as srv:
        assert EngineClient(srv.base_url, token=TOKEN, timeout=TEST_TIMEOUT).health()
        for token in ("wrong", None):
            with pytest.raises(EngineError) as caught:
                EngineClient(srv.base_url, token=token, timeout=TEST_TIMEOUT).health()
            assert caught.value.status == 401
            assert "token" in str(caught.value) and "missing or wrong" in str(caught.value)


def test_a_closed_port_is_unreachable():
    port = closed_port()
    engine = EngineClient(f"http://127.0.0.1:{port}")
    with pytest.raises(EngineUnreachable) as caught:
        engine.health()
    message = str(caught.value)
    hint = "start it from the Regia preferences"
    assert message == f"the engine at http://127.0.0.1:{port} is not running (connection refused): {hint}"
    assert caught.value.status is None and caught.value.errors == []


def test_a_server_that_never_answers_times_out():
    """A socket that listens but never answers: the client gives up ("no answer in time") instead of waiting."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        engine = EngineClient(f"http://127.0.0.1:{sock.getsockname()[1]}")
        with pytest.raises(EngineUnreachable) as caught:
            engine.status("j1")
        assert "no answer in time" in str(caught.value)


@pytest.mark.perf
def test_unreachable_answers_come_within_the_default_timeout():
    """Blender's main thread waits at most about the 100 ms default: a closed port, a silent server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        for url in (f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{sock.getsockname()[1]}"):
            started = time.monotonic()
            with pytest.raises(EngineUnreachable):
                EngineClient(url).status("j1")
            assert time.monotonic() - started < 0.5, url


# ---- import rules -----------------------------------------------------------------------------


def test_the_client_imports_only_the_standard_library_and_never_bpy():
    assert not relative_imports(CLIENT_FILE), "the client must stand alone: no relative imports"
    names = imported_modules(CLIENT_FILE)
    assert names <= set(sys.stdlib_module_names), names - set(sys.stdlib_module_names)
    assert "bpy" not in names
