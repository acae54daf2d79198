"""What every runner shares with its caller: the cancel token, progress reports and the result."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np


class CancelToken:
    """Set from any thread; runners check it before every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class Progress:
    step: int  # steps completed
    steps: int
    elapsed: float
    losses: dict[str, float]  # latest reported, normalised and weighted, per term key
    total: float
    preview: np.ndarray | None = None  # uint8 H x W x 3, on preview steps only

    @property
    def fraction(self) -> float:
        return self.step / self.steps

    @property
    def eta(self) -> float | None:
        return None if self.step == 0 else self.elapsed / self.step * (self.steps - self.step)


@dataclass
class Result:
    image: np.ndarray  # uint8 H x W x 3
    history: list[dict[str, float]] = field(default_factory=list)  # per step: total and terms
    elapsed: float = 0.0
