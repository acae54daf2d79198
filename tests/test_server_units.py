"""The server's parts on their own: blob store, blob source, job store and restart recovery, options.

Plus a few in-process checks of the app (starlette's TestClient, no subprocess): a tiny job end to end,
byte-identical to the CLI's result, and the token and size guards. All of it runs in a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

import jobkit
import numpy as np
import pytest

from engine.cli import run_spec_file
from engine.errors import SpecError
from engine.images import png_bytes
from engine.server import jobs as jobs_module
from engine.server.app import create_app
from engine.server.blobs import PATH_REFUSED, BlobSource, BlobStore, valid_name
from engine.server.config import ServerConfig, is_loopback
from engine.server.errors import ApiError
from engine.server.job_record import valid_job_id
from engine.server.jobs import JobStore
from engine.server.logs import JsonLog
from engine.server.serve import serve

with warnings.catch_warnings():  # starlette 1.x would rather have httpx2; httpx is what the project pins
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


PNG = png_bytes(jobkit.coffee(16))


# ---- blobs ------------------------------------------------------------------------------------


def test_blob_names_are_64_lowercase_hex():
    assert valid_name("0" * 64) and valid_name(sha(b"x"))
    for bad in ("A" * 64, "0" * 63, "0" * 65, "g" * 64, "../" + "0" * 61, "0" * 63 + "\n", ""):
        assert not valid_name(bad), bad


def test_blob_store_keeps_a_verified_png_once(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    name = sha(PNG)
    assert not store.has(name)
    assert store.put(name, PNG) is True
    assert store.put(name, PNG) is False  # already there
    assert store.has(name) and store.read(name) == PNG
    assert not temporaries(tmp_path)


def test_blob_store_refuses_bytes_that_do_not_hash_to_the_name(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    wrong = sha(PNG + b"x")
    with pytest.raises(ApiError) as info:
        store.put(wrong, PNG)
    assert info.value.status == 400 and info.value.errors[0]["field"] == "sha256"
    assert not store.has(wrong) and not list((tmp_path / "blobs").iterdir())


@pytest.mark.parametrize("data", [PNG[: len(PNG) // 2], PNG[:16], b"just text, not an image" * 3, b""])
def test_blob_store_refuses_corrupt_or_foreign_bytes(tmp_path, data):
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(ApiError) as info:
        store.put(sha(data), data)
    assert info.value.status == 415 and info.value.errors[0]["field"] == "sha256"
    assert not store.has(sha(data))


def test_blob_store_refuses_malformed_names_before_any_path(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(ApiError) as info:
        store.put("../../etc/passwd", PNG)
    assert info.value.status == 422 and info.value.errors[0]["field"] == "sha256"
    with pytest.raises(ValueError):
        store.path("../" + "0" * 61)
    assert not store.has("../x")


@pytest.mark.parametrize("ref", ["init.png", "/etc/passwd", "../../server.log", "file:///etc/hosts"])
def test_blob_source_refuses_paths(tmp_path, ref):
    source = BlobSource(BlobStore(tmp_path / "blobs"))
    with pytest.raises(SpecError) as info:
        source.open(ref, "regions[0].mask")
    assert info.value.field == "regions[0].mask"
    assert info.value.detail == PATH_REFUSED and info.value.allowed == "blob:<sha256>"


def test_blob_source_names_the_field_of_a_missing_blob_and_opens_a_stored_one(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    source = BlobSource(store)
    missing = source.problem(f"blob:{'0' * 64}", "init.image")
    assert missing is not None and missing.field == "init.image" and "PUT /blobs" in missing.detail
    store.put(sha(PNG), PNG)
    assert source.problem(f"blob:{sha(PNG)}", "init.image") is None
    assert source.open(f"blob:{sha(PNG)}", "init.image").size == (16, 16)


def test_blob_source_reports_a_blob_damaged_on_disk_at_its_field(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    store.put(sha(PNG), PNG)
    for cut in (16, 60):  # Pillow fails in open() or in load()
        store.path(sha(PNG)).write_bytes(PNG[:cut])
        with pytest.raises(SpecError) as info:
            BlobSource(store).open(f"blob:{sha(PNG)}", "regions[1].mask")
        assert info.value.field == "regions[1].mask" and "upload the image again" in info.value.detail


# ---- jobs -------------------------------------------------------------------------------------


class Token:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def spec_json(steps: int = 5) -> str:
    return json.dumps(jobkit.spec(16, steps))


def test_job_ids_are_made_here_and_checked_everywhere(tmp_path):
    store = JobStore(tmp_path / "jobs")
    status = store.create(spec_json(), 5)
    assert valid_job_id(status["id"]) and status["state"] == "queued" and status["queue_position"] == 0
    for bad in ("..", "../jobs", "j20261126T140102-3fa9c1d2/..", "x" * 300, ""):
        assert not valid_job_id(bad)
        with pytest.raises(ApiError) as info:
            store.status(bad)
        assert info.value.status == 404 and info.value.errors[0]["field"] == "id"
        with pytest.raises(ValueError):
            store.folder(bad)
    with pytest.raises(ApiError):
        store.status("j20261126T140102-3fa9c1d2")  # well formed, unknown


def test_job_files_are_written_whole(tmp_path):
    store = JobStore(tmp_path / "jobs")
    status = store.create(spec_json(), 5)
    folder = tmp_path / "jobs" / status["id"]
    assert json.loads((folder / "spec.json").read_text()) == jobkit.spec(16, 5)
    on_disk = json.loads((folder / "status.json").read_text())
    assert {k: v for k, v in on_disk.items() if not k.endswith("_ns")} == {**status, "queue_position": None}
    assert not temporaries(tmp_path)


def test_queue_is_first_in_first_out_and_cancel_takes_a_queued_job_out(tmp_path):
    store = JobStore(tmp_path / "jobs")
    ids = [store.create(spec_json(), 5)["id"] for _ in range(3)]
    cancelled = store.cancel(ids[1])
    assert cancelled["state"] == "cancelled" and cancelled["started"] is None and cancelled["finished"]
    assert store.status(ids[2])["queue_position"] == 1
    assert store.take_next(Token()).id == ids[0]
    assert store.take_next(Token()).id == ids[2]
    assert store.counts() == {"queued": 0, "running": 2}
    with pytest.raises(ApiError) as info:
        store.cancel(ids[1])
    assert info.value.status == 409


def test_cancel_of_a_running_job_reaches_its_token(tmp_path):
    store = JobStore(tmp_path / "jobs")
    job_id = store.create(spec_json(), 5)["id"]
    token = Token()
    record = store.take_next(token)
    status = store.cancel(job_id)
    assert token.cancelled and status["state"] == "running" and status["cancel_requested"]
    store.finish(record, "cancelled")
    assert store.status(job_id)["state"] == "cancelled"


def test_progress_is_in_memory_at_once_and_on_disk_at_most_every_second(tmp_path, monkeypatch):
    store = JobStore(tmp_path / "jobs")
    job_id = store.create(spec_json(10), 10)["id"]
    record = store.take_next(Token())
    for step in range(1, 5):
        store.progress(record, step, {"canvas/palette.g0": 0.5, "x": float("nan")}, 0.5, 1.0)
    status = store.status(job_id)
    assert status["step"] == 4 and status["losses"] == {"canvas/palette.g0": 0.5, "x": None}
    assert json.loads((tmp_path / "jobs" / job_id / "status.json").read_text())["step"] == 0
    monkeypatch.setattr(jobs_module, "FLUSH_EVERY", 0.0)
    store.progress(record, 5, {}, 0.4, 1.0)
    assert json.loads((tmp_path / "jobs" / job_id / "status.json").read_text())["step"] == 5


def test_requeue_starts_over_and_only_from_a_stopped_state(tmp_path):
    store = JobStore(tmp_path / "jobs")
    job_id = store.create(spec_json(), 5)["id"]
    with pytest.raises(ApiError) as info:
        store.requeue(job_id)  # queued
    assert info.value.status == 409
    record = store.take_next(Token())
    store.progress(record, 3, {"a": 1.0}, 1.0, 1.0)
    (tmp_path / "jobs" / job_id / "preview.png").write_bytes(PNG)
    store.finish(record, "failed", "boom")
    status = store.requeue(job_id)
    assert status["state"] == "queued" and status["step"] == 0 and status["error"] is None
    assert status["started"] is None and status["losses"] == {}
    assert not (tmp_path / "jobs" / job_id / "preview.png").exists()


def test_restart_recovery(tmp_path):
    """running -> interrupted; queued -> queued again in the old order; finished jobs as they were."""
    root = tmp_path / "jobs"
    store = JobStore(root)
    ids = [store.create(spec_json(), 5)["id"] for _ in range(4)]
    done = store.take_next(Token())
    store.finish(done, "done")
    store.take_next(Token())  # ids[1] is running when the process dies
    requeued = ids[2]
    store.cancel(requeued)
    store.requeue(requeued)  # now behind ids[3]
    (root / "j20990101T000000-00000000").mkdir()  # created but never acknowledged: no status.json
    (root / "not-a-job").mkdir()

    again = JobStore(root)
    again.recover()
    listed = [s["id"] for s in again.page(1000)[0]]
    assert listed == ids  # oldest first, as before
    assert again.status(ids[0])["state"] == "done"
    interrupted = again.status(ids[1])
    assert interrupted["state"] == "interrupted" and "requeue" in interrupted["error"]
    assert json.loads((root / ids[1] / "status.json").read_text())["state"] == "interrupted"
    assert again.status(ids[3])["queue_position"] == 0 and again.status(requeued)["queue_position"] == 1
    assert [again.take_next(Token()).id for _ in range(2)] == [ids[3], requeued]
    assert again.requeue(ids[1])["state"] == "queued"
    newer = again.create(spec_json(), 5)["id"]
    assert [s["id"] for s in again.page(1000)[0]][-1] == newer
    assert again.status(newer)["queue_position"] == 1


# ---- options ----------------------------------------------------------------------------------


def test_loopback_hosts():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com"))


def test_non_loopback_host_needs_a_token(tmp_path, capsys):
    assert serve(ServerConfig(data_dir=tmp_path / "d", host="0.0.0.0")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0]
    assert not (tmp_path / "d").exists()
    assert ServerConfig(host="0.0.0.0", token="t").problems() == []


# ---- the app in process -----------------------------------------------------------------------


def app_client(data_dir: Path, **options) -> TestClient:
    data_dir.mkdir(parents=True)
    app = create_app(ServerConfig(data_dir=data_dir, **options), JsonLog(data_dir / "server.log", None))
    return TestClient(app, base_url="http://127.0.0.1")  # a loopback Host: the server refuses any other


def wait_done(client: TestClient, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/jobs/{job_id}").json()
        if status["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def test_a_job_end_to_end_matches_the_cli_byte_for_byte(tmp_path):
    images = {"init.png": jobkit.astronaut(24), "mask.png": jobkit.rect_mask(24, 0, 0, 24, 12)}
    for name, pixels in images.items():
        jobkit.save(tmp_path / "cli" / name, pixels)
    palette = [{"kind": "palette", "colors": ["#223344", "#ddcc88"]}]
    spec = jobkit.spec(24, 6, seed=5, preview_every=2, init={"image": "init.png"})
    spec["regions"] = [{"name": "left", "mask": "mask.png", "feather": 1, "guides": palette}]
    cli = run_spec_file(jobkit.write_spec(tmp_path / "cli", spec), tmp_path / "out", "cpu", quiet=True)
    assert cli.image.shape == (24, 24, 3)

    with app_client(tmp_path / "data") as client:
        refs = {}
        for name, pixels in images.items():
            data = png_bytes(pixels)
            assert client.put(f"/blobs/{sha(data)}", content=data).status_code == 201
            refs[name] = f"blob:{sha(data)}"
        spec["init"]["image"] = refs["init.png"]
        spec["regions"][0]["mask"] = refs["mask.png"]
        submitted = client.post("/jobs", json=spec)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        status = wait_done(client, job_id)
        assert status["state"] == "done" and status["step"] == 6, status
        result = client.get(f"/jobs/{job_id}/result")
        assert result.headers["content-type"] == "image/png"
        assert result.content == (tmp_path / "out" / "result.png").read_bytes()
        assert client.get(f"/jobs/{job_id}/preview").content == result.content
        folder = tmp_path / "data" / "jobs" / job_id
        assert (folder / "losses.csv").read_text() == (tmp_path / "out" / "losses.csv").read_text()
        assert not temporaries(tmp_path / "data")
    lines = (tmp_path / "data" / "server.log").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["state"] for e in events if e["event"] == "job"] == ["queued", "running", "done"]
    assert any(e["event"] == "request" and e["path"] == "/jobs" and e["status"] == 202 for e in events)


def test_a_job_that_fails_in_preparation_says_why_and_the_next_runs(tmp_path):
    with app_client(tmp_path / "data") as client:
        black = png_bytes(np.zeros((16, 16), np.uint8))
        client.put(f"/blobs/{sha(black)}", content=black)
        bad = jobkit.spec(16, 3, regions=[{"name": "r", "mask": f"blob:{sha(black)}"}])
        bad_id = client.post("/jobs", json=bad).json()["id"]
        good_id = client.post("/jobs", json=jobkit.spec(16, 3)).json()["id"]
        failed = wait_done(client, bad_id)
        assert failed["state"] == "failed" and failed["error"].startswith("regions[0].mask: the mask is empty")
        assert wait_done(client, good_id)["state"] == "done"


def test_token_guards_every_route_including_the_docs(tmp_path):
    with app_client(tmp_path / "data", token="secret") as client:
        for path in ("/health", "/openapi.json", "/docs", "/jobs", "/nope"):
            response = client.get(path)
            assert response.status_code == 401 and response.json()["errors"][0]["field"] == "Authorization"
            assert "secret" not in response.text
        assert client.get("/openapi.json", headers={"Authorization": "Bearer secret"}).status_code == 200
        assert client.get("/health", headers={"Authorization": "bearer secret"}).status_code == 200
        assert client.get("/health", headers={"Authorization": "Bearer secre"}).status_code == 401


def test_bodies_over_the_limit_are_413_by_length_and_while_reading(tmp_path):
    with app_client(tmp_path / "data", max_blob_mb=1) as client:
        big = b"{" + b" " * (1 << 20)
        response = client.post("/jobs", content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413 and response.json()["errors"][0]["field"] == "(body)"

        def chunks():  # no Content-Length: the limit holds while reading
            for _ in range(3):
                yield b"\0" * (1 << 19)

        response = client.put(f"/blobs/{'0' * 64}", content=chunks())
        assert response.status_code == 413, response.text


def test_spec_problems_and_server_limits_are_listed_together(tmp_path):
    with app_client(tmp_path / "data", max_side=32, max_regions=1) as client:
        spec = jobkit.spec(64, 0, init={"image": "init.png"})
        spec["regions"] = [{"name": "a", "mask": f"blob:{'0' * 64}"}, {"name": "b", "mask": f"blob:{'1' * 64}"}]
        errors = client.post("/jobs", json=spec).json()["errors"]
        fields = {e["field"] for e in errors}
        assert {"width", "height", "steps"} <= fields, errors
        width = next(e for e in errors if e["field"] == "width")
        assert "32" in width["allowed"]
        spec["steps"] = 2
        errors = client.post("/jobs", json=spec).json()["errors"]
        assert {"width", "regions", "init.image", "regions[0].mask", "regions[1].mask"} <= {
            e["field"] for e in errors
        }, errors
        cut = client.post("/jobs", content=b"[1, 2", headers={"content-type": "application/json"})
        assert cut.json()["errors"][0]["field"] == "(body)"
        assert client.post("/jobs", json=[1]).json()["errors"][0]["field"] == "(body)"


@pytest.mark.parametrize(
    ("change", "field", "allowed"),
    [
        ({"preset": "no-such-preset"}, "preset", "watercolour"),
        ({"guides": [{"kind": "text", "prompt": "neon"}]}, "guides[0].kind", "palette"),
    ],
)
def test_what_the_engine_cannot_run_is_refused_at_submission(tmp_path, change, field, allowed):
    with app_client(tmp_path / "data") as client:
        response = client.post("/jobs", json=jobkit.spec(16, 3, **change))
        assert response.status_code == 422
        error = response.json()["errors"][0]
        assert error["field"] == field and allowed in error["allowed"]
        assert client.get("/jobs").json()["jobs"] == []
