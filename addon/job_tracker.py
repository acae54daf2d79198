"""Every job the add-on runs, image-editor jobs and storyboard shots alike, followed from one timer.

Pure (no bpy): the bookkeeping (which jobs wait for the engine, which have a session, which have ended), opening a
job's session once the engine is ready, cancelling, and one exception guard. What a job's events mean in Blender
(its status, the preview, the result image, a shot's next version) is its view's business: the bpy side implements
JobView once per kind of job (addon/blender/image_jobs.py, shot_jobs.py) and calls Tracker.poll from its one timer.

The guard: an exception while one job's event is applied (say its result cannot be written) fails THAT job, with
a message the artist can read; the timer and every other job go on.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .job_session import FINAL_EVENTS, Cancelled, Done, JobSession, Preview, Unreachable

Key = tuple[str, ...]  # e.g. ("image", target name) or ("shot", scene name, shot uid)
POLL_INTERVAL = 0.1  # seconds between timer calls while anything is running


# ---- the tracker's own events, besides the job session's ----------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """Submitted to the tracker: it goes to the engine as soon as the engine is ready."""


@dataclass(frozen=True)
class Sending:
    """The job's session started: its images go to the engine."""


@dataclass(frozen=True)
class Cancelling:
    """Cancel was asked of a job the engine has: it ends with Cancelled (or Done, had it finished first)."""


# What the artist reads when applying an event raised: by the event that was being applied.
_FAILED_WHILE = {
    Done: "Could not keep the result",
    Preview: "Could not show the preview",
    Sending: "Could not send the job",
}
_FAILED_OTHERWISE = "Could not follow the job"


class Session(Protocol):
    def start(self) -> Session: ...
    def cancel(self) -> None: ...
    def drain(self) -> list[Any]: ...


class Engine(Protocol):
    """The connection to an engine, as the tracker needs it (addon/blender/connection.py)."""

    def poll(self) -> str:
        """Advance a managed engine's start-up without waiting: stopped, starting, ready, failed or remote."""
        ...

    def client(self) -> Any | None:
        """A client for a ready engine, else None."""
        ...

    def failure(self) -> str:
        """Why the engine is not running."""
        ...


class JobView(Protocol):
    """What one kind of job does in Blender. Every call is guarded: an exception fails that job alone."""

    def alive(self, job: Job) -> bool:
        """The job's owner (a target image, a shot) still exists; when not, the job is cancelled and dropped."""
        ...

    def apply(self, job: Job, event: Any) -> None:
        """Show one event: Waiting, Sending, Cancelling, or one of job_session's (Submitted, Progress, Preview,
        Done, Failed, Cancelled, Unreachable)."""
        ...

    def fail(self, job: Job, message: str) -> None:
        """Mark the job failed with `message` (applying one of its events raised)."""
        ...


@dataclass(eq=False)
class Job:
    key: Key
    view: JobView
    spec: dict[str, Any]
    blobs: dict[str, bytes]
    data: Any = None  # what the view needs besides the spec (e.g. the settings that made the job)
    session: Session | None = None
    started: float = field(default_factory=time.perf_counter)
    ended: bool = False

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def _matches(key: Key, prefix: Key) -> bool:
    return key[: len(prefix)] == prefix


