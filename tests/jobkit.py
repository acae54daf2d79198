"""Shared helpers for the engine tests: real PNGs on disk, real specs, real torch on the CPU.

Import with `import jobkit` after putting tests/ on sys.path (pytest runs with
--import-mode=importlib, which does not add it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from engine.errors import SpecError, SpecErrors
from engine.job import PreparedJob, prepare_job
from engine.optimize import run
from engine.progress import Result
from engine.refs import FolderSource
from engine.spec import validate_spec

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")

# The test canvases are tiny: one intra-op thread is as fast as several on an idle machine, and
# many times faster on a busy 2-core one, where OpenMP threads spin against each other.
torch.set_num_threads(1)
SUBPROCESS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ---- images -------------------------------------------------------------------------------


def save(path: Path, pixels: np.ndarray) -> Path:
    """Write a uint8 array (H x W, H x W x 3 or H x W x 4) as a PNG, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path, format="PNG")
    return path


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def resized(pixels: np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    image = Image.fromarray(pixels)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    return np.asarray(image.resize((width, height or width), Image.Resampling.LANCZOS))


def tint(gray: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    """A grayscale texture coloured like engine/demo.py does it."""
    g = gray.astype(np.float32)[..., None] / 255.0
    return (np.clip(g * np.array(colour) * 1.3, 0, 1) * 255).astype(np.uint8)


def astronaut(size: int) -> np.ndarray:
    return resized(data.astronaut(), size)


def coffee(size: int) -> np.ndarray:
    return resized(data.coffee()[:, 80:480], size)


def space_texture(size: int = 96) -> np.ndarray:
    """Dark deep-space photo: near-black with bright specks."""
    return resized(data.hubble_deep_field()[100:700, 200:800], size)


def brick_texture(size: int = 96) -> np.ndarray:
    """Orange brick."""
    return resized(tint(data.brick(), (0.95, 0.45, 0.3)), size)


def grass_texture(size: int = 96) -> np.ndarray:
    """Green grass."""
    return resized(tint(data.grass(), (0.35, 0.8, 0.3)), size)


def column_masks(size: int, parts: int) -> list[np.ndarray]:
    """Vertical stripes covering the canvas: 255 inside, 0 outside."""
    masks = []
    edges = [round(i * size / parts) for i in range(parts + 1)]
    for i in range(parts):
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[:, edges[i] : edges[i + 1]] = 255
        masks.append(mask)
    return masks


def rect_mask(size: int, top: int, left: int, bottom: int, right: int, height: int | None = None) -> np.ndarray:
    mask = np.zeros((height or size, size), dtype=np.uint8)
    mask[top:bottom, left:right] = 255
    return mask


# ---- specs and jobs -----------------------------------------------------------------------


def spec(size: int = 48, steps: int = 30, **fields: Any) -> dict[str, Any]:
    """A minimal valid spec dict; keyword arguments add or replace top-level fields."""
    base: dict[str, Any] = {
        "version": 1,
        "width": size,
        "height": size,
        "seed": 0,
        "steps": steps,
        "generator": {"kind": "pixels"},
        "preview_every": 0,
    }
    base.update(fields)
    return base


def write_spec(folder: Path, spec_dict: dict[str, Any], name: str = "spec.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(spec_dict, indent=2))
    return path


def prepare(folder: Path, spec_dict: dict[str, Any]) -> PreparedJob:
    """Validate the dict as if read from a file in `folder`, and prepare it on the CPU."""
    return prepare_job(validate_spec(json.loads(json.dumps(spec_dict))), FolderSource(folder), CPU)


def run_job(folder: Path, spec_dict: dict[str, Any], **kwargs: Any) -> Result:
    return run(prepare(folder, spec_dict), **kwargs)


def drop(result: Result, key: str) -> float:
    """last / first of a term's history: the share of its loss left (scales are fixed per run)."""
    first, last = result.history[0][key], result.history[-1][key]
    assert first > 0, f"{key} started at {first}"
    return last / first


# ---- errors -------------------------------------------------------------------------------


def errors_of(exc: BaseException) -> list[SpecError]:
    if isinstance(exc, SpecErrors):
        return list(exc.errors)
    assert isinstance(exc, SpecError), f"not a spec error: {exc!r}"
    return [exc]


def spec_error(func, *args: Any, field: str | None = None) -> SpecError:
    """Call func, expect a SpecError/SpecErrors, and return the one naming `field` (or the first)."""
    with pytest.raises((SpecError, SpecErrors)) as info:
        func(*args)
    errors = errors_of(info.value)
    if field is None:
        return errors[0]
    named = [e for e in errors if e.field == field]
    assert named, f"no error for {field!r}; got {[e.one_line() for e in errors]}"
    return named[0]
