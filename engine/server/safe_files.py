"""Reading the server's own files without following symbolic links.

The data dir is the server's alone (0700), but a link planted inside it (by another program of the same user, or a
restored backup) must not make the server serve or decode a file outside it. Each folder below the data dir and the
file itself are opened with O_NOFOLLOW, relative to the folder above (openat), so no step can be swapped for a link.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_OPENAT = os.open in os.supports_dir_fd and _NOFOLLOW != 0


def _not_a_file(path: Path) -> OSError:
    return OSError(errno.ELOOP, "not a regular file (a link or something else); refused", str(path))


def open_nofollow(root: Path, *parts: str) -> int:
    """A read-only descriptor for root/parts..., refusing links at every step below root. The caller closes it."""
    path = root.joinpath(*parts)
    if not _OPENAT:  # Windows: no O_NOFOLLOW; check each step instead (a narrower guarantee, still no link followed)
        for depth in range(1, len(parts) + 1):
            if root.joinpath(*parts[:depth]).is_symlink():
                raise _not_a_file(path)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    else:
        fd = os.open(root, os.O_RDONLY | _DIRECTORY)
        try:
            for part in parts[:-1]:
                inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = inner
            try:
                inner = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _not_a_file(path) from None
                raise
        finally:
            os.close(fd)
        fd = inner
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_file(path)
    return fd


def read_nofollow(root: Path, *parts: str, limit: int = -1) -> bytes:
    """The bytes of root/parts... (at most `limit` when given), never through a link."""
    with os.fdopen(open_nofollow(root, *parts), "rb") as handle:
        return handle.read(limit)
