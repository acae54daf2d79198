"""`serve --ray`: the HTTP server's queue on Ray actors, black-box over real HTTP. A server on a local Ray with two
CPU actors runs two jobs at once with the bytes a plain one-thread server gives, reports progress and previews,
cancels a running job, fails a bad job alone with the plain server's message; bad --ray options exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import serverkit
from serverkit import IMAGES, LONG, SIZE, job_spec, submit, upload_png, wait_final, wait_running, when

pytestmark = pytest.mark.slow  # engine server processes and a local Ray


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory) -> Iterator[serverkit.Server]:
    data = tmp_path_factory.mktemp("ray") / "data"
    with serverkit.serving(data, "--ray", "local", "--ray-actors", 2, "--threads", 1) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory) -> Iterator[serverkit.Server]:
    """The reference: one process, one torch thread, on the CPU."""
    with serverkit.serving(tmp_path_factory.mktemp("plain") / "data", "--threads", 1, "--device", "cpu") as server:
        yield server


@pytest.fixture
def client(ray_server: serverkit.Server) -> httpx.Client:
    client = ray_server.client()
    serverkit.cancel_all(client)
    return client


def upload_all(client: httpx.Client) -> dict[str, str]:
    return {name: upload_png(client, pixels) for name, pixels in IMAGES.items()}


def bad_spec(client: httpx.Client, refs: dict[str, str]) -> dict[str, Any]:
    """An all-black mask passes submission (nothing is decoded there) and fails where the job runs."""
    spec = job_spec(refs, 6)
    spec["regions"][1]["mask"] = upload_png(client, np.zeros((SIZE, SIZE), np.uint8))
    return spec


def run_together(client: httpx.Client, specs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Submit all, poll until all end: their final statuses, and whether all were seen stepping at the same time."""
    ids = [submit(client, spec)["id"] for spec in specs]
    seen_together = False
    deadline = time.monotonic() + 60
    while True:
        statuses = [serverkit.status_of(client, job_id) for job_id in ids]
        seen_together |= all(s["state"] == "running" and 0 < s["step"] < s["steps"] for s in statuses)
        states = [s["state"] for s in statuses]
        if all(state in serverkit.FINAL_STATES for state in states):
            return [serverkit.status_of(client, job_id) for job_id in ids], seen_together
        assert time.monotonic() < deadline, states
        time.sleep(0.02)


def test_two_jobs_run_at_once_with_the_bytes_of_a_plain_server(client, plain_server):
    health = client.get("/health").json()
    assert health["cluster"] == {"address": "local", "actors": 2, "device": "cpu", "threads": 1}, health
    specs = [job_spec(upload_all(client), 80, seed=seed) for seed in (1, 2)]
    finals, together = run_together(client, specs)
    assert [s["state"] for s in finals] == ["done", "done"], finals
    first, second = finals
    assert when(first, "started") < when(second, "finished") and when(second, "started") < when(first, "finished")
    assert together, "the two jobs were never stepping at the same time"
    results = [serverkit.result_bytes(client, s["id"]) for s in finals]
    assert results[0] != results[1]  # two seeds: two images, each compared with its own reference

    plain = plain_server.client()
    upload_all(plain)  # the same images, hence the same blob refs
    for spec, result in zip(specs, results, strict=True):
        reference = wait_final(plain, submit(plain, spec)["id"])
        assert reference["state"] == "done", reference
        assert serverkit.result_bytes(plain, reference["id"]) == result


def test_progress_and_a_preview_come_back_while_a_job_runs(client):
    job = submit(client, job_spec(upload_all(client), LONG, preview_every=5))["id"]
    early = wait_running(client, job, min_step=6)
    assert early["losses"] and early["total_loss"] is not None and early["eta_seconds"] is not None, early
    later = wait_running(client, job, min_step=early["step"] + 5)
    assert later["step"] > early["step"] and later["elapsed_seconds"] > 0, later
    preview = client.get(f"/jobs/{job}/preview")
    assert preview.status_code == 200, preview.text
    assert serverkit.decode_png(preview.content).size == (SIZE, SIZE)
    assert client.get("/health").json()["queue"] == {"queued": 0, "running": 1}


def test_cancel_reaches_the_running_actor(client):
    job = submit(client, job_spec(upload_all(client), LONG))["id"]
    wait_running(client, job, min_step=3)
    asked = time.monotonic()
    assert client.post(f"/jobs/{job}/cancel").status_code == 200
    final = wait_final(client, job, timeout=10)
    assert final["state"] == "cancelled" and final["cancel_requested"], final
    assert time.monotonic() - asked < 5, "the cancel took too long to reach the actor"
    assert final["step"] < LONG
    # the actor is free again: the next job runs to the end
    assert wait_final(client, submit(client, job_spec(upload_all(client), 4))["id"])["state"] == "done"


