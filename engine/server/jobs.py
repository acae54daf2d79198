"""Jobs: one folder each, status served from memory, status.json kept for restarts.

Every state change is written to status.json (atomically); progress at most once a second, so
a running job pays nothing per step. After a restart a job that was running is `interrupted`
and queued jobs are queued again in their old order.

A job folder appears whole or not at all: it is made under a temporary name with its spec.json and status.json, then
renamed into place. On a full disk, status.json is rewritten in place (its block is already allocated), so the
reason a job failed survives a restart. Finished jobs beyond the retention (`keep`, `keep_days`) are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from ..images import atomic_write_bytes
from .datadir import JOB_TMP_PREFIX
from .errors import ApiError
from .job_record import (
    FINISHED,
    FLUSH_EVERY,
    JOB_FILES,
    PAGE_SIZE,
    REQUEUEABLE,
    Cancellable,
    JobRecord,
    disk_full,
    finite_or_none,
    interrupted_message,
    new_job_id,
    overwrite_in_place,
    record_from,
    stamp_seconds,
    valid_job_id,
)
from .logs import JsonLog, utc_iso
from .safe_files import read_nofollow


class JobStore:
    def __init__(self, root: Path, log: JsonLog | None = None):
        self.root = root
        self.log = log
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._records: dict[str, JobRecord] = {}  # in creation order
        self._queue: list[str] = []  # queued ids, next first
        self._last_ns = 0
        self._closed = False

    # ---- paths -------------------------------------------------------------------------

    def folder(self, job_id: str) -> Path:
        if not valid_job_id(job_id):  # ids are made here; anything else never becomes a path
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def read_file(self, job_id: str, name: str) -> bytes:
        """A file of the job's folder, never through a link (OSError when it cannot be read)."""
        self.folder(job_id)  # validates the id
        return read_nofollow(self.root, job_id, name)

    def spec_text(self, job_id: str) -> str:
        return self.read_file(job_id, "spec.json").decode("utf-8")

    # ---- reads (from memory, cheap) ---------------------------------------------------

    def _find(self, job_id: str) -> JobRecord:
        record = self._records.get(job_id) if valid_job_id(job_id) else None
        if record is None:
            raise ApiError.one(404, "id", "no job with this id", value=job_id)
        return record

    def status(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._find(job_id)
            return record.status(self._position(job_id), time.monotonic())

    def state(self, job_id: str) -> str:
        with self._lock:
            return self._find(job_id).state

    def page(self, limit: int = PAGE_SIZE, after: int | None = None, states: set[str] | None = None):
        """Statuses oldest first, `limit` at a time from after the cursor `after`; returns (statuses, next cursor or
        None). The cursor is a creation stamp, so jobs removed between pages do not disturb it."""
        with self._lock:
            positions = {job_id: index for index, job_id in enumerate(self._queue)}
            now = time.monotonic()
            chosen = [
                r
                for r in self._records.values()
                if (after is None or r.created_ns > after) and (states is None or r.state in states)
            ]
            page = chosen[:limit]
            statuses = [r.status(positions.get(r.id), now) for r in page]
            more = len(chosen) > limit
        return statuses, (str(page[-1].created_ns) if more and page else None)

    def delete(self, job_id: str) -> None:
        """Remove a finished job and its files; a queued or running one is cancelled first, not deleted."""
        with self._lock:
            record = self._find(job_id)
            if record.state not in FINISHED:
                raise ApiError.one(
                    409,
                    "id",
                    f"the job is {record.state}: cancel it first",
                    value=record.state,
                    allowed=", ".join(FINISHED),
                )
            del self._records[job_id]
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        if self.log is not None:
            self.log.write("job", id=job_id, state="deleted")

    def prune(self, keep: int, keep_days: float) -> list[str]:
        """Remove finished jobs past the newest `keep`, and those finished more than `keep_days` ago (0: no age
        limit). Returns the ids removed."""
        cutoff = time.time() - keep_days * 86400 if keep_days > 0 else None
        with self._lock:
            finished = [r for r in self._records.values() if r.state in FINISHED]
            finished.sort(key=lambda r: (r.finished or r.created, r.created_ns), reverse=True)
            doomed = finished[keep:]
            if cutoff is not None:
                doomed += [r for r in finished[:keep] if stamp_seconds(r.finished or r.created) < cutoff]
            for record in doomed:
                del self._records[record.id]
        for record in doomed:
            shutil.rmtree(self.folder(record.id), ignore_errors=True)
        if doomed and self.log is not None:
            self.log.write("pruned", jobs=len(doomed), keep=keep, keep_days=keep_days)
        return [r.id for r in doomed]

    def counts(self) -> dict[str, int]:
        with self._lock:
            running = sum(1 for r in self._records.values() if r.state == "running")
            return {"queued": len(self._queue), "running": running}

    def _position(self, job_id: str) -> int | None:
        try:
            return self._queue.index(job_id)
        except ValueError:
            return None

    # ---- changes from requests ---------------------------------------------------------

    def _next_ns(self) -> int:
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns

    def create(self, spec_json: str, steps: int) -> dict[str, Any]:
        """A new queued job. Its folder appears whole (spec.json and status.json) before anyone hears of it."""
        with self._lock:
            stamp = self._next_ns()
        record = JobRecord(id=new_job_id(), steps=steps, created=utc_iso(), created_ns=stamp, queued_ns=stamp)
        staging = self.root / f"{JOB_TMP_PREFIX}{record.id}"
        try:
            staging.mkdir()
            atomic_write_bytes(staging / "spec.json", spec_json.encode("utf-8"))
            atomic_write_bytes(staging / "status.json", self._status_json(record)[0])
            os.rename(staging, self.folder(record.id))  # a new id each time: nothing is ever replaced
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        record.written = record.version
        with self._lock:
            self._records[record.id] = record
            self._queue.append(record.id)
            self._wake.notify_all()
            status = record.status(self._position(record.id), time.monotonic())
        self._logged(record)
        return status

    def cancel(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._find(job_id)
            if record.state == "queued":
                self._queue.remove(job_id)
                record.state, record.finished, record.cancel_requested = "cancelled", utc_iso(), True
            elif record.state == "running":
                record.cancel_requested = True
                if record.token is not None:
                    record.token.cancel()
            else:
                raise ApiError.one(
                    409, "id", f"the job is already {record.state}", value=record.state, allowed="queued, running"
                )
            record.version += 1
        self._flush(record)
        if record.state == "cancelled":
            self._logged(record)
        return self.status(job_id)

    def requeue(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._find(job_id)
            if record.state not in REQUEUEABLE:
                raise ApiError.one(
                    409, "id", f"the job is {record.state}", value=record.state, allowed=", ".join(REQUEUEABLE)
                )
            for name in JOB_FILES:  # from the start: no stale preview is served
                (self.folder(job_id) / name).unlink(missing_ok=True)
            record.state, record.step, record.losses, record.total_loss = "queued", 0, {}, None
            record.error, record.cancel_requested, record.started, record.finished = None, False, None, None
            record.elapsed, record.eta, record.run_since = 0.0, None, None
            record.queued_ns = self._next_ns()
            record.version += 1
            self._queue.append(job_id)
            self._wake.notify_all()
        self._flush(record)
        self._logged(record)
        return self.status(job_id)

    # ---- changes from the worker -------------------------------------------------------

    def take_next(self, token: Cancellable) -> JobRecord | None:
        """Block until a job is queued; mark it running with this cancel token. None once closed."""
        with self._lock:
            while not self._queue and not self._closed:
                self._wake.wait()
            if self._closed:
                return None
            record = self._records[self._queue.pop(0)]
            record.state, record.started, record.run_since = "running", utc_iso(), time.monotonic()
            record.token = token
            record.version += 1
        self._flush(record)
        self._logged(record)
        return record

    def progress(self, record: JobRecord, step: int, losses: dict[str, float], total: float, eta: float | None):
        now = time.monotonic()
        with self._lock:
            record.step = step
            record.losses = {key: finite_or_none(value) for key, value in losses.items()}
            record.total_loss = finite_or_none(total)
            record.eta, record.eta_at = eta, now
            record.version += 1
            due = now - record.flushed_at >= FLUSH_EVERY
        if due:
            self._flush(record)

    def finish(self, record: JobRecord, state: str, error: str | None = None) -> None:
        with self._lock:
            if record.state != "running":
                return
            now = time.monotonic()
            record.state, record.error, record.finished = state, error, utc_iso()
            record.elapsed = now - record.run_since if record.run_since is not None else 0.0
            record.token, record.run_since, record.eta = None, None, None
            if state == "done":
                record.step = record.steps
            record.version += 1
        self._flush(record)
        self._logged(record)

    def close(self) -> None:
        """No job starts after this; the worker's take_next returns None."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()

    def stop_running(self) -> list[JobRecord]:
        """Ask running jobs to stop (not a user's cancel: they end `interrupted`)."""
        with self._lock:
            running = [r for r in self._records.values() if r.state == "running"]
            for record in running:
                if record.token is not None:
                    record.token.cancel()
            return running

    # ---- persistence -------------------------------------------------------------------

    def _status_json(self, record: JobRecord) -> tuple[bytes, int]:
        with self._lock:
            data = record.status(None, time.monotonic())
            data["created_ns"], data["queued_ns"] = record.created_ns, record.queued_ns
            return json.dumps(data, indent=1).encode(), record.version

    def _flush(self, record: JobRecord) -> None:
        data, version = self._status_json(record)
        with record.io_lock:  # writers in several threads: never let an older snapshot win
            if version <= record.written:
                return
            path = self.folder(record.id) / "status.json"
            try:
                try:
                    atomic_write_bytes(path, data)
                except OSError as exc:
                    if not disk_full(exc):
                        raise
                    overwrite_in_place(path, data)  # no room for a new file: the old one's block holds it
            except OSError as exc:  # the in-memory status is still right; say why the file is not
                if self.log is not None:
                    self.log.write("error", id=record.id, message=f"cannot write status.json: {exc}")
                return
            record.written = version
            record.flushed_at = time.monotonic()

    def _logged(self, record: JobRecord) -> None:
        if self.log is not None:
            self.log.write("job", id=record.id, state=record.state, step=record.step, error=record.error)

    def recover(self) -> None:
        """Load the jobs of earlier runs: running ones become interrupted, queued ones queue again."""
        loaded: list[JobRecord] = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not valid_job_id(folder.name):
                continue
            try:
                data = json.loads((folder / "status.json").read_text(encoding="utf-8"))
                loaded.append(record_from(folder.name, data))
            except (OSError, ValueError, TypeError, KeyError) as exc:  # never acknowledged, or damaged
                if self.log is not None:
                    self.log.write("skip", id=folder.name, message=f"unreadable status.json: {exc}")
        loaded.sort(key=lambda r: (r.created_ns, r.created, r.id))
        changed = []
        with self._lock:
            for record in loaded:
                self._records[record.id] = record
                self._last_ns = max(self._last_ns, record.created_ns, record.queued_ns)
                if record.state == "running":
                    record.state, record.finished = "interrupted", utc_iso()
                    record.error = interrupted_message(record.id)
                    record.version += 1
                    changed.append(record)
            self._queue = [r.id for r in sorted(loaded, key=lambda r: r.queued_ns) if r.state == "queued"]
        for record in changed:
            self._flush(record)
            self._logged(record)
