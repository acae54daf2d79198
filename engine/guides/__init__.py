"""Guide terms: one loss each, masked to its region. `build_terms` turns a spec into terms."""

from .base import GuideTerm, StepContext

__all__ = ["GuideTerm", "StepContext"]
