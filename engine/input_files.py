"""Reading the files a user names (specs, storyboards, images): regular files only, with a size cap.

A FIFO would block the reader forever and /dev/zero would grow it without end; a folder or a device is never what
was meant. The file is opened without blocking and checked with fstat before a byte is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import SpecError

MIB = 1 << 20
TEXT_FILE_LIMIT = 8 * MIB  # a spec or storyboard is JSON text; 999 shots with guides fit many times over
IMAGE_FILE_LIMIT = 512 * MIB  # above the largest PNG the CLI's image limits let through (64 MP, 16-bit RGBA)

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_input_file(path: Path, field: str, limit: int, value: str | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; otherwise a SpecError naming `field` and the path."""
    shown = value if value is not None else str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SpecError(field, f"file not found: {path}", value=shown) from None
    except IsADirectoryError:
        raise SpecError(field, f"is a folder, not a file: {path}", value=shown) from None
    except OSError as exc:
        raise SpecError(field, f"cannot read {path}: {exc.strerror or exc}", value=shown) from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise SpecError(field, f"is a folder, not a file: {path}", value=shown)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(
                field,
                f"{path} is {_kind(info.st_mode)}: only regular files are read",
                value=shown,
                allowed="a regular file",
            )
        too_big = SpecError(
            field, f"{path} is over the size limit for this kind of file", value=shown, allowed=f"at most {limit} bytes"
        )
        if info.st_size > limit:
            raise too_big
        try:
            data = handle.read(limit + 1)  # a file that grows while it is read is still capped
        except OSError as exc:
            raise SpecError(field, f"cannot read {path}: {exc.strerror or exc}", value=shown) from None
    if len(data) > limit:
        raise too_big
    return data
