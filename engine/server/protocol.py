"""Connections as nginx treats them: a header timeout, a cap on open connections, and quiet when file descriptors
run out. uvicorn's h11 protocol has none of the first two (a client sending a byte a second holds its connection
for ever), so the server runs this subclass of it.

- **Header timeout.** A request's headers must arrive whole within `header_timeout` seconds of its first byte (or
  of the connection opening); otherwise the connection is closed. Idle keep-alive connections are closed by
  uvicorn's keep-alive timeout.
- **Connection cap.** Past `max_connections` open connections, a new one closes the oldest connection that has no
  request in progress (idle or still sending headers), so idle clients cannot lock others out; only when every
  connection is busy with a request is the new one answered 503 and closed. The cap is lowered to fit the process's
  open-file limit, so accepting never runs out of descriptors.
- **No log flood.** Descriptor exhaustion and dropped connections are logged at most once a minute each, with a
  count of how many happened since.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import body, item
from .logs import JsonLog, Throttle

FD_RESERVE = 64  # descriptors kept for everything but connections: model files, blobs, logs, worker threads


def _busy_response() -> bytes:
    payload = json.dumps(
        body([item("(server)", "every connection is busy with a request: try again shortly", allowed=None)])
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + payload


BUSY = _busy_response()


def descriptors_in_use() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux
        return None


def connection_cap(wanted: int) -> tuple[int, str | None]:
    """The connection cap that fits the open-file limit (raised to its hard maximum first), and why it was
    lowered, if it was."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to fit
        return wanted, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted, None
    room = soft - (descriptors_in_use() or 32) - FD_RESERVE
    if room >= wanted:
        return wanted, None
    cap = max(2, room)
    return cap, f"--max-connections {wanted} lowered to {cap} to fit the open-file limit ({soft})"


class ConnectionRules:
    """What every connection shares: the limits, and the throttled log lines."""

    def __init__(self, max_connections: int, header_timeout: float, log: JsonLog | None):
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.throttle = Throttle(log)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout and the connection cap (guarded_protocol sets `rules`)."""

    rules: ConnectionRules

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.opened_at = self.loop.time()
        self.evicted = False
        self.header_timer: Any = None
        self._arm_header_timer()
        if len(self.connections) > self.rules.max_connections:
            self._make_room()

    def idle(self) -> bool:
        """No request in progress: nothing sent yet, headers still coming, or between keep-alive requests."""
        return self.cycle is None or self.cycle.response_complete

    def _make_room(self) -> None:
        idle = [c for c in self.connections if c is not self and not getattr(c, "evicted", True) and c.idle()]
        if idle:
            oldest = min(idle, key=lambda c: c.opened_at)
            oldest.evicted = True
            oldest.transport.close()
            self.rules.throttle.write(
                "connections",
                "connection cap reached: closed the oldest idle connection",
                cap=self.rules.max_connections,
            )
            return
        self.evicted = True
        self.transport.write(BUSY)
        self.transport.close()
        self.rules.throttle.write(
            "busy", "connection cap reached and every connection is busy: answered 503", cap=self.rules.max_connections
        )

    def _arm_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.rules.header_timeout, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.idle() and not self.transport.is_closing():
            self.rules.throttle.write(
                "slow",
                "closed a connection whose request headers did not arrive in time",
                seconds=self.rules.header_timeout,
            )
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.idle():  # the first bytes of a request: its headers are now on the clock
            self._arm_header_timer()
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # headers complete: a new request began
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is not cycle:  # a pipelined request already began
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def guarded_protocol(rules: ConnectionRules) -> type[H11Protocol]:
    """The protocol class uvicorn builds each connection from, sharing `rules`."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"rules": rules})


def loop_exception_handler(throttle: Throttle):
    """asyncio's handler, quiet about descriptor exhaustion: asyncio retries accept() every second and would log a
    traceback each time."""

    def handle(loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        exhausted = isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
        if exhausted or "out of system resource" in str(context.get("message", "")):
            throttle.write(
                "descriptors",
                "out of file descriptors: new connections wait until some close",
                error=str(exc) if exc else None,
            )
            return
        loop.default_exception_handler(context)

    return handle
