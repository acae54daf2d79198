"""Server options, shared by the entry point, the app and the tests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..images import MEGA, ImageLimits

MIB = 1 << 20
LOCAL_RAY = "local"  # --ray local: a Ray instance started by the server
# Reference images (style, content, inspiration) may be larger than the canvas: up to this many times --max-side a
# side, within the --max-image-mp pixel budget. Canvas-sized images (init, masks, strokes) must equal the canvas.
REFERENCE_SIDE_FACTOR = 4


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
    max_image_mp: int = 25  # the pixel budget of any one image, in megapixels (a 6000x4000 photo fits)
    device: str = "auto"
    clip: tuple[str, ...] = ()  # NAME:WEIGHTS models /health reports on (--clip)
    diffusion: tuple[str, ...] = ()  # diffusion model weights /health reports on, and the only paths jobs may name
    allow_downloads: bool = False  # --allow-downloads: jobs may fetch uncached CLIP tags; never by default
    max_spec_bytes: int = MIB  # a spec is small JSON; a bigger body is a mistake or an attack
    max_connections: int = 64  # open connections; past it the oldest idle one is closed, else 503
    header_timeout: float = 10.0  # seconds for a request's headers to arrive whole (slow clients are dropped)
    body_timeout: float = 30.0  # seconds a request body may pause between pieces
    allow_origins: tuple[str, ...] = ()  # web origins allowed besides the server's own (--allow-origin)
    keep_jobs: int = 500  # finished jobs kept, newest first; older ones are removed with their files
    keep_days: float = 30.0  # finished jobs older than this are removed (0: no age limit)
    threads: int | None = None  # torch intra-op threads for jobs (None: engine.threads.default_threads())
    ray: str | None = None  # --ray ADDRESS: jobs run on engine actors of this Ray cluster (None: in this process)
    ray_actors: int = 0  # --ray-actors: 0 is one per GPU, or one per --threads CPUs of the cluster
    capture: str = "off"  # --capture: how steps run, here and on the Ray actors (engine/step_capture.py)

    @property
    def max_blob_bytes(self) -> int:
        return self.max_blob_mb * MIB

    @property
    def bind_host(self) -> str:
        """The address to bind: an IPv6 literal without its URL brackets."""
        return self.host[1:-1] if self.host.startswith("[") and self.host.endswith("]") else self.host

    @property
    def url_host(self) -> str:
        """The host as a URL writes it: IPv6 literals in brackets."""
        host = self.bind_host
        return f"[{host}]" if ":" in host else host

    @property
    def image_limits(self) -> ImageLimits:
        """The largest image of any kind this server decodes (uploads are checked against it)."""
        return ImageLimits(
            max_side=REFERENCE_SIDE_FACTOR * self.max_side,
            max_pixels=self.max_image_mp * MEGA,
            option="--max-side, --max-image-mp",
        )

    def problems(self) -> list[str]:
        """Options that cannot work, as one-line reasons (empty when all is well)."""
        found = []
        if self.token is not None and not self.token.strip():
            found.append("--token must not be empty")
        if not is_loopback(self.host) and not self.token:
            found.append(
                f"--host {self.host} is reachable from other machines: set a token (--token-file FILE or the "
                "REGIA_ENGINE_TOKEN environment variable) so that every request is checked, or bind 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            found.append(f"--port {self.port} is not a port number (0 picks a free one)")
        if self.max_side < 16:
            found.append(f"--max-side {self.max_side} is below the smallest canvas (16)")
        if self.max_regions < 1:
            found.append(f"--max-regions {self.max_regions} must be at least 1")
        if self.max_blob_mb < 1:
            found.append(f"--max-blob-mb {self.max_blob_mb} must be at least 1")
        if self.max_image_mp < 1:
            found.append(f"--max-image-mp {self.max_image_mp} must be at least 1")
        if self.max_connections < 4:
            found.append(f"--max-connections {self.max_connections} must be at least 4")
        if not 0 < self.header_timeout <= 600:
            found.append(f"--header-timeout {self.header_timeout} must be between 0 and 600 seconds")
        if self.keep_jobs < 1:
            found.append(f"--keep-jobs {self.keep_jobs} must be at least 1")
        if self.keep_days < 0:
            found.append(f"--keep-days {self.keep_days} must be 0 (no age limit) or more")
        if self.threads is not None and self.threads < 1:
            found.append(f"--threads {self.threads} must be at least 1")
        if self.ray is not None and not self.ray.strip():
            found.append(f"--ray needs an address (e.g. auto, ray://head:10001, or {LOCAL_RAY})")
        if self.ray_actors < 0:
            found.append(f"--ray-actors {self.ray_actors} must be 0 (one per GPU, or per --threads CPUs) or more")
        elif self.ray_actors and self.ray is None:
            found.append(f"--ray-actors {self.ray_actors} needs --ray ADDRESS (the cluster its actors run on)")
        for text in self.clip:
            try:
                split_model_arg(text)
            except ValueError as exc:
                found.append(f"--clip {exc}")
        for origin in self.allow_origins:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                found.append(f"--allow-origin {origin!r} is not an origin (scheme://host[:port], no path)")
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
