"""Requests a web page could make are refused before routing, as Jupyter and other local servers do.

A page the artist visits can send requests to 127.0.0.1 (a "simple" cross-site POST needs no CORS preflight), and a
page behind DNS rebinding can even read the answers. So, with or without a token:
- `Host` must name the server's own loopback address when it is bound to loopback (DNS rebinding);
- an `Origin` other than the server's own (or one given with --allow-origin) is refused, and so is `null`;
  browsers' `Sec-Fetch-Site: cross-site` / `same-site` requests too (a page on another localhost port is same-site);
- request bodies of the types a page may send without a preflight (text/plain, forms) are refused (and POST /jobs
  takes `application/json` only, checked by its route).
Clients that are not browsers send no Origin and no Sec-Fetch-Site, and are unaffected.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .config import ServerConfig, is_loopback
from .errors import body, item

SIMPLE_BODY_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
ORIGIN_ALLOWED = (
    "no Origin header (a client that is not a browser), the server's own origin, or one given with --allow-origin"
)


def host_name(host: str) -> str:
    """The name in a Host header or an origin's authority, without the port: '[::1]:80' -> '::1'."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


class RequestGuard:
    """Plain ASGI middleware: answers 403 or 415 before routing, so no route can be left out."""

    def __init__(self, app: ASGIApp, config: ServerConfig):
        self.app = app
        self.loopback_only = is_loopback(config.host)
        self.allowed_origins = {origin.rstrip("/").lower() for origin in config.allow_origins}

    def refusal(self, scope: Scope) -> tuple[int, dict[str, Any]] | None:
        """(status, error item) for a request a web page could have made, or None."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        if self.loopback_only and host and not is_loopback(host_name(host)):
            return 403, item(
                "Host",
                "this engine listens on loopback and answers only requests addressed to it there (DNS rebinding "
                "protection)",
                host,
                "localhost, 127.0.0.1 or [::1], with the port",
            )
        origin = headers.get(b"origin", b"").decode("latin-1").strip().lower().rstrip("/")
        allowed_origin = origin in self.allowed_origins
        if origin and not allowed_origin and (not host or origin.partition("://")[2] != host):
            return 403, item("Origin", "requests from web pages are refused", origin, ORIGIN_ALLOWED)
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
        if site in ("cross-site", "same-site") and not allowed_origin:
            return 403, item("Sec-Fetch-Site", "requests from other web sites are refused", site, ORIGIN_ALLOWED)
        kind = media_type(headers.get(b"content-type", b"").decode("latin-1"))
        if kind in SIMPLE_BODY_TYPES:  # the only ones a page may send without asking first (CORS preflight)
            return 415, item("Content-Type", "this body type is refused", kind, "application/json; image/png for blobs")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self.refusal(scope) if scope["type"] == "http" else None
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, error = refused
        payload = json.dumps(body([error])).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