class Tracker:
    """The jobs by key; `poll()` is the body of the one timer (it returns the seconds until the next call, or None
    when there is nothing left to watch)."""

    def __init__(
        self,
        engine: Engine,
        session_factory: Callable[..., Session] = JobSession,
        interval: float = POLL_INTERVAL,
        log: Callable[[str], None] = print,
    ) -> None:
        self.engine = engine
        self.session_factory = session_factory
        self.interval = interval
        self.log = log
        self.jobs: dict[Key, Job] = {}

    # ---- what operators call ----

    def submit(self, key: Key, view: JobView, spec: dict[str, Any], blobs: dict[str, bytes], data: Any = None) -> Job:
        """Queue a job; it goes to the engine at the next poll that finds the engine ready."""
        old = self.jobs.pop(key, None)
        if old is not None and old.session is not None:
            old.session.cancel()
        job = Job(key, view, spec, blobs, data)
        self.jobs[key] = job
        self._guarded(job, lambda: view.apply(job, Waiting()), None)
        return job

    def running(self, prefix: Key) -> list[Job]:
        """The jobs whose key starts with `prefix` (("shot", scene) is every shot of the scene)."""
        return [job for key, job in self.jobs.items() if _matches(key, prefix)]

    def is_running(self, prefix: Key) -> bool:
        return bool(self.running(prefix))

    def cancel(self, prefix: Key) -> int:
        """Cancel the jobs under `prefix`; returns how many. A job still waiting for the engine ends at once."""
        jobs = self.running(prefix)
        for job in jobs:
            if job.session is None:  # nothing was sent: nothing to tell the engine
                job.ended = True
                self._guarded(job, lambda job=job: job.view.apply(job, Cancelled(None)), None)
                self._forget(job)
            else:
                job.session.cancel()
                self._guarded(job, lambda job=job: job.view.apply(job, Cancelling()), None)
        return len(jobs)

    def shutdown(self) -> None:
        for job in self.jobs.values():
            if job.session is not None:
                job.session.cancel()
        self.jobs.clear()

    # ---- the timer ----

    def poll(self) -> float | None:
        """Advance the engine's start-up and every job; never waits on the network, never raises."""
        try:
            state = self.engine.poll()
        except Exception:  # the timer must survive the connection's bugs too
            self.log(f"Regia: the engine's state could not be read:\n{traceback.format_exc()}")
            state = "unknown"
        for job in list(self.jobs.values()):
            self._advance(job, state)
        return self.interval if self.jobs or state == "starting" else None

    def _advance(self, job: Job, state: str) -> None:
        if not self._guarded(job, lambda: job.view.alive(job), None):
            if job.session is not None:  # the target or shot was deleted: stop its job
                job.session.cancel()
            job.ended = True
        elif job.session is None:
            self._guarded(job, lambda: self._start(job, state), Sending)
        if job.session is not None and not job.ended:
            for event in job.session.drain():
                self._guarded(job, lambda event=event: self._deliver(job, event), type(event))
                if job.ended:
                    break
        if job.ended:
            self._forget(job)

    def _start(self, job: Job, state: str) -> None:
        if state == "failed":
            self._deliver(job, Unreachable(f"The engine did not start: {self.engine.failure()}"))
            return
        client = self.engine.client()
        if client is None:  # starting: wait; stopped: say so
            if state == "stopped":
                self._deliver(job, Unreachable("The engine is not running: start it in Regia's panel"))
            return
        job.session = self.session_factory(client, job.spec, job.blobs).start()
        self._deliver(job, Sending())

    def _deliver(self, job: Job, event: Any) -> None:
        if isinstance(event, FINAL_EVENTS):
            job.ended = True
        job.view.apply(job, event)

    def _guarded(self, job: Job, action: Callable[[], Any], event_type: type | None) -> Any:
        """Run `action` for `job`; an exception fails the job (its session cancelled) and returns None."""
        try:
            return action()
        except Exception as error:
            self.log(f"Regia: job {job.key} failed in Blender:\n{traceback.format_exc()}")
            self._fail(job, f"{_FAILED_WHILE.get(event_type, _FAILED_OTHERWISE)}: {type(error).__name__}: {error}")
            return None

    def _fail(self, job: Job, message: str) -> None:
        if job.session is not None:
            job.session.cancel()
        job.ended = True
        try:
            job.view.fail(job, message)
        except Exception:  # the owner is gone or broken: the console has it, and the job still ends
            self.log(f"Regia: job {job.key} could not be marked failed:\n{traceback.format_exc()}")

    def _forget(self, job: Job) -> None:
        if self.jobs.get(job.key) is job:  # not a newer job submitted under the same key
            del self.jobs[job.key]
