"""One JSON object per line, to server.log and stderr: per request and per job state change."""

from __future__ import annotations

import json
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
    def __init__(self, path: Path | None, stream: IO[str] | None = sys.stderr):
        self._lock = threading.Lock()  # the event loop, the threadpool and the worker all log
        self._file = path.open("a", encoding="utf-8", buffering=1) if path is not None else None
        self._stream = stream

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"ts": utc_iso(), "event": event, **fields}, default=str) + "\n"
        with self._lock:
            for out in (self._file, self._stream):
                if out is None:
                    continue
                try:
                    out.write(line)
                    out.flush()
                except (OSError, ValueError):  # a closed stderr or a full disk must not stop the server
                    pass

    def close(self) -> None:
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
