"""Errors a user can act on. Each names the field, the value and what is allowed."""

from __future__ import annotations

from typing import Any


def short_repr(value: Any, limit: int = 60) -> str:
    """A value as it should appear in a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RegiaError(Exception):
    """Base class for errors whose message is meant for the artist, not a traceback."""


class SpecError(RegiaError):
    """A job spec (or something it references) is not acceptable."""

    def __init__(self, field: str, message: str, value: Any = None, allowed: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.detail = message
        super().__init__(self.one_line())

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole: a Ray worker raises it to the driver
        return type(self), (self.field, self.detail, self.value, self.allowed)

    def one_line(self) -> str:
        parts = [f"{self.field}: {self.detail}"]
        if self.value is not None:
            parts.append(f"got {short_repr(self.value)}")
        if self.allowed:
            parts.append(f"allowed: {self.allowed}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "message": self.detail,
            "value": short_repr(self.value) if self.value is not None else None,
            "allowed": self.allowed,
        }


class SpecErrors(RegiaError):
    """Several spec problems found at once (validation reports them all)."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        first = errors[0].one_line()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.errors,)


class JobCancelled(RegiaError):
    """The job's cancellation token was set; raised between steps."""
