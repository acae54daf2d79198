"""A shot of a validated storyboard as a JobSpec: the contract's expansion (regia_contract/storyboard.py), validated.

The add-on expands the storyboards it builds with the same contract functions, so its per-shot jobs and
`python -m engine storyboard` run the same jobs.
"""

from __future__ import annotations

from typing import Any

from regia_contract import storyboard as contract

from ..errors import SpecError
from ..spec import JobSpec, validate_spec
from .format import Storyboard


def board_data(board: Storyboard) -> dict[str, Any]:
    """The storyboard as the contract's functions read it: every field, but `losses` only as the file set them,
    so that a preset still fills the rest (engine/presets.py)."""
    data = board.model_dump(mode="json")
    data["losses"] = board.losses.model_dump(mode="json", exclude_unset=True)
    return data


class ShotJobs:
    """Every shot of one storyboard as a job, its data read once (a storyboard may hold 999 shots)."""

    def __init__(self, board: Storyboard):
        self.board = board
        self.data = board_data(board)

    def seed(self, index: int) -> int:
        """The shot's own seed if set; else the storyboard's (rule "fixed") or one derived from it and the shot's
        name (rule "per_shot": regia_contract.storyboard.derived_seed)."""
        return contract.shot_seed(self.data, index)

    def spec(self, index: int) -> JobSpec:
        """The job for shot `index` (regia_contract.storyboard.shot_spec), validated."""
        return validate_spec(contract.shot_spec(self.data, index))

    def field(self, index: int, path: str) -> str:
        """A field path in shot `index`'s job, as the storyboard field it came from (for errors)."""
        return contract.storyboard_field(self.data, index, path)

    def errors(self, index: int, errors: list[SpecError]) -> list[SpecError]:
        """A shot's job errors, naming storyboard fields."""
        return [SpecError(self.field(index, e.field), e.detail, e.value, e.allowed) for e in errors]


def shot_seed(board: Storyboard, index: int) -> int:
    return ShotJobs(board).seed(index)


def shot_spec(board: Storyboard, index: int) -> JobSpec:
    return ShotJobs(board).spec(index)


def job_field(board: Storyboard, index: int, path: str) -> str:
    return ShotJobs(board).field(index, path)
