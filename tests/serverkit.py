"""Helpers for the black-box server tests: a real `python -m engine serve` subprocess on a loopback port.

Everything goes over real HTTP (httpx) and follows docs/server-api.md, the contract; nothing here
imports the server's code. Import with `import serverkit` after putting tests/ on sys.path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jobkit
import numpy as np
from PIL import Image

from engine.images import png_bytes as png  # the engine's own encoder

REPO = jobkit.REPO
# One intra-op thread (jobkit.py says why); the CLI comparison runs the CLI under the same settings.
SUBPROCESS_ENV = jobkit.SUBPROCESS_ENV

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINAL_STATES = ("done", "failed", "cancelled", "interrupted")
STATUS_KEYS = (
    "id",
    "state",
    "step",
    "steps",
    "fraction",
    "elapsed_seconds",
    "eta_seconds",
    "losses",
    "total_loss",
    "error",
    "cancel_requested",
    "queue_position",
    "created",
    "started",
    "finished",
)
ERROR_KEYS = ("field", "message", "value", "allowed")
START_TIMEOUT = 90.0  # importing torch on a loaded 2-core machine can take a while
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- the server process -----------------------------------------------------------------------


def engine_command(*args: Any) -> list[str]:
    return [sys.executable, "-m", "engine", *map(str, args)]


def engine_env() -> dict[str, str]:
    return {**os.environ, **SUBPROCESS_ENV}


@dataclass
class Server:
    """A running server: its process, data dir, base URL and (optional) token."""

    proc: subprocess.Popen
    data_dir: Path
    log_path: Path
    port: int
    token: str | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, timeout: float = 30.0, auth: bool = True) -> httpx.Client:
        """A new client (one per thread); closed when the server stops. trust_env off: no proxy for loopback."""
        client = httpx.Client(
            base_url=self.base_url, timeout=timeout, trust_env=False, headers=self.headers() if auth else {}
        )
        self.clients.append(client)
        return client

    def output(self) -> str:
        """What the server wrote to stdout and stderr so far (its JSON log lines included)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and wait; returns the exit code (negative: killed by a signal)."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"server did not stop within {timeout}s of signal {sig}") from None
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL: no clean-up at all, as after a crash or power loss."""
        return self.stop(signal.SIGKILL)


def start_server(
    data_dir: Path,
    *args: Any,
    token: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> Server:
    """Start `python -m engine serve --port 0` on `data_dir` and wait for its port file.

    `env` replaces the whole environment (default: this one with SUBPROCESS_ENV on top).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    run_dir = data_dir.parent / f"{data_dir.name}-run"
    run_dir.mkdir(exist_ok=True)
    port_file = run_dir / "port"
    port_file.unlink(missing_ok=True)
    log_path = run_dir / f"server-{time.monotonic_ns()}.log"
    extra = [*args, *(["--token", token] if token else [])]
    # Output to a file, not a pipe: the server logs a line per request, and a full pipe would block it.
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            engine_command("serve", "--port", 0, "--port-file", port_file, "--data-dir", data_dir, *extra),
            cwd=REPO,
            env=env or engine_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc=proc, data_dir=data_dir, log_path=log_path, port=0, token=token)
    server.port = wait_for_port_file(port_file, proc, timeout, server.output)
    return server


