"""The segment command's choices, with no third-party import: the CLI's parser is built before the engine's
packages are known to be there (so `serve` can say which are missing)."""

from __future__ import annotations

METHODS = ("slic", "felzenszwalb")
MIN_PARTS, MAX_PARTS, DEFAULT_PARTS = 2, 64, 12
