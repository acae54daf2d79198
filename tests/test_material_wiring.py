"""Wiring a generated texture into a material (addon/blender/material_wiring.py), in headless bpy 5.0 and 4.2: a new
Image Texture node feeds Base Color beside what was there, what fed it before can be put back, a second wire adds
a second node, a material with no nodes gets them, an Emission material is refused in words, and undo restores
the tree's links exactly."""

from __future__ import annotations

from pathlib import Path

import bpykit
import pytest


@pytest.fixture(scope="module", params=[None, *bpykit.EXTRA_BPY_PYTHONS], ids=lambda p: "bpy" if p is None else p)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One child per Blender version runs every case (starting bpy is the slow part); its phases by name."""
    bpykit.require_bpy()
    tmp_path = tmp_path_factory.mktemp("wiring")
    zip_path = bpykit.build_extension(tmp_path / "dist")
    script = (Path(__file__).parent / "bpy_scripts" / "material_wiring.py").read_text()
    result = bpykit.run_bpy(
        script, tmp_path, str(zip_path), env=bpykit.bpy_env(tmp_path / "home"), python=request.param
    )
    return {item["phase"]: item for item in bpykit.results(result)}


pytestmark = [pytest.mark.bpy, pytest.mark.slow]


def test_a_new_node_feeds_base_color_and_the_old_texture_stays(run: dict[str, dict]):
    wire = run["wire"]
    assert wire["base"] == wire["node"] and wire["node"].startswith("Regia Texture"), wire
    assert (wire["label"], wire["image"]) == ("Regia Texture", "Wood regia")
    assert (wire["interpolation"], wire["extension"]) == ("Linear", "REPEAT")
    assert wire["old_image"] == "Wood old" and wire["old_image_exists"] and wire["old_users"] >= 1
    assert (wire["uv_type"], wire["uv_map"]) == ("UVMAP", "Detail")
    assert wire["previous"] == ["Old Texture", "Color"]
    assert wire["active"] == wire["node"] and wire["selected"] == [wire["node"]]
    assert wire["left_of_bsdf"] and wire["clear_of_old"], wire
    assert wire["current"] == "Wood regia" and wire["regia"] == [wire["node"]]


def test_restore_previous_relinks_the_old_node_and_keeps_regias(run: dict[str, dict]):
    restore = run["restore"]
    assert restore["restored"] is True
    assert (restore["base"], restore["base_socket"]) == ("Old Texture", "Color")
    assert restore["regia_kept"] and restore["current"] is None
    assert restore["plain"] is False  # a material Regia never touched
    gone = run["restore_gone"]["message"]
    assert gone is not None and "material 'Wood'" in gone and "'Old Texture'" in gone and "by hand" in gone


def test_a_second_wire_adds_a_second_node_that_remembers_the_first(run: dict[str, dict]):
    second = run["second"]
    assert second["nodes_added"] == 1 and second["uv_nodes"] == 0  # no UV map asked for: no UV Map node
    assert second["regia"] == [second["first"], second["second"]] and second["first"] != second["second"]
    assert second["base"] == second["second"] and second["previous"] == second["first"]
    assert second["first_image"] == "Stone 1" and second["clear"]
    assert second["again"] == second["second"] and second["after_again"] == 1  # the same image again: no-op
    assert run["second_restore"] == {"phase": "second_restore", "base": second["first"], "current": "Stone 1"}


def test_a_material_without_nodes_gets_them(run: dict[str, dict]):
    plain = run["no_nodes"]
    assert plain["wired"] == plain["node"] and plain["previous"] == ""
    assert plain["restored"] and plain["after_restore"] is None and plain["default_kept"] and plain["regia_kept"]


def test_an_emission_material_is_refused_in_the_artists_words(run: dict[str, dict]):
    refused = run["refused"]
    glow, bare = refused["messages"]
    assert "material 'Glow'" in glow and "no Principled BSDF" in glow and "Keep" in glow and "Emission" in glow
    assert "material 'Bare'" in bare and "Material Output" in bare
    assert refused["added"] == 0 and refused["current"] is None


def test_undo_restores_the_links_exactly(run: dict[str, dict]):
    undo = run["undo"]
    assert undo["result"] == ["FINISHED"]
    assert undo["wired"] != undo["before"]  # the wire did change the links
    assert undo["after"] == undo["before"]
    assert ["Old Texture", "Color", "Principled BSDF", "Base Color"] in undo["after"]
    assert undo["nodes_added"] == 0 and undo["regia"] == 0 and undo["old_image"] == "Undo old"
