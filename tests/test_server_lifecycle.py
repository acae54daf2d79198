"""The engine server's life cycle: refusing an unsafe start, SIGKILL and SIGTERM with jobs in flight."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import serverkit
from serverkit import IMAGES, LONG, check_status, job_spec, submit, upload_png, wait_final, wait_running, when

pytestmark = pytest.mark.slow  # engine server processes

# ---- start-up and shut-down -------------------------------------------------------------------


def test_non_loopback_host_without_token_is_refused(tmp_path):
    port = serverkit.free_port()
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        serverkit.engine_command(
            "serve", "--host", "0.0.0.0", "--port", port, "--port-file", port_file, "--data-dir", tmp_path / "data"
        ),
        cwd=serverkit.REPO,
        env=serverkit.engine_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listened = False
    deadline = time.monotonic() + 90
    while proc.poll() is None and time.monotonic() < deadline:
        listened = listened or serverkit.listening(port)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 2, (proc.returncode, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "token" in lines[0].lower(), lines[0]
    assert not listened and not port_file.exists()


def test_restart_after_sigkill(tmp_path):
    """Finished jobs survive; the running one is interrupted and requeued with one call; queued ones stay queued."""
    data_dir = tmp_path / "data"
    server = serverkit.start_server(data_dir)
    try:
        client = server.client()
        refs = {name: upload_png(client, pixels) for name, pixels in IMAGES.items()}
        finished = submit(client, job_spec(refs, 5))["id"]
        assert wait_final(client, finished)["state"] == "done"
        kept = serverkit.result_bytes(client, finished)
        running = submit(client, job_spec(refs, 200))["id"]
        queued = [submit(client, job_spec(refs, 5, seed=seed))["id"] for seed in (1, 2)]
        wait_running(client, running, min_step=3)
        assert server.kill() == -signal.SIGKILL
    finally:
        server.stop(signal.SIGKILL)

    with serverkit.serving(data_dir) as again:
        client = again.client()
        listed = [job["id"] for job in client.get("/jobs").json()["jobs"]]
        assert listed == [finished, running, *queued], "jobs are listed oldest first, as before"
        done = serverkit.status_of(client, finished)
        assert done["state"] == "done" and serverkit.result_bytes(client, finished) == kept
        interrupted = serverkit.status_of(client, running)
        assert interrupted["state"] == "interrupted", interrupted
        check_status(interrupted)
        for job_id in queued:
            assert serverkit.status_of(client, job_id)["state"] in ("queued", "running", "done")
        first, second = (wait_final(client, job_id) for job_id in queued)
        assert first["state"] == second["state"] == "done", (first, second)
        assert when(first, "started") < when(second, "started"), "queued jobs keep their old order"

        response = client.post(f"/jobs/{running}/requeue")
        assert response.status_code == 202, response.text
        assert response.json()["state"] in ("queued", "running")
        final = wait_final(client, running)
        assert final["state"] == "done" and final["step"] == 200, final
        serverkit.decode_png(serverkit.result_bytes(client, running))
        assert "Traceback" not in again.output()


def test_sigterm_stops_cleanly_and_interrupts_the_running_job(tmp_path):
    data_dir = tmp_path / "data"
    with serverkit.serving(data_dir) as server:
        client = server.client()
        refs = {name: upload_png(client, pixels) for name, pixels in IMAGES.items()}
        job_id = submit(client, job_spec(refs, LONG))["id"]
        wait_running(client, job_id)
        assert server.stop(signal.SIGTERM, timeout=30) == 0, server.output()
        assert "Traceback" not in server.output()
        log = data_dir / "server.log"
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        assert lines and all(isinstance(json.loads(line), dict) for line in lines), "one JSON object a line"
    with serverkit.serving(data_dir) as again:
        status = serverkit.status_of(again.client(), job_id)
        assert status["state"] == "interrupted", status
        check_status(status)
