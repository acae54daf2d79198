"""Guide terms: one loss each, masked to its region. engine/job.py builds them from a spec."""

from .base import GuideTerm, StepContext

__all__ = ["GuideTerm", "StepContext"]
