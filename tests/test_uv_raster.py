"""Texture-space masks (addon/uv_raster.py): UV triangles to a label map per material slot, islands grown by a
margin; checked against Blender's own bake of a flat colour per slot (Cycles, headless bpy)."""

from __future__ import annotations

from pathlib import Path

import bpykit
import numpy as np
import pytest
from regia.addon.uv_raster import NO_FACE, bleed, rasterise, slot_masks


def test_a_triangle_covers_the_texels_whose_centres_are_inside_it_top_row_first():
    # The lower-left half of the UV square (u + v <= 1), in slot 2; v = 1 is the top row.
    labels = rasterise(np.array([[[0, 0], [1, 0], [0, 1]]]), np.array([2]), 8, 8)
    expected = np.array([[2 if (x + 0.5) + (7 - y + 0.5) <= 8 else NO_FACE for x in range(8)] for y in range(8)])
    assert np.array_equal(labels, expected)
    assert labels[7, 0] == 2 and labels[0, 7] == NO_FACE  # bottom-left in, top-right out


def test_winding_does_not_matter_and_a_degenerate_triangle_covers_nothing():
    square = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [0, 1], [1, 1]]])  # opposite windings
    assert (rasterise(square, np.array([0, 1]), 16, 16) != NO_FACE).all()
    assert (rasterise(np.array([[[0.2, 0.2], [0.5, 0.5], [0.8, 0.8]]]), np.array([0]), 16, 16) == NO_FACE).all()


def test_islands_bleed_into_empty_texels_by_the_margin_and_never_over_each_other():
    labels = np.full((1, 12), NO_FACE)
    labels[0, 2], labels[0, 9] = 0, 1
    grown = bleed(labels, 2)
    assert grown.tolist() == [[0, 0, 0, 0, 0, NO_FACE, NO_FACE, 1, 1, 1, 1, 1]]
    assert bleed(labels, 0).tolist() == labels.tolist()
    masks = slot_masks(labels, 2, margin=1)
    assert masks.shape == (2, 1, 12) and masks[0].sum() == 3 and masks[1].sum() == 3
    assert not (masks[0] * masks[1]).any()  # a texel belongs to one slot at most


@pytest.mark.bpy
@pytest.mark.slow
@pytest.mark.parametrize("python", [None, *bpykit.EXTRA_BPY_PYTHONS], ids=lambda p: "bpy" if p is None else p)
def test_the_rasteriser_matches_blenders_own_bake_of_a_colour_per_slot(tmp_path: Path, python: str | None):
    bpykit.require_bpy()
    zip_path = bpykit.build_extension(tmp_path / "dist")
    env = bpykit.bpy_env(tmp_path / "home")
    script = (Path(__file__).parent / "bpy_scripts" / "uv_masks.py").read_text()
    result = bpykit.run_bpy(script, tmp_path, str(zip_path), env=env, python=python)
    run = {item["phase"]: item for item in bpykit.results(result)}
    bake = run["bake"]
    assert bake["triangles"] == 12 and 0.3 < bake["covered"] < 0.9
    assert min(bake["ious"]) >= 0.99, bake
    assert bake["bled"] > 0 and bake["kept"]  # the margin fills empty texels only
