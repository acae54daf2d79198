"""One generation job seen from the add-on: upload, submit, follow, fetch — all on a worker thread.

Blender's main thread only calls start(), cancel() and drain(), which never touch the network; the worker turns
everything that happens (answers, errors, the engine going away) into events, in order, and ends after a final
one (Done, Failed, Cancelled or Unreachable). No exception leaves the worker.

    session = JobSession(client, spec, blobs).start()
    ...in a timer: for event in session.drain(): show(event)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .engine_client import WORKER_TIMEOUT, EngineClient, EngineError, EngineUnreachable
from .error_words import describe_error, in_artist_words
from .png_codec import sha256_hex

POLL_RETRIES = 3  # transient failures in a row while following a job before it counts as unreachable
MAX_BACKOFF = 2.0  # seconds between retries, at most
CANCEL_POLL = 0.05  # seconds between polls once a cancel is sent: the job ends within one step


# ---- events ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    job_id: str


@dataclass(frozen=True)
class Progress:
    """A job status as the engine reports it: state, step, steps, fraction, eta_seconds, losses, queue_position…"""

    status: dict[str, Any]


@dataclass(frozen=True)
class Preview:
    png: bytes
    step: int


@dataclass(frozen=True)
class Done:
    png: bytes
    status: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """The spec was refused (`errors`: the engine's {field, message, value, allowed}) or the job failed."""

    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Cancelled:
    """`status` is the job's last status, or None when cancel() came before anything was submitted."""

    status: dict[str, Any] | None


@dataclass(frozen=True)
class Unreachable:
    message: str


Event = Submitted | Progress | Preview | Done | Failed | Cancelled | Unreachable
FINAL_EVENTS = (Done, Failed, Cancelled, Unreachable)


def _transient(exc: EngineError) -> bool:
    """Worth another try: no answer at all, or the server's own trouble (5xx)."""
    return isinstance(exc, EngineUnreachable) or (exc.status is not None and exc.status >= 500)


class _Finish(Exception):  # control flow inside the worker: ends it with `event`, never seen outside
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


def latest_preview_step(step: int, every: int) -> int:
    """The step the engine's latest preview was made at: it writes one after the first step, then every
    `every` steps."""
    if step < 1:
        return 0
    return max(1, step - step % every)


# ---- the session -----------------------------------------------------------------------------------------------


class JobSession:
    """One job: `spec` references its images as `blob:<sha256>`, and `blobs` maps each sha256 to its PNG bytes.

    `client`: an EngineClient (the worker makes its own, with `timeout`), or a callable returning the client the
    worker should use as it is (called on the worker thread).
    """

    def __init__(
        self,
        client: EngineClient | Callable[[], EngineClient],
        spec: dict[str, Any],
        blobs: dict[str, bytes],
        poll_interval: float = 0.2,
        timeout: float = WORKER_TIMEOUT,
        retries: int = POLL_RETRIES,
    ) -> None:
        self._client_source = client
        self.spec = spec
        self.blobs = dict(blobs)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.retries = retries
        self.job_id: str | None = None
        self._uploaded: list[str] = []
        self._skipped: list[str] = []
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._outcome: Event | None = None
        self._thread: threading.Thread | None = None

    # ---- the main thread's side: none of these waits on the network ----

    def start(self) -> JobSession:
        """Start the worker (once; later calls do nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="regia-job", daemon=True)
            self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the worker to cancel: before submitting it submits nothing; after, it asks the engine to cancel the
        job and ends with Cancelled (or Done, when the job finished first)."""
        self._cancel.set()
        self._wake.set()

    def drain(self) -> list[Event]:
        """Events posted since the last call, oldest first."""
        events: list[Event] = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    @property
    def finished(self) -> bool:
        """The final event has been posted (it may still wait in drain())."""
        return self._finished.is_set()

    @property
    def outcome(self) -> Event | None:
        """The final event, once finished."""
        return self._outcome

    @property
    def uploaded(self) -> list[str]:
        """sha256 of the blobs this session sent (the engine lacked them)."""
        return list(self._uploaded)

    @property
    def skipped(self) -> list[str]:
        """sha256 of the blobs the engine held already (HEAD said so): not sent again."""
        return list(self._skipped)

    def join(self, timeout: float | None = None) -> bool:
        """Block until the worker ends (scripts and tests; never on Blender's main thread). True when finished."""
        return self._finished.wait(timeout)

    # ---- the worker ----

    def _post(self, event: Event) -> None:
        self._events.put(event)

    def _run(self) -> None:
        try:
            final = self._work()
        except _Finish as finish:
            final = finish.event
        except EngineUnreachable as exc:
            final = Unreachable(str(exc))
        except EngineError as exc:
            final = Failed(self._error_text(exc), list(exc.errors))
        except Exception as exc:  # a bug must still end the session with something the user can read
            final = Failed(f"the job session failed unexpectedly: {type(exc).__name__}: {exc}")
        self._outcome = final
        self._post(final)
        self._finished.set()

    def _error_text(self, exc: EngineError) -> str:
        """Every spec problem, not just the first, in the artist's words: the user fixes them in one go."""
        if exc.status == 401 or not exc.errors:
            return str(exc)
        return "; ".join(describe_error(error, self.spec) for error in exc.errors)

    def _make_client(self) -> EngineClient:
        source = self._client_source
        try:
            if callable(source):
                return source()
            return source.with_timeout(self.timeout)
        except EngineError:
            raise
        except Exception as exc:  # a factory that cannot give a client: the engine is not there to talk to
            raise _Finish(Unreachable(f"no engine to talk to: {exc}")) from None

    def _work(self) -> Event:
        client = self._make_client()
        self._check_blobs()
        self._upload(client)
        if self._cancel.is_set():
            return Cancelled(None)
        status = client.submit(self.spec)
        self.job_id = status["id"]
        self._post(Submitted(self.job_id))
        return self._follow(client, status)

    def _check_blobs(self) -> None:
        for sha, data in self.blobs.items():
            if sha256_hex(data) != sha:
                raise _Finish(Failed(f"blob {sha} does not hold the bytes it names (they hash to {sha256_hex(data)})"))

    def _upload(self, client: EngineClient) -> None:
        """HEAD each blob and PUT only those the engine lacks."""
        for sha, data in self.blobs.items():
            if self._cancel.is_set():
                return
            if client.has_blob(sha):
                self._skipped.append(sha)
            else:
                client.upload_png(data, timeout=self.timeout)
                self._uploaded.append(sha)

    def _follow(self, client: EngineClient, status: dict[str, Any]) -> Event:
        """Poll the job until it ends, fetching a preview whenever its step passes the last one fetched."""
        follower = _Follower(self, client)
        follower.report(status)
        while True:
            try:
                final = follower.final_event(status)
                if final is not None:
                    return final
                follower.fetch_preview(status)
                self._sleep(min(self.poll_interval, CANCEL_POLL) if follower.cancel_sent else self.poll_interval)
                follower.send_cancel()
                status = client.status(follower.job_id)
                follower.failures = 0
            except EngineError as exc:
                if not _transient(exc) or follower.failures >= self.retries:
                    raise
                follower.failures += 1
                self._sleep(min(MAX_BACKOFF, self.poll_interval * 2**follower.failures))
                continue
            follower.report(status)

    def _sleep(self, seconds: float) -> None:
        """Wait between polls; cancel() cuts it short (once: later waits are whole again)."""
        if self._wake.wait(seconds):
            self._wake.clear()


class _Follower:
    """The worker's memory while it follows one submitted job."""

    def __init__(self, session: JobSession, client: EngineClient) -> None:
        self.session = session
        self.client = client
        self.job_id = session.job_id or ""
        # The engine writes a preview after step 1 and every `preview_every` steps (0: none, so never ask);
        # the spec's default is 10.
        self.preview_every = session.spec.get("preview_every", 10)
        self.preview_step = 0  # the step of the last preview posted
        self.last_png: bytes | None = None
        self.last_key: tuple[Any, ...] | None = None
        self.cancel_sent = False
        self.failures = 0

    def report(self, status: dict[str, Any]) -> None:
        """A Progress event when something a user sees changed (not for every identical poll)."""
        key = tuple(status.get(k) for k in ("state", "step", "queue_position", "cancel_requested"))
        if key != self.last_key:
            self.last_key = key
            self.session._post(Progress(status))

    def fetch_preview(self, status: dict[str, Any]) -> None:
        """GET the preview once the job has passed the step of a preview newer than the last one posted."""
        step = status.get("step") or 0
        if not isinstance(self.preview_every, int) or self.preview_every <= 0 or status.get("state") != "running":
            return
        due = latest_preview_step(step, self.preview_every)
        if due <= self.preview_step:
            return
        png = self.client.preview(self.job_id, timeout=self.session.timeout)
        if png is None:  # not written yet: ask again at the next poll
            return
        self.preview_step = due
        if png != self.last_png:
            self.last_png = png
            self.session._post(Preview(png, due))

    def send_cancel(self) -> None:
        if not self.session._cancel.is_set() or self.cancel_sent:
            return
        try:
            self.client.cancel(self.job_id)
        except EngineError as exc:
            if exc.status != 409:  # 409: the job ended first; its final state says how
                raise
        self.cancel_sent = True

    def final_event(self, status: dict[str, Any]) -> Event | None:
        state = status.get("state")
        if state == "done":
            png = self.client.result(self.job_id, timeout=self.session.timeout)
            if status.get("step", 0) > self.preview_step and png != self.last_png:
                self.session._post(Preview(png, status.get("step", 0)))  # the last image: also the last preview
            return Done(png, status)
        if state == "cancelled":
            return Cancelled(status)
        if state == "failed":
            return Failed(
                in_artist_words(status.get("error") or "the job failed (the engine gave no reason)", self.session.spec)
            )
        if state == "interrupted":
            return Failed("the engine stopped while the job ran (it is marked interrupted): requeue it or run it again")
        if self.session._cancel.is_set() and not self.cancel_sent:
            self.send_cancel()  # right after submit: do not wait a poll interval
        return None
