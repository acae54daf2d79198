"""Segment into Regions, the add-on's pure side: the target's pixels go to the engine (POST /segment), which splits
them into parts and paints a colour-key region map; each part becomes a colour-key region the artist then sets to
keep, edit or embolden, and parts are merged by repainting the map. The request runs on a worker thread
(`SegmentTask`); Blender's timer reads its state. No bpy here."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine_client import EngineClient, EngineError
from .png_codec import encode_png

METHODS = [  # (identifier, label, tooltip), as Blender's EnumProperty takes them
    ("slic", "Even Parts", "Compact parts of about equal size that snap to the image's edges (SLIC superpixels)"),
    (
        "felzenszwalb",
        "Follow Edges",
        "Parts that follow the image's own edges and colors, of any size (Felzenszwalb's graph method)",
    ),
]
MIN_PARTS, MAX_PARTS, DEFAULT_PARTS = 2, 64, 8
PART_NAME = "Part {index}"
# The requests run on a worker thread, so they may wait for a busy engine: the client's own default (0.1 s) is for
# Blender's main thread, and a loaded machine takes longer than that to segment.
SEGMENT_TIMEOUT = 120.0


@dataclass(frozen=True)
class PartRegion:
    """A colour-key region for one part: its name and key colour (display values in 0..1)."""

    name: str
    key_color: tuple[float, float, float]
    pixels: int


def part_regions(parts: list[dict[str, Any]], taken: set[str] = frozenset()) -> list[PartRegion]:
    """One region per part of the engine's answer, largest first; names not already `taken`."""
    found = []
    for part in parts:
        color = part["color"].lstrip("#")
        key = tuple(int(color[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
        name, extra = PART_NAME.format(index=part["index"]), 1
        while name in taken:
            extra += 1
            name = f"{PART_NAME.format(index=part['index'])}.{extra}"
        found.append(PartRegion(name, key, int(part["pixels"])))  # type: ignore[arg-type]
    return found


@dataclass
class SegmentTask:
    """One Segment into Regions request on a worker thread: upload the image, segment it, fetch the map."""

    client: EngineClient
    pixels: np.ndarray  # top-down (h, w, 4) display values of the target
    method: str
    parts: int
    state: str = "RUNNING"  # RUNNING, DONE, FAILED
    error: str = ""
    answer: dict[str, Any] = field(default_factory=dict)
    region_map: bytes = b""
    _thread: threading.Thread | None = None

    def start(self) -> SegmentTask:
        self._thread = threading.Thread(target=self._run, name="regia-segment", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            client = self.client.with_timeout(SEGMENT_TIMEOUT)
            ref = client.upload_png(encode_png(self.pixels[..., :3]))
            self.answer = client.segment(ref, self.method, self.parts)
            self.region_map = client.blob(self.answer["map"])
            self.state = "DONE"
        except EngineError as exc:
            self.error, self.state = str(exc), "FAILED"
        except Exception as exc:  # a worker must never die silently: the panel shows why
            self.error, self.state = f"Segment into Regions failed: {exc}", "FAILED"

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
