"""Texture generation end to end in headless bpy: a cube with two material slots, a style image per slot, Generate
through the managed engine, the result wired into both materials (bpy_scripts/texture_e2e.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import bpykit
import numpy as np
import pytest
from skimage import data
from skimage.color import rgb2lab
from skimage.io import imsave

pytestmark = [pytest.mark.bpy, pytest.mark.slow]

SCRIPT = Path(__file__).parent / "bpy_scripts" / "texture_e2e.py"
NO_FACE = -1
ARRAYS = ("result", "labels", "start", "blockout_before", "blockout_after", "baked", "previous", "view", "weights",
          "weights_unhidden", "texel_slots")  # fmt: skip


@pytest.fixture(scope="module", params=[None, *bpykit.EXTRA_BPY_PYTHONS], ids=lambda p: "bpy" if p is None else p)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    bpykit.require_bpy()
    tmp = tmp_path_factory.mktemp("texture")
    styles = [tmp / "coffee.png", tmp / "rocket.png"]  # warm browns, cool blues: real photos
    imsave(styles[0], data.coffee()[::4, ::4])
    imsave(styles[1], data.rocket()[::4, ::4])
    zip_path = bpykit.build_extension(tmp / "dist")
    env = bpykit.bpy_env(tmp / "home", OMP_NUM_THREADS="1")
    result = bpykit.run_bpy(
        SCRIPT.read_text(), tmp, str(zip_path), sys.executable, str(tmp), *map(str, styles),
        timeout=600, env=env, python=request.param,
    )  # fmt: skip
    run = {item["phase"]: item for item in bpykit.results(result)}
    run["arrays"] = {name: np.load(tmp / f"{name}.npy") for name in ARRAYS}
    run["styles"] = [data.coffee(), data.rocket()]
    return run


def test_new_texture_makes_a_packed_image_with_a_region_per_material_slot(run: dict[str, Any]) -> None:
    new = run["new"]
    assert new["name"] == "Crate Texture" and new["size"] == [256, 256] and new["packed"]
    assert new["regions"] == [["Wood", "MATERIAL_SLOT", 0, "edit"], ["Sky", "MATERIAL_SLOT", 1, "edit"]]
    assert new["uv_map"] == ""  # the active UV map
    assert new["viewport_target"] == "Crate Texture"  # the 3D Viewport's panels act on the object's texture
    assert new["image_editor_target"] is None  # and leave the image editor's Target alone


def _lab_mean(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb.reshape(-1, 1, 3)).reshape(-1, 3).mean(0)


def test_each_slot_ends_nearer_its_own_style_by_mean_lab_colour(run: dict[str, Any]) -> None:
    """A descriptor the engine does not optimise (its style loss matches feature Gram matrices, not Lab means)."""
    gen = run["generate"]
    assert gen["state"] == "DONE", gen["message"]
    result, labels = run["arrays"]["result"], run["arrays"]["labels"]
    styles = [_lab_mean(style / 255.0) for style in run["styles"]]
    for slot, own in ((0, 0), (1, 1)):
        texels = _lab_mean(result[labels == slot])
        distances = [float(np.linalg.norm(texels - style)) for style in styles]
        assert distances[own] < distances[1 - own], (slot, distances)


def test_texels_outside_every_island_keep_the_starting_colour(run: dict[str, Any]) -> None:
    result, labels, start = (run["arrays"][name] for name in ("result", "labels", "start"))
    half = start[::2, ::2]  # the job ran at half the texture's size: the engine's init is the texture resized
    outside = labels == NO_FACE
    assert outside.any()
    assert np.abs(result[outside] - half[outside]).max() <= 2 / 255


def test_the_result_is_a_new_image_wired_into_each_slots_material_keeping_the_old(run: dict[str, Any]) -> None:
    gen = run["generate"]
    assert gen["result"] == "Crate Texture.regia.001" and gen["result_size"] == [128, 128] and gen["packed"]
    assert gen["source_unchanged"]
    assert gen["feeding"] == {
        "Wood": ["ShaderNodeTexImage", "Crate Texture.regia.001"],
        "Sky": ["ShaderNodeTexImage", "Crate Texture.regia.001"],
    }
    assert gen["old_node_kept"] and gen["old_image_kept"]
    assert "Wood" in gen["message"] and "Sky" in gen["message"]


def test_use_in_materials_is_undoable(run: dict[str, Any]) -> None:
    undo = run["undo"]
    assert undo["used"] == ["FINISHED"] and undo["undo_flag"] and undo["rewired"] and undo["undone"]


def test_a_shot_blockout_rendered_after_texturing_shows_the_texture(run: dict[str, Any]) -> None:
    """The texture is in the materials, so the storyboard's blockout render (Cycles, the shaded scene) shows it."""
    before, after = run["arrays"]["blockout_before"], run["arrays"]["blockout_after"]
    changed = np.abs(after - before).max(-1) > 0.1
    assert 0.05 < changed.mean() < 0.9  # the cube's pixels, not the background
    texture_warmth = _lab_mean(run["arrays"]["result"])[1:]  # a, b: the texture's hue
    seen = _lab_mean(after[changed])[1:]
    assert float(np.dot(seen - _lab_mean(before[changed])[1:], texture_warmth)) > 0  # its colours came in


def test_bake_views_colours_the_texels_a_camera_sees_and_leaves_hidden_ones(run: dict[str, Any]) -> None:
    """A flat colour per material is each view region's only guide; a plane hides part of the cube."""
    views = run["views"]
    assert views["regions"] == [["Wood", "COLOR_KEY"], ["Sky", "COLOR_KEY"]] and views["state"] == "DONE"
    assert views["baked"] == "Crate Texture.regia.002" and views["history"][-1].endswith("baked from 1 view")
    assert views["feeding"] == ["Crate Texture.regia.002", "Crate Texture.regia.002"]
    arrays = run["arrays"]
    baked, previous, slots = arrays["baked"], arrays["previous"], arrays["texel_slots"]
    weights, unhidden = arrays["weights"], arrays["weights_unhidden"]
    colours = {0: np.array([0xE0, 0x20, 0x10]) / 255, 1: np.array([0x10, 0x40, 0xE0]) / 255}
    for slot, colour in colours.items():
        own = slots == slot
        seen = own & (weights > 0.5 * weights[own].max())  # well inside what the camera sees of the slot
        assert seen.sum() > 100
        assert np.abs(baked[seen] - colour).mean() < 0.1, (slot, baked[seen].mean(0), colour)
    hidden = (unhidden > 0) & (weights == 0)  # facing the camera, behind the plane
    assert hidden.sum() > 100
    unseen = weights == 0
    assert np.abs(baked[unseen] - previous[unseen]).max() <= 0.5 / 255  # hidden and unseen texels are unchanged
