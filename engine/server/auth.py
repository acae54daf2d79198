"""Bearer token check for every request (OpenAPI and docs included) when a token is set."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import body, item

UNAUTHORIZED = json.dumps(
    body([item("Authorization", "missing or wrong bearer token", allowed="Authorization: Bearer <token>")])
).encode()


def token_matches(header: bytes | None, token: bytes) -> bool:
    if header is None:
        return False
    scheme, _, given = header.partition(b" ")
    # compare_digest takes the same time wherever the strings differ: no guessing byte by byte
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token)


class BearerAuth:
    """Plain ASGI middleware: it answers 401 before routing, so no route can be left out."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        if token_matches(header, self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(UNAUTHORIZED)).encode()),
                    (b"www-authenticate", b'Bearer realm="regia"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": UNAUTHORIZED})
