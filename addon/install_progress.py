"""pip's output, line by line, as progress an artist can read (package n of m, megabytes) and its errors in the
artist's words. No bpy; fed by the installer's reader thread.

pip 24.1+ with `--progress-bar raw` prints "Progress DONE of TOTAL" lines for every download over 512 KB; an older
pip prints only "Downloading NAME (SIZE)", so the bytes then advance a whole file at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .install_plan import requirement_name

MB = 1_000_000
_UNITS = {"bytes": 1, "kB": 1_000, "KB": 1_000, "MB": MB, "GB": 1_000_000_000}
_COLLECTING = re.compile(r"^\s*(?:Collecting|Requirement already satisfied:)\s+(\S+)")
_DOWNLOADING = re.compile(r"^\s*Downloading\s+(\S+)(?:\s+\(([\d.]+)\s*(bytes|[kKMG]B)\))?")
_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)$")
_INSTALLING = re.compile(r"^\s*Installing collected packages:\s*(.*)$")


@dataclass
class PipProgress:
    """What one pip run has done so far. `count` is at least the number of requirements it was given (their
    dependencies raise it as pip finds them)."""

    count: int = 0
    index: int = 0
    package: str = ""
    file_done: int = 0
    file_total: int = 0
    downloaded: int = 0  # bytes of the downloads that finished
    installing: int = 0  # packages pip is installing now (after the downloads)
    finished: bool = False
    errors: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def feed(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if match := _PROGRESS.match(line):
            self.file_done, self.file_total = int(match.group(1)), int(match.group(2))
        elif match := _DOWNLOADING.match(line):
            self._finish_file()
            size = match.group(2)
            self.file_total = int(float(size) * _UNITS[match.group(3)]) if size else 0
        elif match := _COLLECTING.match(line):
            self._finish_file()
            name = requirement_name(match.group(1))
            if name not in self._seen:
                self._seen.add(name)
                self.index = len(self._seen)
                self.count = max(self.count, self.index)
            self.package = name
        elif match := _INSTALLING.match(line):
            self._finish_file()
            self.installing = len([name for name in match.group(1).split(",") if name.strip()])
        elif line.startswith("Successfully installed"):
            self.finished = True
        elif line.startswith("ERROR:"):
            self.errors.append(line[len("ERROR:") :].strip())

    def _finish_file(self) -> None:
        if self.file_total:
            self.downloaded += self.file_total
        self.file_done = self.file_total = 0

    @property
    def bytes_done(self) -> int:
        """Bytes downloaded so far, the file under way included."""
        return self.downloaded + self.file_done

    def line(self) -> str:
        """One line for the panel: 'torch (3 of 15), 120 of 800 MB; 340 MB so far'."""
        if self.installing:
            return f"Unpacking {self.installing} package{'s' if self.installing > 1 else ''}"
        if not self.package:
            return "Looking for packages"
        text = f"{self.package} ({self.index} of {self.count})"
        if self.file_total >= MB and self.file_done:  # pip's raw progress
            text += f", {self.file_done / MB:.0f} of {self.file_total / MB:.0f} MB"
        elif self.file_total >= MB:  # an older pip says the size, then nothing until the file is in
            text += f", downloading {self.file_total / MB:.0f} MB"
        if self.bytes_done >= MB:
            text += f"; {self.bytes_done / MB:.0f} MB so far"
        return text


_WORDS: tuple[tuple[str, str], ...] = (
    (r"No space left on device|Errno 28", "The disk is full: free some space, then press Install Engine again"),
    (
        r"Failed to establish a new connection|Temporary failure in name resolution|Network is unreachable|"
        r"Max retries exceeded|Connection refused|ConnectionError|Could not fetch URL|timed out",
        "Cannot reach the package server{index}: check the internet connection (or the proxy), then press "
        "Install Engine again; it goes on where it stopped",
    ),
    (
        r"THESE PACKAGES DO NOT MATCH THE HASHES|HashMismatch",
        "A download arrived damaged: press Install Engine again to download it anew",
    ),
    (r"Permission denied|Errno 13", "Regia may not write to the engine's folder: check its permissions"),
    (
        r"ensurepip|No module named venv",
        "This Python cannot make environments (on Debian or Ubuntu, install python3.11-venv): choose another "
        "Python for the install, or leave it empty to use Blender's own",
    ),
)


def error_message(errors: list[str], output_tail: str, index_url: str | None, log_path: Path) -> str:
    """What went wrong, in the artist's words, with the log's path for the details."""
    text = "\n".join([*errors, output_tail])
    where = f" ({index_url})" if index_url else ""
    missing = re.search(r"No matching distribution found for (\S+)", text) or re.search(
        r"Could not find a version that satisfies the requirement (\S+)", text
    )
    if missing and not re.search(_WORDS[1][0], text):
        said = (
            f"The package {missing.group(1)} is not available from the package server{where}: it may be down, "
            "or have no build of it for this computer"
        )
    elif re.search(r"requires a different Python|Requires-Python", text):
        said = "These packages need Python 3.11: choose a Python 3.11 for the install, or Blender's own"
    else:
        said = next((words for pattern, words in _WORDS if re.search(pattern, text)), "")
        said = said.format(index=where)
        if not said:
            last = errors[-1] if errors else next(reversed(output_tail.strip().splitlines()), "it said nothing")
            said = f"The install failed: {last}"
    return f"{said}. The log: {log_path}"
