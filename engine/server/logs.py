"""One JSON object per line, to server.log and stderr: per request and per job state change."""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any


def utc_iso(moment: datetime | None = None) -> str:
    """2026-11-26T14:01:02.123Z: the contract's timestamp format."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonLog:
    """Lines go to the file at once, and to the stream from a thread of its own.

    A parent that starts the engine with a pipe on stderr and never reads it would otherwise
    block the event loop (and every request) once the pipe is full: then stream lines are
    dropped, and server.log still has them all.
    """

    STREAM_BACKLOG = 10_000  # lines

    def __init__(self, path: Path | None, stream: IO[str] | None = sys.stderr):
        self._lock = threading.Lock()  # the event loop, the threadpool and the worker all log
        self._file = path.open("a", encoding="utf-8", buffering=1) if path is not None else None
        self._stream = stream
        self._pending: queue.Queue[str | None] = queue.Queue(self.STREAM_BACKLOG)
        self._pump: threading.Thread | None = None
        if stream is not None:
            self._pump = threading.Thread(target=self._pump_lines, name="regia-log", daemon=True)
            self._pump.start()

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"ts": utc_iso(), "event": event, **fields}, default=str) + "\n"
        with self._lock:
            if self._file is not None:
                with contextlib.suppress(OSError, ValueError):  # a full disk must not stop the server
                    self._file.write(line)
        if self._pump is not None:
            with contextlib.suppress(queue.Full):
                self._pending.put_nowait(line)

    def _pump_lines(self) -> None:
        while (line := self._pending.get()) is not None:
            with contextlib.suppress(OSError, ValueError):  # a closed stderr
                self._stream.write(line)  # type: ignore[union-attr]
                self._stream.flush()  # type: ignore[union-attr]

    def close(self, wait: float = 2.0) -> None:
        if self._pump is not None:
            with contextlib.suppress(queue.Full):
                self._pending.put(None, timeout=wait)
            self._pump.join(wait)
            self._pump = None
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class RequestLog:
    """Plain ASGI middleware: one `request` line per HTTP request, with status and duration."""

    def __init__(self, app: Any, log: JsonLog):
        self.app = app
        self.log = log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before answering

        async def send_logged(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            client = scope.get("client")
            self.log.write(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 2),
                client=client[0] if client else None,
            )


class Throttle:
    """Log lines that could flood (one per dropped connection, one per failed accept) at most once a minute per
    kind, each saying how many times it happened since the last line."""

    INTERVAL = 60.0  # seconds

    def __init__(self, log: JsonLog | None, interval: float = INTERVAL):
        self.log = log
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def write(self, kind: str, message: str, **fields: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self._count[kind] = self._count.get(kind, 0) + 1
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                return
            times, self._count[kind], self._last[kind] = self._count[kind], 0, now
        if self.log is not None:
            self.log.write("warning", kind=kind, message=message, times=times, **fields)
