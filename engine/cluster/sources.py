"""The images a job or a storyboard names, as bytes: read where the files are (the driver), decoded where the job
runs (an actor, maybe on another node), under the same limits as the source they came from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from ..errors import SpecError
from ..images import CLI_LIMITS, ImageLimits, decode_image, image_size


class ReadableSource(Protocol):
    def read(self, ref: str, field: str) -> bytes: ...


@dataclass(frozen=True)
class Unreadable:
    """Why a file could not be read where it is (plain data: it travels to the worker)."""

    detail: str
    allowed: str | None


Files = dict[str, "bytes | Unreadable"]  # ref -> its bytes, or why it could not be read


class BytesSource:
    """An ImageSource over files already read (gather): {ref: bytes, or the error reading it gave}."""

    def __init__(self, files: Files, limits: ImageLimits = CLI_LIMITS) -> None:
        self.files = files
        self.limits = limits

    def _bytes(self, ref: str, field: str) -> bytes:
        data = self.files.get(ref)
        if data is None:  # gather() sends every ref a job names: a missing one is a bug, said plainly
            raise SpecError(field, "this image was not sent to the worker", value=ref)
        if isinstance(data, Unreadable):  # the reason it could not be read where it is, for this field
            raise SpecError(field, data.detail, value=ref, allowed=data.allowed)
        return data

    def size(self, ref: str, field: str) -> tuple[int, int]:
        return image_size(self._bytes(ref, field), field, ref)

    def open(self, ref: str, field: str) -> Image.Image:
        return decode_image(self._bytes(ref, field), field, ref, self.limits)


def gather(source: ReadableSource, refs: Iterable[tuple[str, str]]) -> Files:
    """{ref: bytes} of every (field, ref), each read once. A ref that cannot be read carries its error instead:
    the job that names it then fails with that reason, alone, where it runs."""
    files: Files = {}
    for field_path, ref in refs:
        if ref not in files:
            try:
                files[ref] = source.read(ref, field_path)
            except SpecError as exc:
                files[ref] = Unreadable(exc.detail, exc.allowed)
    return files
