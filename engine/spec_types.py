"""The building blocks every spec model shares: strict models, image references, weights, colours."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from regia_contract.limits import MAX_WEIGHT

BLOB_RE = re.compile(r"^blob:[0-9a-f]{64}$")
HEX_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def _check_ref(value: str) -> str:
    if BLOB_RE.match(value):
        return value
    if value.startswith("blob:"):
        raise ValueError("a blob reference is 'blob:' followed by 64 lowercase hex digits (sha256)")
    if "\x00" in value:
        raise ValueError("a path must not contain NUL characters")
    return value


ImageRef = Annotated[
    str,
    Field(min_length=1, max_length=1024, description="Path relative to the spec file, or blob:<sha256>"),
    AfterValidator(_check_ref),
]
Weight = Annotated[float, Field(ge=-MAX_WEIGHT, le=MAX_WEIGHT, description="Strength; negative repels")]
HexColor = Annotated[str, Field(pattern=HEX_COLOR_RE.pattern, description="#rrggbb")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True, strict=True)
