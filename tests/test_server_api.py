"""The engine server, black-box: a real `python -m engine serve` subprocess, real HTTP, docs/server-api.md.

Every check here is stated by the contract (docs/server-api.md) or DESIGN.md; nothing imports the
server's code. Canvases are tiny and jobs short, so that the file runs in about a minute on two CPU cores.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import threading
import time
from typing import Any

import httpx
import jobkit
import numpy as np
import pytest
import serverkit
from PIL import Image
from serverkit import (
    IMAGES,
    LONG,
    SIZE,
    check_errors,
    check_status,
    job_spec,
    submit,
    upload_png,
    wait_final,
    wait_running,
    when,
)

pytestmark = pytest.mark.slow  # engine server processes

MISSING_SHA = "0" * 64


# ---- fixtures: one shared server, one with limits and a token ---------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> serverkit.Server:
    with serverkit.serving(tmp_path_factory.mktemp("server") / "data", "--max-blob-mb", 1) as srv:
        yield srv


@pytest.fixture
def client(server: serverkit.Server) -> httpx.Client:
    """A client on an idle shared server: jobs left by an earlier test are cancelled first."""
    client = server.client()
    serverkit.cancel_all(client)
    return client


FILES = {"init": "init.png", "left": "masks/left.png", "right": "masks/right.png"} | {
    name: f"styles/{name}.png" for name in ("brick", "grass")
}


@pytest.fixture(scope="module")
def refs(server: serverkit.Server) -> dict[str, str]:
    """The shared images uploaded to the shared server: name -> "blob:<sha>"."""
    client = server.client()
    return {name: upload_png(client, pixels) for name, pixels in IMAGES.items()}


# ---- health and blobs -------------------------------------------------------------------------


def test_health(server):
    response = server.client().get("/health")
    assert response.status_code == 200, response.text
    health = response.json()
    assert {"version", "device", "torch", "cuda", "models", "limits", "queue"} <= set(health), health
    assert isinstance(health["models"]["present"], list) and isinstance(health["models"]["missing"], list)
    limits = health["limits"]
    assert limits["max_side"] == 2048 and limits["max_regions"] == 32, limits  # the documented defaults
    assert limits["max_blob_bytes"] in (1_000_000, 1 << 20), limits  # --max-blob-mb 1
    assert all(isinstance(health["queue"][key], int) for key in ("queued", "running")), health


def test_blob_put_and_head(server):
    client = server.client()
    data = serverkit.png(jobkit.coffee(24))
    digest = serverkit.sha256(data)
    assert client.head(f"/blobs/{digest}").status_code == 404
    first = client.put(f"/blobs/{digest}", content=data)
    assert first.status_code == 201, first.text
    assert first.json() == {"blob": f"blob:{digest}", "size": len(data)}
    again = client.put(f"/blobs/{digest}", content=data)
    assert again.status_code == 200, again.text
    assert again.json()["blob"] == f"blob:{digest}"
    assert client.head(f"/blobs/{digest}").status_code == 200


# ---- a job from submission to result ----------------------------------------------------------


def test_result_is_byte_identical_to_the_cli(client, refs, tmp_path):
    """Same spec and seed through the server and through `python -m engine run`: the same PNG bytes."""
    steps = 15
    for name, pixels in IMAGES.items():
        jobkit.save(tmp_path / "cli" / FILES[name], pixels)
    spec_path = jobkit.write_spec(tmp_path / "cli", job_spec(FILES, steps, seed=7))
    cli = subprocess.Popen(  # runs alongside the server's job: two cores, one thread each
        serverkit.engine_command("run", spec_path, "--out", tmp_path / "out", "--quiet"),
        cwd=serverkit.REPO,
        env=serverkit.engine_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status = submit(client, job_spec(refs, steps, seed=7))
    assert status["state"] in ("queued", "running") and status["steps"] == steps
    done = wait_final(client, status["id"])
    assert done["state"] == "done", done
    check_status(done)
    assert done["step"] == steps and done["fraction"] == pytest.approx(1.0) and done["error"] is None
    assert done["losses"] and done["total_loss"] is not None, done
    served = serverkit.result_bytes(client, status["id"])
    assert serverkit.decode_png(served).size == (SIZE, SIZE)

    _, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 0, stderr
    assert served == (tmp_path / "out" / "result.png").read_bytes()
    # once done, the preview is the result
    preview = client.get(f"/jobs/{status['id']}/preview")
    assert preview.status_code == 200 and preview.content == served


def test_jobs_list_oldest_first(client, refs):
    ids = [submit(client, job_spec(refs, 3, seed=seed))["id"] for seed in (1, 2)]
    for job_id in ids:
        wait_final(client, job_id)
    response = client.get("/jobs")
    assert response.status_code == 200
    jobs = response.json()["jobs"]
    for job in jobs:
        check_status(job)
    listed = [job["id"] for job in jobs]
    assert listed.index(ids[0]) < listed.index(ids[1])
    assert [when(job, "created") for job in jobs] == sorted(when(job, "created") for job in jobs)


# ---- cancellation and order -------------------------------------------------------------------


def test_cancel_a_running_job(client, refs):
    job_id = submit(client, job_spec(refs, LONG))["id"]
    wait_running(client, job_id, min_step=2)
    asked = time.monotonic()
    response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    status = response.json()
    check_status(status)
    assert status["state"] == "cancelled" or (status["state"] == "running" and status["cancel_requested"]), status

    final = wait_final(client, job_id, timeout=10)
    assert final["state"] == "cancelled", final
    assert time.monotonic() - asked < 5, "a running job is cancelled within one step"
    time.sleep(0.5)
    later = serverkit.status_of(client, job_id)
    assert later["state"] == "cancelled" and later["step"] == final["step"], (final, later)
    assert final["step"] < LONG
    check_errors(client.get(f"/jobs/{job_id}/result"), 409)
    check_errors(client.post(f"/jobs/{job_id}/cancel"), 409)  # cancelling a finished job


def test_cancel_a_queued_job_and_requeue_it(client, refs):
    """The second job is cancelled while the first runs: it never starts. Requeued, it runs from the start."""
    first = submit(client, job_spec(refs, LONG))["id"]
    second = submit(client, job_spec(refs, 6))
    third = submit(client, job_spec(refs, 6))
    wait_running(client, first)
    assert client.get("/health").json()["queue"] == {"queued": 2, "running": 1}
    assert serverkit.status_of(client, second["id"])["queue_position"] == 0
    assert serverkit.status_of(client, third["id"])["queue_position"] == 1

    response = client.post(f"/jobs/{second['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["state"] == "cancelled", "a queued job is cancelled at once"
    assert serverkit.status_of(client, third["id"])["queue_position"] == 0

    client.post(f"/jobs/{first}/cancel")
    done = wait_final(client, third["id"])
    assert done["state"] == "done", done
    never = serverkit.status_of(client, second["id"])
    assert never["state"] == "cancelled" and never["step"] == 0 and never["started"] is None, never
    check_errors(client.get(f"/jobs/{second['id']}/result"), 409)

    requeued = client.post(f"/jobs/{second['id']}/requeue")
    assert requeued.status_code == 202, requeued.text
    assert requeued.json()["state"] in ("queued", "running"), requeued.json()
    again = wait_final(client, second["id"])
    assert again["state"] == "done" and again["step"] == 6, again
    serverkit.decode_png(serverkit.result_bytes(client, second["id"]))
    check_errors(client.post(f"/jobs/{second['id']}/requeue"), 409)  # a done job is not requeued


def test_jobs_run_first_in_first_out(client, refs):
    ids = [submit(client, job_spec(refs, 20, seed=seed))["id"] for seed in range(3)]
    finals = [wait_final(client, job_id) for job_id in ids]
    assert [s["state"] for s in finals] == ["done"] * 3, finals
    for earlier, later in itertools.pairwise(finals):
        # one job at a time, in submission order
        assert when(earlier, "started") < when(later, "started"), (earlier, later)
        assert when(earlier, "finished") <= when(later, "started"), (earlier, later)


def test_a_failing_job_ends_failed_and_the_next_one_runs(client, refs, server):
    """An all-black mask passes submission checks that do not decode it, then fails in the worker.

    A server may check masks when the job is submitted (422); the contract allows that, and then the
    failure is provoked at run time by damaging the stored blob while the job waits in the queue.
    """
    black = upload_png(client, np.zeros((SIZE, SIZE), np.uint8))
    bad = job_spec(refs, 6)
    bad["regions"][1]["mask"] = black
    response = client.post("/jobs", json=bad)
    if response.status_code == 422:
        check_errors(response, 422, "regions[1].mask")
        bad_id = failing_in_the_worker(client, server, refs)
    else:
        assert response.status_code == 202, response.text
        bad_id = response.json()["id"]
    following = submit(client, job_spec(refs, 6))["id"]
    failed = wait_final(client, bad_id)
    assert failed["state"] == "failed", failed
    check_status(failed)
    assert failed["error"] and "Traceback" not in failed["error"], failed
    check_errors(client.get(f"/jobs/{bad_id}/result"), 409)
    assert wait_final(client, following)["state"] == "done"


def failing_in_the_worker(client: httpx.Client, server: serverkit.Server, refs: dict[str, str]) -> str:
    """Queue a job behind a long one, then truncate its (otherwise unused) mask blob on disk."""
    blocker = submit(client, job_spec(refs, LONG))["id"]
    mask = jobkit.rect_mask(SIZE, 5, 5, 40, 40)
    ref = upload_png(client, mask)
    spec = job_spec(refs, 6)
    spec["regions"][1]["mask"] = ref
    job_id = submit(client, spec)["id"]
    stored = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file() and ref[5:] in p.name]
    if not stored:
        client.post(f"/jobs/{job_id}/cancel")
        client.post(f"/jobs/{blocker}/cancel")
        pytest.skip("the server refuses bad masks at submission and its blob files are not found by name")
    for path in stored:
        path.write_bytes(path.read_bytes()[:60])
    client.post(f"/jobs/{blocker}/cancel")
    return job_id


# ---- what a client sees while a job runs ------------------------------------------------------


def test_previews_are_always_complete_pngs(client, refs):
    job_id = submit(client, job_spec(refs, 150, preview_every=1))["id"]
    seen = 0
    deadline = time.monotonic() + 60
    while True:
        state = serverkit.status_of(client, job_id)["state"]
        response = client.get(f"/jobs/{job_id}/preview")
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("image/png")
            assert serverkit.decode_png(response.content).size == (SIZE, SIZE)
            seen += 1
        else:
            check_errors(response, 404)  # no preview yet
            assert state in ("queued", "running"), state
        if state in serverkit.FINAL_STATES or time.monotonic() > deadline:
            break
    assert state == "done" and seen >= 10, (state, seen)


def test_twenty_clients_poll_a_running_job(client, refs, server):
    job_id = submit(client, job_spec(refs, 200))["id"]
    answers: list[list[dict[str, Any]]] = [[] for _ in range(20)]
    problems: list[str] = []
    start = threading.Barrier(len(answers))

    def poll(slot: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30, trust_env=False) as own:
            start.wait()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                response = own.get(f"/jobs/{job_id}")
                if response.status_code != 200:
                    problems.append(f"{response.status_code}: {response.text}")
                    return
                answers[slot].append(response.json())
                if response.json()["state"] in serverkit.FINAL_STATES:
                    return

    threads = [threading.Thread(target=poll, args=(slot,)) for slot in range(len(answers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not problems, problems[:3]
    for seen in answers:
        assert seen and seen[-1]["state"] == "done", seen[-1:]
        for status in seen:
            check_status(status)  # includes: never done with step < steps
        steps = [status["step"] for status in seen]
        assert steps == sorted(steps), f"step went back: {steps}"
        states = [status["state"] for status in seen]
        assert "queued" not in states[states.index("running") :] if "running" in states else True, states
    assert sum(len(seen) for seen in answers) >= 40
    midway = [s for seen in answers for s in seen if s["state"] == "running" and 0 < s["step"] < s["steps"]]
    assert midway and all(s["eta_seconds"] is not None and s["elapsed_seconds"] > 0 for s in midway), midway[:1]


# ---- errors: each one names its field, none shows a traceback ---------------------------------


def test_body_not_json(client):
    response = client.post("/jobs", content=b'{"version": 1, "steps": ', headers={"Content-Type": "application/json"})
    check_errors(response, 400, "(body)")


def test_unknown_field(client, refs):
    errors = check_errors(client.post("/jobs", json=job_spec(refs, colour="red")), 422, "colour")
    assert "colour" in errors[0]["message"]


@pytest.mark.parametrize(
    ("field", "change", "allowed"),
    [
        ("preset", {"preset": "no-such-preset"}, "watercolour"),
        ("guides[0].kind", {"guides": [{"kind": "text", "prompt": "a neon jungle"}]}, "style"),
    ],
)
def test_a_spec_the_engine_cannot_run_is_refused_at_submission(client, refs, field, change, allowed):
    """422 names the field and what is allowed (as `python -m engine validate` does), not a job that fails later."""
    response = client.post("/jobs", json=job_spec(refs, 3, **change))
    if response.status_code == 202:  # leave the shared queue as it was
        wait_final(client, response.json()["id"])
    errors = check_errors(response, 422, field)
    assert allowed in (errors[0]["allowed"] or ""), errors[0]


def test_every_spec_problem_is_listed(client, refs):
    spec = job_spec(refs, steps=0)
    spec["regions"][0]["guides"][0]["weight"] = "heavy"
    errors = check_errors(client.post("/jobs", json=spec), 422)
    assert {"steps", "regions[0].guides[0].weight"} <= {e["field"] for e in errors}, errors


@pytest.mark.parametrize("where", ["init.image", "regions[0].mask", "regions[1].guides[0].image"])
def test_blob_not_uploaded(client, refs, where):
    spec = job_spec(refs)
    missing = f"blob:{MISSING_SHA}"
    if where == "init.image":
        spec["init"]["image"] = missing
    elif where == "regions[0].mask":
        spec["regions"][0]["mask"] = missing
    else:
        spec["regions"][1]["guides"][0]["image"] = missing
    check_errors(client.post("/jobs", json=spec), 422, where)


@pytest.mark.parametrize("path", ["init.png", "/etc/passwd", "../../server.log", "file:///etc/hosts"])
def test_path_instead_of_blob(client, refs, path):
    spec = job_spec(refs)
    spec["init"]["image"] = path
    check_errors(client.post("/jobs", json=spec), 422, "init.image")


def test_blob_bytes_must_match_their_name(client):
    data = serverkit.png(jobkit.coffee(16))
    other = serverkit.sha256(data + b"x")
    check_errors(client.put(f"/blobs/{other}", content=data), 400, "sha256")
    assert client.head(f"/blobs/{other}").status_code == 404


@pytest.mark.parametrize("kind", ["truncated", "cut in its header", "not an image", "jpeg"])
def test_corrupt_or_foreign_blob(client, kind):
    data = serverkit.png(jobkit.coffee(32))
    if kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "cut in its header":  # ends inside the IHDR chunk: Pillow fails while opening, not loading
        data = data[:16]
    elif kind == "not an image":
        data = b"definitely not a PNG, just some text\n" * 4
    else:
        buffer = io.BytesIO()
        Image.fromarray(jobkit.coffee(32)).save(buffer, format="JPEG")
        data = buffer.getvalue()
    digest = serverkit.sha256(data)
    check_errors(client.put(f"/blobs/{digest}", content=data), 415, "sha256")
    assert client.head(f"/blobs/{digest}").status_code == 404


@pytest.mark.parametrize("name", ["A" * 64, "abc", "0" * 63, "0" * 65, "g" * 64, "0" * 63 + "."])
def test_malformed_blob_name(client, name):
    check_errors(client.put(f"/blobs/{name}", content=serverkit.png(jobkit.coffee(16))), 422, "sha256")


def test_body_over_the_size_limit(client, refs):
    data = serverkit.png(jobkit.coffee(16)) + b"\0" * ((1 << 20) + 1)  # --max-blob-mb 1
    check_errors(client.put(f"/blobs/{serverkit.sha256(data)}", content=data), 413)
    # a job spec larger than the largest blob allowed is over any sensible limit too
    spec = job_spec(refs, 3)
    spec["regions"][0]["name"] = "x" * (2 << 20)
    check_errors(client.post("/jobs", json=spec), 413)


@pytest.mark.parametrize("suffix", ["", "/preview", "/result", "/cancel", "/requeue"])
def test_unknown_job_id(client, suffix):
    method = "POST" if suffix in ("/cancel", "/requeue") else "GET"
    for job_id in ("j20261126T140102-3fa9c1d2", "nope", "x" * 300, "%2E%2E"):
        check_errors(client.request(method, f"/jobs/{job_id}{suffix}"), 404, "id")


def test_unknown_path_and_method_answer_in_the_error_shape(client):
    check_errors(client.get("/no/such/endpoint"), 404)
    check_errors(client.delete("/jobs"), 405)


def test_result_before_done_and_preview_before_the_first(client, refs):
    running = submit(client, job_spec(refs, LONG, preview_every=0))["id"]
    queued = submit(client, job_spec(refs, 5))["id"]
    wait_running(client, running)
    for job_id in (running, queued):
        check_errors(client.get(f"/jobs/{job_id}/result"), 409)
        check_errors(client.get(f"/jobs/{job_id}/preview"), 404)
        check_errors(client.post(f"/jobs/{job_id}/requeue"), 409)
    client.post(f"/jobs/{queued}/cancel")
    client.post(f"/jobs/{running}/cancel")
