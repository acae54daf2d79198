"""The data dir: one server at a time (a lock file naming its PID, as PostgreSQL's postmaster.pid), private
permissions, and no leftovers of a crash.

The lock is an OS file lock (flock; a byte-range lock on Windows), so it is released by the kernel however the
server ends, kill -9 included: a stale PID in the file never blocks a new server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
from pathlib import Path

LOCK_NAME = "engine.pid"
TMP_SUFFIX = ".tmp"  # engine.images.atomic_write_bytes writes ".<name>.<random>.tmp" beside its target
JOB_TMP_PREFIX = ".new-"  # a job folder being made (engine.server.jobs): renamed into place once whole
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
_WINDOWS_LOCK_OFFSET = 1 << 20  # lock a byte far past the PID text, so others can still read it


class DataDirError(Exception):
    """The data dir cannot be used; str() says why and what to do."""


class DataDirInUse(DataDirError):
    def __init__(self, data_dir: Path, pid: int | None):
        self.pid = pid
        who = f"the engine with PID {pid}" if pid else "another engine"
        super().__init__(
            f"the data dir {data_dir} is in use by {who} ({data_dir / LOCK_NAME}): stop that engine, or start this "
            "one with another --data-dir"
        )


def holder_pid(data_dir: Path) -> int | None:
    """The PID written in the lock file, if any."""
    try:
        text = (data_dir / LOCK_NAME).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class DataDirLock:
    """Held for the life of the server process; `acquire` raises DataDirInUse when another process holds it."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.data_dir / LOCK_NAME

    def acquire(self) -> DataDirLock:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), PRIVATE_FILE)
        except OSError as exc:
            raise DataDirError(f"cannot use the data dir {self.data_dir}: {exc.strerror or exc}") from None
        if not _try_lock(fd):
            os.close(fd)
            raise DataDirInUse(self.data_dir, holder_pid(self.data_dir))
        pid = f"{os.getpid()}\n".encode("ascii")
        with contextlib.suppress(OSError):  # the PID only informs; on a full disk the lock still holds without it
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, pid.ljust(max(len(pid), os.fstat(fd).st_size)))  # over the old text: no new block needed
            os.ftruncate(fd, len(pid))
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go (the kernel also lets go when the process ends, however it ends). The file and its PID stay:
        the lock, not the file, says whether a server runs."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None


def make_private(data_dir: Path) -> list[str]:
    """The data dir 0700 and what is in it 0600 / 0700, fixing what is looser; returns what was fixed.

    Refuses (DataDirError) a data dir owned by another user: its owner could read every upload."""
    if sys.platform == "win32":  # pragma: no cover - no POSIX modes; the user profile is private already
        return []
    info = data_dir.stat()
    if info.st_uid != os.getuid():
        raise DataDirError(
            f"the data dir {data_dir} belongs to another user (uid {info.st_uid}): use a folder of your own"
        )
    fixed = []
    if info.st_mode & 0o077:
        os.chmod(data_dir, PRIVATE_DIR)
        fixed.append(f"{data_dir} was {stat.S_IMODE(info.st_mode):04o}, readable by others: now {PRIVATE_DIR:04o}")
    loose = 0
    for folder, dirs, files in os.walk(data_dir):  # never follows links to folders
        for name in dirs + files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
                continue
            os.chmod(path, PRIVATE_DIR if stat.S_ISDIR(mode) else PRIVATE_FILE)
            loose += 1
    if loose:
        fixed.append(f"{loose} files and folders in {data_dir} were readable by others: now private")
    return fixed


def remove_stale(data_dir: Path) -> int:
    """Remove what a crash left half-made: temporary files of atomic writes and job folders never renamed into
    place. Runs with the lock held, so no live writer owns them. Returns how many were removed."""
    removed = 0
    folders = [data_dir, data_dir / "blobs", data_dir / "jobs"]
    jobs = data_dir / "jobs"
    if jobs.is_dir():
        for entry in jobs.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                if entry.name.startswith(JOB_TMP_PREFIX):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
                else:
                    folders.append(entry)
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX) and not entry.is_dir():
                entry.unlink(missing_ok=True)
                removed += 1
    return removed
