"""Variations and seeds, the add-on's pure side (addon/variations.py)."""

from __future__ import annotations

import numpy as np
import pytest
from regia.addon.contact_sheet import MISSING
from regia.addon.variations import (
    MAX_SEED,
    columns_for,
    new_seed,
    preset_variations,
    variation_seeds,
    variations_grid,
)


def test_a_new_seed_is_fresh_and_in_blenders_range():
    seeds = {new_seed() for _ in range(200)}
    assert len(seeds) > 190 and all(1 <= s <= MAX_SEED for s in seeds)


def test_variation_seeds_count_up_from_the_base_and_wrap():
    assert variation_seeds(41, 3) == [41, 42, 43]
    assert variation_seeds(MAX_SEED, 2) == [MAX_SEED, 0]
    for bad in (1, 10):
        with pytest.raises(ValueError, match="2 to 9"):
            variation_seeds(1, bad)


@pytest.mark.parametrize(("count", "columns"), [(2, 2), (3, 2), (4, 2), (5, 3), (9, 3)])
def test_the_grid_is_as_square_as_the_count_allows(count, columns):
    assert columns_for(count) == columns


def test_the_grid_shows_each_variation_and_a_gray_cell_for_one_not_made_yet():
    red = np.zeros((30, 40, 3), np.float32)
    red[..., 0] = 1.0
    grid = variations_grid([red, None, red], ["seed 5", "seed 6", "Ink"], (40, 30))
    assert grid.shape[1] > 2 * 40 and grid.shape[0] > 2 * 30  # two columns, two rows
    is_red = (grid[..., 0] > 0.99) & (grid[..., 1] < 0.01)
    is_missing = np.all(np.abs(grid - np.asarray(MISSING, np.float32)) < 1e-6, axis=-1)
    assert is_red.sum() >= 2 * 30 * 40 * 0.9 and is_missing.sum() >= 30 * 40 * 0.9


def test_preset_variations_take_the_presets_there_are():
    names = ["ink", "neon", "storybook", "watercolour"]
    assert preset_variations(names, 3) == ["ink", "neon", "storybook"]
    assert preset_variations(names, 9) == names
    with pytest.raises(ValueError, match="no presets"):
        preset_variations([], 4)
