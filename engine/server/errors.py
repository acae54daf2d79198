"""HTTP errors with the contract's body: {"errors": [{"field", "message", "value", "allowed"}]}."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError, SpecErrors, short_repr


def item(field: str, message: str, value: Any = None, allowed: str | None = None) -> dict[str, Any]:
    return {
        "field": field,
        "message": message,
        "value": None if value is None else short_repr(value, 100),  # as spec errors show values; a sha256 whole
        "allowed": allowed,
    }


class ApiError(Exception):
    """Raised anywhere under a request; the app turns it into the error body and status."""

    def __init__(self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None):
        self.status = status
        self.errors = errors
        self.headers = headers
        super().__init__(f"{status}: {errors[0]['field']}: {errors[0]['message']}")

    @classmethod
    def one(cls, status: int, field: str, message: str, value: Any = None, allowed: str | None = None) -> ApiError:
        return cls(status, [item(field, message, value, allowed)])


def spec_items(exc: SpecError | SpecErrors) -> list[dict[str, Any]]:
    """A spec's problems as error items; over HTTP the spec's root is the request body."""
    errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
    out = []
    for error in errors:
        entry = error.as_dict()
        if entry["field"] == "(spec)":
            entry["field"] = "(body)"
        out.append(entry)
    return out


def body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": errors}
