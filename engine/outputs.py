"""What a finished run leaves on disk: result, previews, losses.csv and the resolved spec."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .errors import SpecError
from .images import atomic_write_bytes, png_bytes, save_png
from .spec import JobSpec


class RunFolder:
    def __init__(self, folder: Path):
        self.folder = folder
        self.previews = folder / "previews"

    def written_paths(self) -> set[Path]:
        return {(self.folder / name).resolve() for name in ("result.png", "spec.resolved.json", "losses.csv")}

    def prepare(self, inputs: list[Path]) -> None:
        """Refuse to write where an input image lives: the artist's source is never overwritten."""
        previews = self.previews.resolve()
        for path in (p.resolve() for p in inputs):
            if path in self.written_paths() or path.parent == previews:
                raise SpecError(
                    "--out",
                    f"this folder would overwrite the input image {path}",
                    value=str(self.folder),
                    allowed="a folder that holds none of the job's inputs",
                )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError(
                "--out", f"cannot create the output folder: {exc.strerror}", value=str(self.folder)
            ) from None

    def write_preview(self, step: int, pixels: np.ndarray) -> Path:
        path = self.previews / f"step_{step:05d}.png"
        save_png(path, pixels)
        return path

    def write_result(self, pixels: np.ndarray) -> Path:
        return self.write_result_png(png_bytes(pixels))

    def write_result_png(self, data: bytes) -> Path:
        """The result already encoded (by a worker elsewhere): the same file write_result makes of its pixels."""
        path = self.folder / "result.png"
        atomic_write_bytes(path, data)
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
