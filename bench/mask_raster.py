"""Rasterisation time of addon/mask_raster.py for a mixed mask, at several frame sizes.

What is measured
- `rasterise_layers` on five layers, the mix an artist's region masks would have:
  1. two curved splines with uneven handles (MERGE_ADD);
  2. an outer curve with a hole cut by an inner spline (fill_holes on);
  3. a feathered clockwise circle (feather weights 0.02..0.06 of the frame, SMOOTH falloff);
  4. an inverted box with a curved cut-out, alpha 0.8 (MERGE_SUBTRACT);
  5. a feathered box in SMOOTH offset mode over a counter-clockwise blob (LIGHTEN).
  Feather is on, as the compositor's Mask node defaults, and the fill is sampled at pixel centres (supersample 1).
- Each size runs once to warm up, then `--runs` times; the table shows the median, the fastest and the slowest
  wall time, and the median per layer. The machine line gives the CPU count and load average, since a shared,
  busy machine slows numpy down.
- Target: under 0.5 s for 2048x2048 with the five layers.

Run: `.venv/bin/python bench/mask_raster.py [--sizes 512 1024 2048] [--runs 7]`
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from regia_package import addon_module  # the add-on's pure modules as `regia.addon.*`; importing them needs no bpy

KAPPA = 0.5523

mr = addon_module("mask_raster")


def circle(cx: float, cy: float, r: float, cw: bool = True, weights: tuple[float, ...] = (0.0,) * 4) -> object:
    points = []
    angles = [0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi]
    for ang, weight in zip(angles[::-1] if cw else angles, weights, strict=True):
        c, s = math.cos(ang), math.sin(ang)
        co = (cx + r * c, cy + r * s)
        tx, ty = (-s * KAPPA * r, c * KAPPA * r) if not cw else (s * KAPPA * r, -c * KAPPA * r)
        points.append(mr.SplinePoint(co, (co[0] - tx, co[1] - ty), (co[0] + tx, co[1] + ty), weight))
    return mr.Spline(points)


def box(x0: float, y0: float, x1: float, y1: float, weight: float = 0.0) -> object:
    corners = [(x0, y0), (x0, y1), (x1, y1), (x1, y0)]  # clockwise, y up: any feather shows outside
    return mr.Spline([mr.SplinePoint(c, c, c, weight) for c in corners])


def blob() -> object:
    def p(co: tuple[float, float], left: tuple[float, float], right: tuple[float, float]) -> object:
        return mr.SplinePoint(co, left, right)

    return mr.Spline(
        [
            p((0.58, 0.45), (0.50, 0.35), (0.62, 0.52)),
            p((0.70, 0.60), (0.62, 0.66), (0.78, 0.55)),
            p((0.85, 0.35), (0.88, 0.50), (0.83, 0.22)),
            p((0.55, 0.15), (0.70, 0.19), (0.45, 0.12)),
        ]
    )


def layers() -> list[object]:
    return [
        mr.MaskLayer([circle(0.25, 0.3, 0.18), blob()]),
        mr.MaskLayer([circle(0.5, 0.7, 0.25), circle(0.5, 0.7, 0.1, cw=False)], fill_holes=True),
        mr.MaskLayer([circle(0.7, 0.3, 0.2, weights=(0.02, 0.06, 0.04, 0.03))], falloff="SMOOTH"),
        mr.MaskLayer(
            [box(0.05, 0.05, 0.95, 0.95), circle(0.5, 0.5, 0.15)],
            invert=True,
            alpha=0.8,
            blend="MERGE_SUBTRACT",
            fill_holes=True,
        ),
        mr.MaskLayer([mr.Spline(box(0.1, 0.6, 0.35, 0.9, 0.03).points, offset_mode="SMOOTH")], blend="LIGHTEN"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"python {platform.python_version()}, numpy {mr.np.__version__}"
    )
    mask_layers = layers()
    print(f"{'size':>11} | {'layers':>6} | {'median s':>8} | {'min s':>6} | {'max s':>6} | {'per layer ms':>12}")
    print("-" * 64)
    for size in args.sizes:
        mr.rasterise_layers(mask_layers, size, size)  # warm-up
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            out = mr.rasterise_layers(mask_layers, size, size)
            times.append(time.perf_counter() - start)
        assert out.shape == (size, size) and 0.0 < float(out.mean()) < 1.0
        med = statistics.median(times)
        print(
            f"{size:>5}x{size:<5} | {len(mask_layers):>6} | {med:>8.3f} | {min(times):>6.3f} | {max(times):>6.3f} |"
            f" {1000 * med / len(mask_layers):>12.1f}"
        )


if __name__ == "__main__":
    main()
