"""Content-addressed PNG blobs: the only way an image reaches a job over HTTP.

A blob's name is the sha256 of its bytes, checked on upload, so a name can only ever mean one
image, and only validated hex names are ever joined to a path.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from PIL import Image

from ..errors import SpecError
from ..images import atomic_write_bytes, decode_image
from .errors import ApiError

SHA256_RE = re.compile(r"[0-9a-f]{64}")
BLOB_PREFIX = "blob:"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEX_ALLOWED = "64 lowercase hex digits (the sha256 of the PNG's bytes)"
PNG_ALLOWED = "a complete, readable PNG"
PATH_REFUSED = "paths are not accepted over HTTP; upload the image with PUT /blobs/{sha256} and use blob:<sha256>"


def valid_name(name: str) -> bool:
    return SHA256_RE.fullmatch(name) is not None


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if not valid_name(name):  # the one guard between a client string and the file system
            raise ValueError(f"not a blob name: {name!r}")
        return self.root / f"{name}.png"

    def has(self, name: str) -> bool:
        return valid_name(name) and self.path(name).is_file()

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def put(self, name: str, data: bytes) -> bool:
        """Verify and store; True when newly stored, False when it was already there."""
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
        if self.has(name):
            return False
        check_png(data)
        atomic_write_bytes(self.path(name), data)
        return True


def check_png(data: bytes) -> None:
    """Refuse (415) anything but a PNG that decodes completely."""
    if not data.startswith(PNG_SIGNATURE):
        raise ApiError.one(415, "sha256", "the body is not a PNG image", allowed="PNG files only")
    try:
        image = decode_image(data, "sha256", "the PNG")
    except SpecError as exc:
        raise ApiError.one(415, "sha256", exc.detail, allowed=exc.allowed or PNG_ALLOWED) from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow fails in open() on a cut header, not in load()
        raise ApiError.one(415, "sha256", f"the PNG is corrupt or truncated ({exc})", allowed=PNG_ALLOWED) from None
    image.close()


class BlobSource:
    """The server's ImageSource: `blob:<sha256>` references to uploaded blobs, never paths."""

    def __init__(self, store: BlobStore):
        self.store = store

    def problem(self, ref: str, field: str) -> SpecError | None:
        """Why a reference cannot be used, or None; cheap (no decoding), for checks at submission."""
        if not ref.startswith(BLOB_PREFIX):
            return SpecError(field, PATH_REFUSED, value=ref, allowed="blob:<sha256>")
        name = ref[len(BLOB_PREFIX) :]
        if not valid_name(name):
            return SpecError(field, "not a blob reference", value=ref, allowed=f"blob: followed by {HEX_ALLOWED}")
        if not self.store.has(name):
            return SpecError(
                field,
                "no blob with this sha256 has been uploaded: upload it with PUT /blobs/{sha256} first",
                value=ref,
                allowed="blob:<sha256> of an uploaded PNG",
            )
        return None

    def open(self, ref: str, field: str) -> Image.Image:
        problem = self.problem(ref, field)
        if problem is not None:
            raise problem
        try:
            data = self.store.read(ref[len(BLOB_PREFIX) :])
        except OSError as exc:
            raise SpecError(field, f"cannot read the uploaded blob: {exc.strerror}", value=ref) from None
        try:
            return decode_image(data, field, ref)
        except (SpecError, OSError, SyntaxError, ValueError) as exc:  # checked on upload: damaged on disk since
            reason = exc.detail if isinstance(exc, SpecError) else str(exc)
            raise SpecError(
                field, f"the stored blob is damaged ({reason}): upload the image again", ref, PNG_ALLOWED
            ) from None
