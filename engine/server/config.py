"""Server options, shared by the entry point, the app and the tests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path = Path("regia-data")
    host: str = "127.0.0.1"
    port: int = 0
    port_file: Path | None = None
    token: str | None = None
    max_side: int = 2048
    max_regions: int = 32
    max_blob_mb: int = 64
    device: str = "auto"
    clip: tuple[str, ...] = ()  # NAME:WEIGHTS models /health reports on (--clip)
    offline: bool = False  # --offline: no downloads; REGIA_OFFLINE is set for the whole process
    max_spec_bytes: int = MIB  # a spec is small JSON; a bigger body is a mistake or an attack

    @property
    def max_blob_bytes(self) -> int:
        return self.max_blob_mb * MIB

    def problems(self) -> list[str]:
        """Options that cannot work, as one-line reasons (empty when all is well)."""
        found = []
        if self.token is not None and not self.token.strip():
            found.append("--token must not be empty")
        if not is_loopback(self.host) and not self.token:
            found.append(
                f"--host {self.host} is reachable from other machines: set --token TOKEN so that every "
                "request is checked, or bind 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            found.append(f"--port {self.port} is not a port number (0 picks a free one)")
        if self.max_side < 16:
            found.append(f"--max-side {self.max_side} is below the smallest canvas (16)")
        if self.max_regions < 1:
            found.append(f"--max-regions {self.max_regions} must be at least 1")
        if self.max_blob_mb < 1:
            found.append(f"--max-blob-mb {self.max_blob_mb} must be at least 1")
        for text in self.clip:
            try:
                split_model_arg(text)
            except ValueError as exc:
                found.append(f"--clip {exc}")
        return found


def split_model_arg(text: str) -> tuple[str, str]:
    """`NAME:WEIGHTS` as given on the command line; the weights may hold colons (a Windows path)."""
    name, sep, weights = text.partition(":")
    if not sep or not name.strip() or not weights.strip():
        raise ValueError(f"{text!r} is not NAME:WEIGHTS (e.g. ViT-B-32:laion2b_s34b_b79k or regia-tiny:random)")
    return name.strip(), weights.strip()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False
