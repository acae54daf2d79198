"""What a finished run leaves on disk: result, previews, losses.csv and the resolved spec."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .images import atomic_write_bytes, save_png
from .spec import JobSpec


class RunFolder:
    def __init__(self, folder: Path):
        self.folder = folder
        self.previews = folder / "previews"

    def prepare(self, protected: list[Path]) -> None:
        """Refuse to write where an input image lives: the artist's source is never overwritten."""
        outputs = {(self.folder / "result.png").resolve(), (self.folder / "spec.resolved.json").resolve()}
        clash = [p for p in protected if p.resolve() in outputs]
        if clash:
            raise FileExistsError(f"--out would overwrite the input image {clash[0]}; choose another folder")
        self.folder.mkdir(parents=True, exist_ok=True)

    def write_preview(self, step: int, pixels: np.ndarray) -> Path:
        path = self.previews / f"step_{step:05d}.png"
        save_png(path, pixels)
        return path

    def write_result(self, pixels: np.ndarray) -> Path:
        path = self.folder / "result.png"
        save_png(path, pixels)
        return path

    def write_spec(self, spec: JobSpec) -> Path:
        path = self.folder / "spec.resolved.json"
        atomic_write_bytes(path, (spec.to_json() + "\n").encode())
        return path

    def write_losses(self, history: list[dict[str, float]]) -> Path:
        path = self.folder / "losses.csv"
        buffer = io.StringIO()
        columns = ["step"] + (list(history[0]) if history else ["total"])
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for step, row in enumerate(history, start=1):
            writer.writerow([step] + [f"{row[c]:.6g}" for c in columns[1:]])
        atomic_write_bytes(path, buffer.getvalue().encode())
        return path
