"""A small HTTP client for the engine server (docs/server-api.md), with no bpy import so it is tested without Blender.

Only the standard library: the add-on runs inside Blender's Python, where third-party packages are not available.
Calls are made from Blender's main thread, so the default timeout is short (100 ms); uploads pass a longer one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import urllib.error
import urllib.request
from typing import Any

DEFAULT_TIMEOUT = 0.1  # seconds: Blender's main thread must never wait on the network for longer
WORKER_TIMEOUT = 30.0  # seconds per request off the main thread: uploads can be large and the engine busy
UPLOAD_TIMEOUT = 30.0  # a PUT of a large PNG legitimately takes longer; callers may pass their own
START_HINT = "start it from the Regia preferences"


class EngineError(Exception):
    """An engine call that failed: `.status` is the HTTP status (None when no answer came), `.errors` the contract's
    list of {field, message, value, allowed}, and str() a message a user can act on."""

    def __init__(self, message: str, status: int | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class EngineUnreachable(EngineError):
    """No answer at all (connection refused, timeout, unknown host): the engine is likely not running."""


def _describe_error(error: dict[str, Any]) -> str:
    """One contract error as "field: message (allowed: ...)" — what a user reads in Blender's status bar."""
    text = f"{error.get('field') or '(body)'}: {error.get('message') or 'error'}"
    if error.get("allowed"):
        text += f" (allowed: {error['allowed']})"
    return text


def _parse_errors(body: bytes) -> list[dict[str, Any]]:
    """The contract's error list, or [] when the body is not in that shape (a proxy page, say)."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def http_error(status: int, body: bytes) -> EngineError:
    """An EngineError for an HTTP error answer; a 401 always says the token is the problem."""
    errors = _parse_errors(body)
    if status == 401:
        message = "the engine refused the token: it is missing or wrong (set it in the Regia preferences)"
    elif errors:
        message = _describe_error(errors[0])
    else:
        message = f"the engine answered HTTP {status}"
    return EngineError(message, status=status, errors=errors)


def _reason_text(reason: object) -> str:
    """Why no answer came, in a few words rather than an exception repr."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "no answer in time"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return "no connection"


def unreachable(base_url: str, reason: object) -> EngineUnreachable:
    return EngineUnreachable(f"the engine at {base_url} is not running ({_reason_text(reason)}): {START_HINT}")


class EngineClient:
    """Talks to one engine server; every method is a single short HTTP request."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        # No proxy handler: the engine is normally on loopback, and an environment proxy must not intercept it.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def with_timeout(self, timeout: float) -> EngineClient:
        """The same engine with another per-request timeout: a worker thread's client may wait for a busy engine."""
        return EngineClient(self.base_url, token=self.token, timeout=timeout)

    # ---- transport ---------------------------------------------------------------------------

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json, image/png"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """One request; returns (status, body) for 2xx and raises EngineError / EngineUnreachable otherwise."""
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=self._headers(content_type)
        )
        try:
            with self._opener.open(request, timeout=timeout or self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            raise http_error(exc.code, exc.read() if method != "HEAD" else b"") from None
        except urllib.error.URLError as exc:
            raise unreachable(self.base_url, exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:
            raise unreachable(self.base_url, exc) from None

    def _json(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        _, data = self._request(method, path, body, "application/json" if body is not None else None)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EngineError("the engine answered something that is not JSON") from None

    # ---- endpoints ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Version, device, models and limits: what the preferences panel shows."""
        return self._json("GET", "/health")

    def has_blob(self, sha: str) -> bool:
        """HEAD: lets an upload skip bytes the server already holds."""
        try:
            self._request("HEAD", f"/blobs/{sha}")
        except EngineError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def upload_png(self, data: bytes, timeout: float = UPLOAD_TIMEOUT) -> str:
        """Store PNG bytes under their sha256 (skipping the PUT when already stored); returns "blob:<sha>"."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha):
            self._request("PUT", f"/blobs/{sha}", data, "image/png", timeout=timeout)
        return f"blob:{sha}"

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Queue a job whose images are blob references; returns its status."""
        return self._json("POST", "/jobs", spec)

    def status(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{job_id}")

    def jobs(self, page_size: int = 500) -> list[dict[str, Any]]:
        """Every job's status, oldest first, page by page (the server answers at most a page at a time)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = f"/jobs?limit={page_size}" + (f"&after={cursor}" if cursor else "")
            page = self._json("GET", query)
            found += page["jobs"]
            cursor = page.get("next")
            if not cursor:
                return found

    def preview(self, job_id: str, timeout: float | None = None) -> bytes | None:
        """The latest preview PNG, or None on a 404 (before the first one exists; polling treats it as "not yet")."""
        try:
            return self._request("GET", f"/jobs/{job_id}/preview", timeout=timeout)[1]
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise

    def result(self, job_id: str, timeout: float | None = None) -> bytes:
        """The finished PNG; a 409 (not done yet) raises EngineError."""
        return self._request("GET", f"/jobs/{job_id}/result", timeout=timeout)[1]

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{job_id}/cancel")

    def segment(self, image: str, method: str, parts: int) -> dict[str, Any]:
        """Split an uploaded image ("blob:<sha>") into about `parts` parts: the parts and their region map's blob."""
        return self._json("POST", "/segment", {"image": image, "method": method, "parts": parts})

    def blob(self, ref: str, timeout: float | None = None) -> bytes:
        """A stored PNG ("blob:<sha>" or the bare sha)."""
        return self._request("GET", f"/blobs/{ref.removeprefix('blob:')}", timeout=timeout)[1]

    def requeue(self, job_id: str) -> dict[str, Any]:
        """Queue an interrupted, failed or cancelled job again from the start."""
        return self._json("POST", f"/jobs/{job_id}/requeue")
