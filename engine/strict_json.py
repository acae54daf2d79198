"""JSON as the engine reads it from users: a key given twice in one object is an error, not a silent overwrite
(Python's json keeps the last one, another reader may keep the first: the two would run different jobs)."""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    def __init__(self, key: str):
        self.key = key
        super().__init__(f"the key {key!r} appears twice in one object: each key may appear once")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found


def loads_strict(text: str | bytes) -> Any:
    """json.loads, refusing duplicate keys (DuplicateKey, a ValueError like json's own errors)."""
    return json.loads(text, object_pairs_hook=_unique)
