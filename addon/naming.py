"""Names of the images Regia makes beside a target: results `<target>.regia.NNN` and the live preview."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Blender ID names hold at most 63 bytes.
MAX_ID_NAME_BYTES = 63
RESULT_INFIX = ".regia."


def _fit(base: str, suffix: str) -> str:
    """Trim `base` (on a UTF-8 character boundary) so that base + suffix fits in a Blender ID name."""
    room = MAX_ID_NAME_BYTES - len(suffix.encode())
    encoded = base.encode()[:room]
    return encoded.decode(errors="ignore") + suffix


def preview_name(target: str) -> str:
    return _fit(target, " (preview)")


def mask_preview_name(target: str) -> str:
    return _fit(target, " (region mask)")


def result_name(target: str, number: int) -> str:
    return _fit(target, f"{RESULT_INFIX}{number:03d}")


def next_result_name(target: str, existing: Iterable[str]) -> str:
    """The first `<target>.regia.NNN` above every one already there, so numbers never repeat after a delete."""
    stem = result_name(target, 0)[: -len("000")]
    pattern = re.compile(re.escape(stem) + r"(\d{3,})$")
    numbers = [int(m.group(1)) for name in existing if (m := pattern.match(name))]
    return result_name(target, max(numbers, default=0) + 1)


def variation_name(target: str, number: int) -> str:
    return _fit(target, f" variation {number}")


def variations_grid_name(target: str) -> str:
    return _fit(target, " (variations)")
