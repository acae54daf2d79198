"""Content-addressed PNG blobs: the only way an image reaches a job over HTTP.

A blob's name is the sha256 of its bytes, checked on upload, so a name can only ever mean one image, and only
validated hex names are ever joined to a path. The store trusts nothing it holds until it has re-hashed it once in
this process: a blob damaged on disk reads as missing (and is removed), so the client's next upload repairs it.
Sizes are checked from the PNG header before a pixel is decoded, at upload and when a job loads a blob.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

from PIL import Image

from ..errors import SpecError
from ..images import ImageLimits, atomic_write_bytes, decode_image, image_size
from ..png_check import HEADER_BYTES, PNG_SIGNATURE, PngProblem, check_complete, read_header
from .config import ServerConfig
from .errors import ApiError
from .safe_files import read_nofollow

SHA256_RE = re.compile(r"[0-9a-f]{64}")
BLOB_PREFIX = "blob:"
HEX_ALLOWED = "64 lowercase hex digits (the sha256 of the PNG's bytes)"
PNG_ALLOWED = "a complete, readable PNG"
PATH_REFUSED = "paths are not accepted over HTTP; upload the image with PUT /blobs/{sha256} and use blob:<sha256>"
DAMAGED = "the stored blob was damaged on the engine's disk and has been removed: upload the image again"


def valid_name(name: str) -> bool:
    return SHA256_RE.fullmatch(name) is not None


class BlobStore:
    def __init__(self, root: Path, limits: ImageLimits | None = None):
        self.root = root
        self.limits = limits or ServerConfig().image_limits
        root.mkdir(parents=True, exist_ok=True)
        self._verified: set[str] = set()  # names whose bytes hashed to their name in this process
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        if not valid_name(name):  # the one guard between a client string and the file system
            raise ValueError(f"not a blob name: {name!r}")
        return self.root / f"{name}.png"

    def read(self, name: str, limit: int = -1) -> bytes:
        """The stored bytes (the first `limit` when given), never through a link; OSError when they cannot be."""
        self.path(name)  # validates the name
        return read_nofollow(self.root, f"{name}.png", limit=limit)

    def state(self, name: str) -> str:
        """ "ok" (stored and whole), "missing", or "damaged" (its bytes no longer hash to its name: now removed).
        The first ask in a process re-hashes the file; later ones are answered from memory."""
        if not valid_name(name):
            return "missing"
        with self._lock:
            if name in self._verified:
                return "ok"
        try:
            data = self.read(name)
        except OSError:
            return "missing"
        if hashlib.sha256(data).hexdigest() != name:
            self.forget(name)
            return "damaged"
        with self._lock:
            self._verified.add(name)
        return "ok"

    def has(self, name: str) -> bool:
        return self.state(name) == "ok"

    def size_of(self, name: str) -> int:
        """The stored size in bytes; 0 when missing or damaged."""
        if not self.has(name):
            return 0
        try:
            return os.lstat(self.path(name)).st_size
        except OSError:
            return 0

    def forget(self, name: str) -> None:
        """Drop a blob found damaged: it reads as missing from now on, so uploading it again repairs it."""
        with self._lock:
            self._verified.discard(name)
        self.path(name).unlink(missing_ok=True)

    def put(self, name: str, data: bytes) -> bool:
        """Verify and store; True when newly stored (or repaired), False when a whole copy was already there."""
        if not valid_name(name):
            raise ApiError.one(422, "sha256", "not a blob name", value=name, allowed=HEX_ALLOWED)
        digest = hashlib.sha256(data).hexdigest()
        if digest != name:
            raise ApiError.one(
                400,
                "sha256",
                f"the body's sha256 is {digest}, not its name: the upload was damaged or the name is wrong",
                value=name,
                allowed="the sha256 of the body",
            )
        with self._lock:
            self._verified.discard(name)  # an upload re-checks what is stored: a damaged copy is replaced
        if self.has(name):
            return False
        check_png(data, self.limits)
        atomic_write_bytes(self.path(name), data)
        with self._lock:
            self._verified.add(name)
        return True


def check_png(data: bytes, limits: ImageLimits) -> None:
    """Refuse anything but a complete PNG within the limits: 413 by the header's size, before any pixel is
    decoded; 415 for what is not a PNG or is cut short or damaged."""
    if not data.startswith(PNG_SIGNATURE):
        raise ApiError.one(415, "sha256", "the body is not a PNG image", allowed="PNG files only")
    try:
        header = read_header(data)
    except PngProblem as exc:
        raise ApiError.one(415, "sha256", f"the PNG is corrupt or truncated ({exc})", allowed=PNG_ALLOWED) from None
    over = limits.problem(header.width, header.height, "sha256", "the PNG")
    if over is not None:
        raise ApiError.one(413, "sha256", over.detail, value=over.value, allowed=over.allowed)
    try:
        check_complete(data, header)
        image = decode_image(data, "sha256", "the PNG", limits)
    except PngProblem as exc:
        raise ApiError.one(415, "sha256", f"the PNG is corrupt or truncated ({exc})", allowed=PNG_ALLOWED) from None
    except SpecError as exc:
        raise ApiError.one(415, "sha256", exc.detail, allowed=exc.allowed or PNG_ALLOWED) from None
    image.close()


class BlobSource:
    """The server's ImageSource: `blob:<sha256>` references to uploaded blobs, never paths."""

    def __init__(self, store: BlobStore):
        self.store = store

    def problem(self, ref: str, field: str) -> SpecError | None:
        """Why a reference cannot be used, or None; no decoding, for checks at submission."""
        if not ref.startswith(BLOB_PREFIX):
            return SpecError(field, PATH_REFUSED, value=ref, allowed="blob:<sha256>")
        name = ref[len(BLOB_PREFIX) :]
        if not valid_name(name):
            return SpecError(field, "not a blob reference", value=ref, allowed=f"blob: followed by {HEX_ALLOWED}")
        state = self.store.state(name)
        if state == "damaged":
            return SpecError(field, DAMAGED, value=ref, allowed="blob:<sha256> of an uploaded PNG")
        if state != "ok":
            return SpecError(
                field,
                "no blob with this sha256 has been uploaded: upload it with PUT /blobs/{sha256} first",
                value=ref,
                allowed="blob:<sha256> of an uploaded PNG",
            )
        return None

    def _read(self, ref: str, field: str, limit: int = -1) -> bytes:
        problem = self.problem(ref, field)
        if problem is not None:
            raise problem
        try:
            return self.store.read(ref[len(BLOB_PREFIX) :], limit)
        except OSError as exc:
            raise SpecError(field, f"cannot read the uploaded blob: {exc.strerror or exc}", value=ref) from None

    def read(self, ref: str, field: str) -> bytes:
        """The blob's bytes, undecoded: what a remote worker is sent. Re-hashed, so that damage on disk since the
        upload is found here, and handled as open() handles it (forgotten, so that the next upload repairs it)."""
        data = self._read(ref, field)
        if hashlib.sha256(data).hexdigest() != ref[len(BLOB_PREFIX) :]:
            raise self._damaged(ref, field, "its bytes no longer match their sha256")
        return data

    def _damaged(self, ref: str, field: str, reason: str) -> SpecError:
        self.store.forget(ref[len(BLOB_PREFIX) :])
        return SpecError(field, f"{DAMAGED} ({reason})", ref, PNG_ALLOWED)

    def size(self, ref: str, field: str) -> tuple[int, int]:
        head = self._read(ref, field, HEADER_BYTES)
        try:
            return image_size(head, field, ref)
        except SpecError as exc:  # only whole PNGs are stored: this one was damaged since
            raise self._damaged(ref, field, exc.detail) from None

    def open(self, ref: str, field: str) -> Image.Image:
        width, height = self.size(ref, field)
        over = self.store.limits.problem(width, height, field, ref)
        if over is not None:  # stored under other limits (an earlier start with a larger --max-side)
            raise over
        try:
            return decode_image(self._read(ref, field), field, ref, self.store.limits)
        except SpecError as exc:  # checked on upload: damaged on disk since
            raise self._damaged(ref, field, exc.detail) from None