def wait_for_port_file(port_file: Path, proc: subprocess.Popen, timeout: float, output: Callable[[], str]) -> int:
    """The contract writes the port and a newline atomically, once connections are accepted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            text = port_file.read_text()
            assert re.fullmatch(r"\d+\n", text), f"port file holds {text!r}, expected a port and a newline"
            return int(text)
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} before writing its port:\n{output()}")
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    raise AssertionError(f"no port file after {timeout}s:\n{output()}")


@contextlib.contextmanager
def serving(
    data_dir: Path, *args: Any, token: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A server for the length of a with-block (or a fixture); SIGTERM on the way out, SIGKILL if stuck."""
    server = start_server(data_dir, *args, token=token, env=env)
    try:
        yield server
    finally:
        if server.alive():
            with contextlib.suppress(AssertionError):
                server.stop(signal.SIGTERM, timeout=20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


# ---- blobs and specs --------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client: httpx.Client, data: bytes) -> str:
    """PUT the bytes under their sha256; returns "blob:<sha>" (201 when new, 200 when already there)."""
    digest = sha256(data)
    response = client.put(f"/blobs/{digest}", content=data, headers={"Content-Type": "image/png"})
    assert response.status_code in (200, 201), (response.status_code, response.text)
    body = response.json()
    assert body["blob"] == f"blob:{digest}", body
    return body["blob"]


def upload_png(client: httpx.Client, pixels: np.ndarray) -> str:
    return upload(client, png(pixels))


def decode_png(data: bytes) -> Image.Image:
    """Decode fully: a truncated or half-written PNG raises here."""
    assert data.startswith(PNG_SIGNATURE), data[:16]
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


# ---- jobs -------------------------------------------------------------------------------------


def submit(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/jobs", json=spec)
    assert response.status_code == 202, (response.status_code, response.text)
    status = response.json()
    check_status(status)
    return status


def status_of(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def wait_for(
    client: httpx.Client,
    job_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 60.0,
    interval: float = 0.02,
) -> dict[str, Any]:
    """Poll GET /jobs/{id} until `until(status)` holds; fails with the last status on timeout."""
    deadline = time.monotonic() + timeout
    status = status_of(client, job_id)
    while not until(status):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} timed out after {timeout}s; last status {status}")
        time.sleep(interval)
        status = status_of(client, job_id)
    return status


def wait_final(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    return wait_for(client, job_id, lambda s: s["state"] in FINAL_STATES, timeout)


def wait_running(client: httpx.Client, job_id: str, min_step: int = 1, timeout: float = 60.0) -> dict[str, Any]:
    """Until the job runs and has made `min_step` steps (so it is really inside its loop)."""

    def ready(status: dict[str, Any]) -> bool:
        assert status["state"] in ("queued", "running"), status
        return status["state"] == "running" and status["step"] >= min_step

    return wait_for(client, job_id, ready, timeout)


def cancel_all(client: httpx.Client, timeout: float = 30.0) -> None:
    """Cancel every queued or running job and wait until none runs: the next test starts on an idle queue."""
    jobs = client.get("/jobs").json()["jobs"]
    for job in jobs:
        if job["state"] in ("queued", "running"):
            client.post(f"/jobs/{job['id']}/cancel")
    for job in jobs:
        if job["state"] in ("queued", "running"):
            wait_final(client, job["id"], timeout)


def result_bytes(client: httpx.Client, job_id: str) -> bytes:
    response = client.get(f"/jobs/{job_id}/result")
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("image/png"), response.headers
    return response.content


# ---- contract shapes --------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value)


def check_status(status: dict[str, Any]) -> None:
    """A job status as the contract shows it: every key, the right types, and consistent values."""
    missing = [key for key in STATUS_KEYS if key not in status]
    assert not missing, f"status lacks {missing}: {status}"
    assert isinstance(status["id"], str) and status["id"], status
    assert status["state"] in STATES, status
    step, steps = status["step"], status["steps"]
    assert isinstance(step, int) and isinstance(steps, int) and 0 <= step <= steps, status
    assert _is_number(status["fraction"]) and 0.0 <= status["fraction"] <= 1.0, status
    for key in ("elapsed_seconds", "eta_seconds", "total_loss"):
        assert status[key] is None or _is_number(status[key]), (key, status)
    assert isinstance(status["losses"], dict), status
    assert all(isinstance(k, str) and _is_number(v) for k, v in status["losses"].items()), status
    assert status["error"] is None or isinstance(status["error"], str), status
    assert isinstance(status["cancel_requested"], bool), status
    position = status["queue_position"]
    if status["state"] == "queued":
        assert isinstance(position, int) and position >= 0, status
    else:
        assert position is None, status
    assert _is_timestamp(status["created"]), status
    for key in ("started", "finished"):
        assert status[key] is None or _is_timestamp(status[key]), (key, status)
    if status["state"] == "done":
        assert step == steps and status["finished"], status
    if status["state"] == "failed":
        assert status["error"], status
    if status["state"] == "queued":
        assert status["started"] is None and status["finished"] is None, status


def check_errors(response: httpx.Response, status_code: int, field: str | None = None) -> list[dict[str, Any]]:
    """An error answer per the contract: the status, `{"errors": [...]}` with its four keys, no traceback.

    With `field`, one of the errors must name it; that error is returned first.
    """
    assert response.status_code == status_code, (response.status_code, response.text)
    assert "Traceback" not in response.text, response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], body
    for error in body["errors"]:
        assert set(ERROR_KEYS) <= set(error), f"error lacks {set(ERROR_KEYS) - set(error)}: {error}"
        assert isinstance(error["field"], str) and isinstance(error["message"], str) and error["message"], error
        for key in ("value", "allowed"):
            assert error[key] is None or isinstance(error[key], str), (key, error)
    if field is None:
        return body["errors"]
    named = [e for e in body["errors"] if e["field"] == field]
    assert named, f"no error for field {field!r}: {body['errors']}"
    return named + [e for e in body["errors"] if e["field"] != field]


# ---- the job the API tests send: an init and two feathered style regions ---------------------

SIZE = 48
LONG = 100_000  # steps: a job that runs until cancelled (about 10 ms a step here)
IMAGES = {  # the shared test images: name -> pixels
    "init": jobkit.astronaut(SIZE),
    "left": jobkit.rect_mask(SIZE, 0, 0, SIZE, SIZE // 2),
    "right": jobkit.rect_mask(SIZE, 0, SIZE // 2, SIZE, SIZE),
    "brick": jobkit.brick_texture(32),
    "grass": jobkit.grass_texture(32),
}


def job_spec(refs: dict[str, str], steps: int = 12, size: int = SIZE, **fields: Any) -> dict[str, Any]:
    """An init and two feathered style regions: the kind of job the add-on sends."""
    spec = jobkit.spec(
        size,
        steps,
        init={"image": refs["init"]},
        regions=[
            {"name": "left", "mask": refs["left"], "feather": 2, "guides": [{"kind": "style", "image": refs["brick"]}]},
            {"name": "right", "mask": refs["right"], "guides": [{"kind": "style", "image": refs["grass"]}]},
        ],
    )
    spec.update(fields)
    return spec


def when(status: dict[str, Any], key: str) -> dt.datetime:
    return dt.datetime.fromisoformat(status[key].replace("Z", "+00:00"))