def test_a_bad_job_fails_alone_with_the_plain_servers_message(client, plain_server):
    refs = upload_all(client)
    finals, _ = run_together(client, [bad_spec(client, refs), job_spec(refs, 20)])
    assert [s["state"] for s in finals] == ["failed", "done"], finals
    error = finals[0]["error"]
    assert error.startswith("regions[1].mask: "), error
    plain = plain_server.client()
    reference = wait_final(plain, submit(plain, bad_spec(plain, upload_all(plain)))["id"])
    assert reference["state"] == "failed" and reference["error"] == error, (reference, error)


def test_a_blob_damaged_on_disk_fails_its_job_and_can_be_uploaded_again(client, ray_server):
    refs = upload_all(client)
    data = serverkit.png(np.full((SIZE, SIZE, 3), 90, np.uint8))
    ref = serverkit.upload(client, data)
    stored = ray_server.data_dir / "blobs" / f"{serverkit.sha256(data)}.png"
    stored.write_bytes(data[: len(data) // 2])  # after the upload was checked
    failed = wait_final(client, submit(client, job_spec(refs, 2, init={"image": ref}))["id"])
    assert failed["state"] == "failed" and failed["error"].startswith("init.image: "), failed
    assert "upload the image again" in failed["error"], failed
    assert client.head(f"/blobs/{serverkit.sha256(data)}").status_code == 404  # so HEAD-then-PUT repairs it


def serve_fails(data: Path, *args: Any, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        serverkit.engine_command("serve", "--data-dir", data, *args),
        cwd=serverkit.REPO,
        env=env or serverkit.engine_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_bad_ray_options_exit_2_naming_the_option(tmp_path):
    no_ray = tmp_path / "no_ray" / "ray"
    no_ray.mkdir(parents=True)
    (no_ray / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    without_ray = {**serverkit.engine_env(), "PYTHONPATH": str(no_ray.parent)}
    runs = {  # started together: each pays for its imports
        "unreachable": serve_fails(tmp_path / "a", "--ray", f"127.0.0.1:{serverkit.free_port()}"),
        "actors": serve_fails(tmp_path / "b", "--ray", "local", "--ray-actors", -1),
        "missing": serve_fails(tmp_path / "c", "--ray", "local", env=without_ray),
    }
    outcomes = {name: (proc.communicate(timeout=60)[1].strip(), proc.returncode) for name, proc in runs.items()}
    outcomes = {name: (code, err) for name, (err, code) in outcomes.items()}
    for name, (code, err) in outcomes.items():
        assert code == 2 and len(err.splitlines()) == 1, (name, code, err)
    assert outcomes["unreachable"][1].startswith("error: --ray 127.0.0.1:"), outcomes
    assert "nothing answers" in outcomes["unreachable"][1] and "--ray local" in outcomes["unreachable"][1], outcomes
    assert outcomes["actors"][1].startswith("error: --ray-actors -1 must be 0"), outcomes
    assert "--ray" in outcomes["missing"][1] and "pip install 'regia-engine[cluster]'" in outcomes["missing"][1]


def test_a_job_whose_actor_dies_for_good_fails_and_the_actor_is_replaced(tmp_path, monkeypatch):
    """In process, with Ray's restarts turned off so that one kill is final: the job fails saying its engine worker
    died, and the next job runs on a new actor."""
    from engine.cluster import pool
    from engine.server.blobs import BlobSource, BlobStore
    from engine.server.config import ServerConfig
    from engine.server.jobs import JobStore
    from engine.server.ray_worker import RayWorker

    monkeypatch.setattr(pool, "MAX_RESTARTS", 0)
    monkeypatch.setattr(pool, "MAX_TASK_RETRIES", 0)
    blobs = BlobStore(tmp_path / "blobs")
    refs = {}
    for name, pixels in IMAGES.items():
        data = serverkit.png(pixels)
        blobs.put(serverkit.sha256(data), data)
        refs[name] = f"blob:{serverkit.sha256(data)}"
    store = JobStore(tmp_path / "jobs")
    worker = RayWorker(store, BlobSource(blobs), ServerConfig(ray="local", ray_actors=1, threads=1))
    worker.start()
    try:
        doomed = store.create(json.dumps(job_spec(refs, LONG)), LONG)["id"]
        while store.status(doomed)["step"] < 2:
            assert store.state(doomed) in ("queued", "running"), store.status(doomed)
            time.sleep(0.05)
        first = worker.pool.actors[0]
        os.kill(worker.ray.get(first.ready.remote())["pid"], signal.SIGKILL)
        failed = in_process_final(store, doomed)
        assert failed["state"] == "failed" and "its engine worker died" in failed["error"], failed
        after = store.create(json.dumps(job_spec(refs, 4)), 4)["id"]
        assert in_process_final(store, after)["state"] == "done"
        assert worker.pool.actors[0] is not first and len(worker.pool.actors) == 1
    finally:
        worker.stop()


def in_process_final(store: Any, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (status := store.status(job_id))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status
