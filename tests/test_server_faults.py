"""Faults inside a job, in process: out of memory ends the job `failed` saying what to lower, its memory is given
back, and the next job runs. On the CPU the error is injected where a GPU would raise it (inside the step loop)."""

from __future__ import annotations

import gc
import hashlib
import json
import time
import weakref

import jobkit
import torch

from engine import optimize as optimize_module
from engine.images import png_bytes
from engine.server.blobs import BlobSource, BlobStore
from engine.server.jobs import JobStore
from engine.server.worker import Worker, failure_message
from engine.spec import validate_spec

SIZE = 32


def wait_final(store: JobStore, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while (status := store.status(job_id))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, status
        time.sleep(0.02)
    return status


def test_out_of_memory_fails_the_job_with_what_to_lower_frees_it_and_the_next_runs(tmp_path, monkeypatch):
    blobs = BlobStore(tmp_path / "blobs")
    masks = []
    for mask in jobkit.column_masks(SIZE, 3):
        data = png_bytes(mask)
        blobs.put(hashlib.sha256(data).hexdigest(), data)
        masks.append(f"blob:{hashlib.sha256(data).hexdigest()}")
    palette = [{"kind": "palette", "colors": ["#aa3322", "#2233aa"]}]
    regions = [{"name": f"r{i}", "mask": ref, "guides": palette} for i, ref in enumerate(masks)]
    spec = jobkit.spec(SIZE, 4, regions=regions)

    real_run = optimize_module.run
    held: list[weakref.ref] = []

    def run_out_of_memory(job, **kwargs):
        if not held:  # the first job: its tensors are alive when the allocation fails
            held.append(weakref.ref(job.generator))
            held.append(weakref.ref(job.layout.guided))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(job, **kwargs)

    monkeypatch.setattr(optimize_module, "run", run_out_of_memory)  # the runner execute() picks
    store = JobStore(tmp_path / "jobs")
    alive_when_failed: list[bool] = []
    real_finish = store.finish

    def finish(record, state, error=None):  # the moment the job is reported failed, its memory must be free
        if state == "failed":
            gc.collect()
            alive_when_failed.extend(ref() is not None for ref in held)
        real_finish(record, state, error)

    monkeypatch.setattr(store, "finish", finish)
    first = store.create(json.dumps(spec), 4)["id"]
    second = store.create(json.dumps(spec), 4)["id"]
    worker = Worker(store, BlobSource(blobs), torch.device("cpu"))
    worker.start()
    try:
        failed = wait_final(store, first)
        assert failed["state"] == "failed", failed
        error = failed["error"]
        assert error.startswith(f"out of GPU memory at {SIZE}x{SIZE}: lower width/height (now {SIZE}x{SIZE})"), error
        assert "the number of regions (now 3)" in error and "--device cpu" in error, error
        assert alive_when_failed == [False, False], "the failed job's tensors were still alive when it was reported"
        done = wait_final(store, second)
        assert done["state"] == "done", done["error"]
    finally:
        worker.stop()


def test_the_message_names_the_cutouts_of_a_clip_job():
    spec = validate_spec(
        jobkit.spec(
            512,
            guides=[{"kind": "text", "prompt": "a castle"}],
            models={"clip": {"name": "regia-tiny", "weights": "random"}},
            cutouts={"count": 64},
        )
    )
    message = failure_message(torch.OutOfMemoryError("out of memory"), spec, torch.device("cuda"))
    assert "(now 512x512)" in message and "cutouts.count (now 64)" in message
    assert "out of memory at 512x512 on cpu" in failure_message(MemoryError(), spec, torch.device("cpu"))
