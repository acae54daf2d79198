"""One thread per device runs jobs first in first out, through engine.execute as the CLI and storyboards do; on
Ray (ray_worker.py) one thread per engine actor does the same."""

from __future__ import annotations

import gc
import json
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import JobCancelled, SpecError, SpecErrors
from ..execute import execute
from ..images import atomic_write_bytes, png_bytes
from ..outputs import RunFolder
from ..progress import CancelToken, Progress
from ..refs import ImageSource
from ..spec import JobSpec, validate_spec
from .job_record import JobRecord, disk_full, interrupted_message
from .jobs import JobStore
from .logs import JsonLog

STOP_WAIT = 60.0  # seconds a shutdown waits for the running step to end


def _what_to_lower(spec: JobSpec | None) -> str:
    """The settings that size a job's memory, as the artist can change them."""
    if spec is None:
        return "lower width/height"
    parts = [f"lower width/height (now {spec.width}x{spec.height})"]
    if spec.models.clip is not None:
        parts.append(f"cutouts.count (now {spec.cutouts.count})")
    if len(spec.regions) > 1:
        parts.append(f"the number of regions (now {len(spec.regions)})")
    parts.append("use fewer style or content guides")
    return ", ".join(parts[:-1]) + " or " + parts[-1]


class JobFailed(Exception):
    """A failure whose message is already what the user reads (e.g. a remote engine worker that died)."""


def failure_message(exc: BaseException, spec: JobSpec | None, device: torch.device) -> str:
    """What a user reads in `error`: what went wrong and what to change."""
    size = f" at {spec.width}x{spec.height}" if spec is not None else ""
    if isinstance(exc, JobFailed):
        return str(exc)
    if isinstance(exc, SpecErrors):
        return "; ".join(error.one_line() for error in exc.errors)
    if isinstance(exc, SpecError):
        return exc.one_line()
    if isinstance(exc, torch.OutOfMemoryError):
        return f"out of GPU memory{size}: {_what_to_lower(spec)}, or start the engine with --device cpu"
    if isinstance(exc, MemoryError):
        return f"out of memory{size} on {device.type}: {_what_to_lower(spec)}"
    if disk_full(exc):
        where = f" writing {Path(exc.filename).name}" if getattr(exc, "filename", None) else ""
        return (
            f"no space left on device{where}: free space on the engine's disk (or delete old jobs), then requeue the "
            "job"
        )
    if isinstance(exc, OSError):  # the data folder: permissions, a vanished folder
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot read or write{where}: {exc.strerror or exc}"
    first = (str(exc).splitlines() or [""])[0][:200]
    return f"internal error ({type(exc).__name__}: {first}); see server.log"


def release_memory(device: torch.device) -> None:
    """Give back what a failed job held: its tensors are unreachable once its frames are gone."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":  # pragma: no cover - Apple only
        torch.mps.empty_cache()


def write_outputs(folder: Path, history: list[dict[str, float]], result_png: bytes) -> None:
    """What a finished job leaves: losses.csv, then result.png last (a result.png on disk means the job is whole)."""
    outputs = RunFolder(folder)
    outputs.write_losses(history)
    outputs.write_result_png(result_png)


class Worker:
    """Runs queued jobs on this process's device, one at a time. Subclasses run `slots` jobs at once elsewhere
    (ray_worker.py) by overriding _token and _execute; taking, finishing and stopping stay here."""

    slots = 1

    def __init__(
        self,
        store: JobStore,
        source: ImageSource,
        device: torch.device,
        log: JsonLog | None = None,
        after_job: Callable[[], None] | None = None,
    ):
        self.store = store
        self.source = source
        self.device = device
        self.log = log
        self.after_job = after_job  # e.g. pruning finished jobs; its failure never stops the worker
        self._threads = [
            threading.Thread(target=self._loop, args=(slot,), name=f"regia-worker-{device.type}-{slot}", daemon=True)
            for slot in range(self.slots)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, wait: float = STOP_WAIT) -> None:
        """Start no more jobs and stop the running ones at their next step; they end `interrupted`."""
        self.store.close()
        running = self.store.stop_running()
        deadline = time.monotonic() + wait
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        for record in running:  # a step that outlasts the wait: record the truth before exiting
            self.store.finish(record, "interrupted", interrupted_message(record.id))

    def about(self) -> dict[str, object]:
        """What /health adds about where jobs run (nothing: here)."""
        return {}

    def _token(self, slot: int) -> CancelToken:
        """What a cancel of the job this slot runs next sets."""
        return CancelToken()

    def _execute(self, record: JobRecord, spec: JobSpec, token: CancelToken, slot: int) -> tuple[bytes, list]:
        """Run the job: (its result PNG, its loss history); the job's own errors are raised."""
        preview_path = self.store.folder(record.id) / "preview.png"

        def on_progress(progress: Progress) -> None:
            preview = png_bytes(progress.preview) if progress.preview is not None else None
            self._report(record, preview_path, progress.step, progress.losses, progress.total, progress.eta, preview)

        result = execute(spec, self.source, self.device, on_progress=on_progress, cancel=token)
        return png_bytes(result.image), result.history

    def _report(
        self,
        record: JobRecord,
        preview_path: Path,
        step: int,
        losses: dict[str, float],
        total: float,
        eta: float | None,
        preview: bytes | None,
    ) -> None:
        """A running job's progress, as GET /jobs/{id} and /preview serve it."""
        if preview is not None:
            atomic_write_bytes(preview_path, preview)
        self.store.progress(record, step, losses, total, eta)

    def _loop(self, slot: int) -> None:
        while True:
            token = self._token(slot)
            record = self.store.take_next(token)
            if record is None:
                return
            try:
                self._run(record, token, slot)
            except Exception as exc:  # pragma: no cover - _run handles its own; the thread must live on
                if self.log is not None:
                    self.log.write("error", id=record.id, traceback=traceback.format_exc())
                self.store.finish(record, "failed", failure_message(exc, None, self.device))
            if self.after_job is not None:
                try:
                    self.after_job()
                except Exception:  # pruning is housekeeping: log it, run the next job
                    if self.log is not None:
                        self.log.write("error", where="after job", traceback=traceback.format_exc())

    def _run(self, record: JobRecord, token: CancelToken, slot: int) -> None:
        spec: JobSpec | None = None
        failure: tuple[str, bool] | None = None  # (message, out of memory)
        try:
            spec = validate_spec(json.loads(self.store.spec_text(record.id)))
            result_png, history = self._execute(record, spec, token, slot)
            write_outputs(self.store.folder(record.id), history, result_png)
        except JobCancelled:
            if record.cancel_requested:
                self.store.finish(record, "cancelled")
            else:
                self.store.finish(record, "interrupted", interrupted_message(record.id))
            return
        except Exception as exc:  # a job that raises must never take the server down
            if self.log is not None and not isinstance(exc, (SpecError, SpecErrors, JobFailed)):
                self.log.write("error", id=record.id, traceback=traceback.format_exc())
            failure = failure_message(exc, spec, self.device), isinstance(exc, (torch.OutOfMemoryError, MemoryError))
        if failure is not None:
            # Out of the except block: the exception's traceback (which holds the job's frames, and through them
            # every tensor of the job) is gone, so the memory can really be given back before the next job.
            if failure[1]:
                release_memory(self.device)
            self.store.finish(record, "failed", failure[0])
            return
        self.store.finish(record, "done")
