"""Download a CLIP model's weights from the add-on's preferences: `python -m engine fetch-models NAME:TAG` run with
the engine's Python in a child process (the engine never downloads for a job), its progress read from what it prints
(the download's tqdm bar: percent and bytes), on a worker thread. Cancel stops the child. No bpy here."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

# "open_clip_model.safetensors:  45%|████▌     | 272M/605M [00:05<00:06, 55.2MB/s]"
_BAR = re.compile(r"(\d{1,3})%\|[^|]*\|\s*([\d.]+)\s*([kMGT]?)i?B?\s*/\s*([\d.]+)\s*([kMGT]?)i?B?")
_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def downloadable(pair: str) -> bool:
    """Whether a NAME:WEIGHTS pair names a pretrained tag (which fetch-models gets), not a file or random weights."""
    name, _, weights = (part.strip() for part in pair.partition(":"))
    is_path = any(mark in weights for mark in ("/", "\\")) or weights.endswith(_FILE_SUFFIXES)
    return bool(name and weights) and weights != "random" and not is_path


def parse_progress(text: str) -> tuple[float, str] | None:
    """(fraction, "272 of 605 MB") from the last progress bar in `text`, or None when it has none."""
    found = list(_BAR.finditer(text))
    if not found:
        return None
    match = found[-1]
    done = float(match.group(2)) * _UNITS[match.group(3)]
    total = float(match.group(4)) * _UNITS[match.group(5)]
    return int(match.group(1)) / 100.0, f"{done / 1e6:.0f} of {total / 1e6:.0f} MB"


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error:")]
    return errors[-1] if errors else (lines[-1] if lines else "fetch-models failed with no message")


@dataclass
class FetchTask:
    """One download: `pair` with the engine at `root`, run by `python`."""

    python: str
    root: Path
    pair: str
    state: str = "RUNNING"  # RUNNING, DONE, FAILED, CANCELLED
    fraction: float = 0.0
    detail: str = "Starting"
    error: str = ""
    output: str = ""
    reported: bool = False  # the panel's timer has seen it end
    _process: subprocess.Popen[bytes] | None = None
    _thread: threading.Thread | None = None
    _cancelled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def command(self) -> list[str]:
        return [self.python, "-m", "engine", "fetch-models", self.pair]

    def start(self, extra_env: dict[str, str] | None = None) -> FetchTask:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
        env.update(PYTHONPATH=str(self.root), PYTHONUNBUFFERED="1", **(extra_env or {}))
        try:
            self._process = subprocess.Popen(
                self.command(), cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            self.state, self.error = "FAILED", f"cannot run {self.python}: {exc.strerror or exc}"
            return self
        self._thread = threading.Thread(target=self._read, name="regia-fetch", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while chunk := self._process.stdout.read1(4096):
            text = chunk.decode("utf-8", errors="replace")
            with self._lock:
                self.output = (self.output + text)[-20_000:]
                progress = parse_progress(self.output[-2000:])
                if progress is not None:
                    self.fraction, self.detail = progress
        code = self._process.wait()
        with self._lock:
            if self._cancelled:
                self.state, self.detail = "CANCELLED", "Cancelled"
            elif code == 0:
                self.state, self.fraction, self.detail = "DONE", 1.0, "Downloaded"
            else:
                self.state, self.error = "FAILED", _last_error(self.output)

    def cancel(self) -> None:
        """Stop the download (its process group: pip-like children too)."""
        self._cancelled = True
        if self._process is not None and self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                self._process.terminate()

    def wait(self, timeout: float | None = None) -> None:
        """Until the child has ended and its last words are read."""
        if self._thread is not None:
            self._thread.join(timeout)
