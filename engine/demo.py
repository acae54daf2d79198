"""The demo job: built from scikit-image's bundled photos and textures, then run on the engine.

Astronaut as the init; three regions each pulled to its own style (deep space, brick, grass),
a palette on the backdrop, the helmet emboldened, and the face kept exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data, draw

from .contact_sheet import contact_sheet, region_overview
from .images import save_png

# Shapes in the astronaut photo's own 512 x 512 coordinates: (row, col) polygons or ellipses.
FACE = ("ellipse", (102, 227, 86, 72))
SUIT = (
    "polygon",
    [
        (512, 20),
        (330, 18),
        (270, 45),
        (230, 90),
        (205, 118),
        (240, 150),
        (285, 210),
        (290, 270),
        (265, 305),
        (300, 345),
        (345, 362),
        (400, 330),
        (440, 290),
        (512, 285),
    ],
)
FLAG = ("polygon", [(0, 0), (0, 100), (120, 97), (200, 90), (250, 70), (290, 35), (330, 18), (512, 18), (512, 0)])
BACKDROP = (
    "polygon",
    [(0, 95), (0, 352), (290, 352), (290, 318), (180, 300), (150, 260), (145, 160), (170, 118), (215, 95)],
)  # minus the suit and flag, see build_demo_job
HELMET = ("ellipse", (432, 394, 90, 118))


def _tint(gray: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    g = gray.astype(np.float32)[..., None] / 255.0
    return (np.clip(g * np.array(colour) * 1.3, 0, 1) * 255).astype(np.uint8)


def _mask(shape, size: int) -> np.ndarray:
    kind, geometry = shape
    scale = size / 512.0
    mask = np.zeros((size, size), dtype=np.uint8)
    if kind == "ellipse":
        r, c, rr_, cr_ = (v * scale for v in geometry)
        rr, cc = draw.ellipse(r, c, rr_, cr_, shape=mask.shape)
    else:
        points = np.array(geometry, dtype=np.float64) * scale
        rr, cc = draw.polygon(points[:, 0], points[:, 1], shape=mask.shape)
    mask[rr, cc] = 255
    return mask


def _write_images(folder: Path, size: int) -> None:
    """The init (astronaut), three style images and the five region masks, as PNGs under folder."""
    astronaut = Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS)
    save_png(folder / "init.png", np.asarray(astronaut))
    styles = {
        "space.png": data.hubble_deep_field()[100:700, 200:800],
        "brick.png": _tint(data.brick(), (0.95, 0.45, 0.3)),
        "grass.png": _tint(data.grass(), (0.35, 0.8, 0.3)),
    }
    for name, pixels in styles.items():
        save_png(folder / "styles" / name, pixels)
    masks = {
        name: _mask(shape, size)
        for name, shape in {"face": FACE, "suit": SUIT, "flag": FLAG, "backdrop": BACKDROP, "helmet": HELMET}.items()
    }
    # Regions that touch should not overlap: each pixel belongs to one style.
    masks["flag"][masks["suit"] > 0] = 0
    masks["backdrop"][(masks["suit"] > 0) | (masks["flag"] > 0)] = 0
    for name, mask in masks.items():
        save_png(folder / "masks" / f"{name}.png", mask)


def build_demo_job(folder: Path, size: int = 256, steps: int = 150) -> Path:
    """Write spec.json and its PNGs into folder; return the spec's path."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_images(folder, size)
    spec = {
        "version": 1,
        "width": size,
        "height": size,
        "seed": 7,
        "steps": steps,
        "generator": {"kind": "pixels", "scales": 4},
        "optimizer": {"kind": "adam", "lr": 0.08, "schedule": "cosine", "warmup": 0.05},
        "init": {"image": "init.png"},
        "losses": {"tv": 0.05},
        "regions": [
            {"name": "face", "mask": "masks/face.png", "mode": "keep", "feather": 8},
            {
                "name": "backdrop",
                "mask": "masks/backdrop.png",
                "feather": 4,
                "guides": [
                    {"kind": "style", "image": "styles/space.png", "weight": 1.0},
                    {"kind": "palette", "colors": ["#0b1026", "#1d2a5c", "#6a4c93", "#f2e9dc"], "weight": 0.3},
                ],
            },
            {
                "name": "suit",
                "mask": "masks/suit.png",
                "feather": 4,
                "guides": [
                    {"kind": "style", "image": "styles/brick.png", "weight": 1.0},
                ],
            },
            {
                "name": "flag",
                "mask": "masks/flag.png",
                "feather": 4,
                "guides": [
                    {"kind": "style", "image": "styles/grass.png", "weight": 1.0},
                ],
            },
            {"name": "helmet", "mask": "masks/helmet.png", "mode": "embolden", "strength": 2.0},
        ],
        "preview_every": 25,
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def write_contact_sheet(spec_path: Path, result_path: Path, out_path: Path) -> None:
    """init | region masks | result."""
    spec = json.loads(spec_path.read_text())
    base = spec_path.parent
    init = _read(base / spec["init"]["image"])
    regions = []
    for region in spec["regions"]:
        with Image.open(base / region["mask"]) as mask:
            regions.append(
                (region["name"], region.get("mode", "edit"), np.asarray(mask.convert("L"), np.float32) / 255.0)
            )
    overview = region_overview(init, regions, (spec["width"], spec["height"]))
    sheet = contact_sheet([("init", init), ("regions", overview), ("result", _read(result_path))])
    save_png(out_path, sheet)


def run_demo(
    out: Path, size: int = 256, steps: int = 150, device_name: str = "auto", quiet: bool = False, capture: str = "off"
) -> None:
    from .cli import run_spec_file

    spec_path = build_demo_job(out / "job", size=size, steps=steps)
    result = run_spec_file(spec_path, out / "run", device_name, quiet, capture)
    write_contact_sheet(spec_path, out / "run" / "result.png", out / "contact_sheet.png")
    print(f"demo: {steps} steps at {size}x{size} in {result.elapsed:.1f}s")
    print(f"demo: wrote {out / 'run' / 'result.png'} and {out / 'contact_sheet.png'}")
