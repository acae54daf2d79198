"""Regia's panels as an artist reads them, in headless bpy with no engine: the target stays while Regia's own images
take the editor, every visible control has a tooltip and a Title Case name in Blender's spelling, the paint layer's
New is the target's size, Advanced settings fold away, and errors wrap to the sidebar with a way out.

One bpy child runs every phase (bpy_scripts/addon_ui.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpykit
import pytest

pytestmark = [pytest.mark.bpy]

SCRIPT = Path(__file__).parent / "bpy_scripts" / "addon_ui.py"
PHASES = ("target", "paint_new", "tooltips", "errors", "guide_image", "storyboard")
# Operators that change the .blend's data: Ctrl+Z must take them back.
UNDOABLE = {
    "regia.use_editor_image", "regia.region_add_mask_layer", "regia.region_add_paint", "regia.region_add_color_key",
    "regia.region_show_mask", "regia.paint_layer_new", "regia.result_load_settings", "regia.history_show",
    "regia.guide_add", "regia.guide_new_canvas", "regia.list_add", "regia.list_remove", "regia.list_move",
    "regia.storyboard_from_markers", "regia.storyboard_from_text", "regia.storyboard_region_add",
    "regia.storyboard_use_version", "regia.storyboard_open_shot", "regia.texture_new", "regia.texture_sync_slots",
    "regia.texture_use_result", "regia.texture_view_add", "regia.texture_bake_views",
}  # fmt: skip


@pytest.fixture(scope="module", params=[None, *bpykit.EXTRA_BPY_PYTHONS], ids=lambda p: "bpy" if p is None else p)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    bpykit.require_bpy()
    tmp = tmp_path_factory.mktemp("ui")
    zip_path = bpykit.build_extension(tmp / "dist")
    result = bpykit.run_bpy(SCRIPT.read_text(), tmp, str(zip_path), *PHASES, timeout=300, python=request.param)
    return {item["phase"]: item for item in bpykit.results(result)}


def test_regias_own_images_in_the_editor_never_take_the_targets_place(run: dict[str, Any]) -> None:
    target = run["target"]
    assert target["before"] == {"editor": "photo", "target": "photo", "regions": [], "cancel": False,
                                "generate": True}  # fmt: skip
    for step in ("paint", "paint_unpinned", "mask", "canvas"):
        seen = target[step]
        assert seen["editor"] != "photo", (step, seen)  # Regia showed its own image...
        assert seen["target"] == "photo" and seen["regions"] == ["sky", "face"], (step, seen)  # ...the panel stays
    assert target["paint"]["editor"] == "photo face" and target["mask"]["editor"] == "photo (region mask)"


def test_a_jobs_cancel_stays_while_the_live_preview_is_shown(run: dict[str, Any]) -> None:
    target = run["target"]
    assert target["queued"]["cancel"] and not target["queued"]["generate"]
    for step in ("preview", "preview_unpinned"):
        seen = target[step]
        assert seen["editor"] == "photo (preview)", seen
        assert seen["target"] == "photo" and seen["cancel"] and seen["regions"] == ["sky", "face"], (step, seen)
    assert target["cancelled"] == [["FINISHED"], "CANCELLED", False]
    assert target["shot_layer"] is None  # a shot's paint layer is nobody's target


def test_a_new_paint_layer_is_the_size_of_what_it_masks(run: dict[str, Any]) -> None:
    paint = run["paint_new"]
    assert paint["size"] == [64, 48] and paint["target"] == "photo" and paint["editor"] == paint["editor"]
    assert paint["shot_size"] == [96, 54]
    assert paint["builds"] == "ok"  # Generate builds the job: no size mismatch
    assert "image.new" not in run["tooltips"]["template_ops"]  # Blender's New makes 1024x1024


def test_every_visible_control_has_a_tooltip_a_title_case_name_and_blenders_spelling(run: dict[str, Any]) -> None:
    tooltips = run["tooltips"]
    assert tooltips["problems"] == []
    assert len(tooltips["props"]) > 60 and len(tooltips["operators"]) > 20  # the states reach most of the UI
    texture_ui = {"RegiaSettings.bleed", "RegiaSettings.tileable", "RegiaSettings.uv_map", "Object.regia_texture"}
    assert texture_ui <= set(tooltips["props"])
    assert {"regia.texture_new", "regia.texture_use_result", "regia.texture_sync_slots"} <= set(tooltips["operators"])


def test_every_operator_and_its_redo_panel_properties_are_described(run: dict[str, Any]) -> None:
    assert run["tooltips"]["operator_problems"] == []


def test_operators_that_change_data_can_be_undone(run: dict[str, Any]) -> None:
    options = run["tooltips"]["bl_options"]
    missing = sorted(op for op in UNDOABLE if "UNDO" not in options.get(op, []))
    assert missing == []


def test_advanced_settings_are_a_closed_sub_panel(run: dict[str, Any]) -> None:
    panels = run["tooltips"]["panels"]
    assert panels["REGIA_PT_settings_advanced"] == ["Advanced", "REGIA_PT_settings", ["DEFAULT_CLOSED"]]
    props = run["tooltips"]["props"]
    assert {"RegiaSettings.optimizer", "RegiaSettings.lr", "RegiaSettings.schedule", "RegiaSettings.tv"} <= set(props)


def test_errors_wrap_to_the_sidebar_and_offer_preferences_where_the_fix_is(run: dict[str, Any]) -> None:
    errors = run["errors"]
    fits = errors["fits"]
    assert fits < 48  # the old fixed width clipped in a 280-px sidebar
    for kind in ("UNREACHABLE", "MODELS", "FAILED"):
        narrow, wide = errors[f"{kind} 280"], errors[f"{kind} 600"]
        assert narrow["longest"] <= fits < wide["longest"], (kind, narrow, wide)
        assert narrow["lines"] > wide["lines"]
        assert "a-very-long-name-of-a" in narrow["joined"].replace(" ", "")  # a long path is broken, not lost
        assert narrow["preferences"] == (kind != "FAILED"), kind
    assert errors["storyboard_longest"] <= fits


def test_shots_from_markers_asks_before_removing_shots_no_marker_makes(run: dict[str, Any]) -> None:
    board = run["storyboard"]
    assert board["replaced"] == ["By Hand"]
    assert board["asked"] == ["No marker makes By Hand: remove it?"]  # pressed, it asks first (here: No)
    assert board["invoked"] == ["CANCELLED"] and board["after_invoke"] == ["By Hand"]
    assert board["kept"] == ["A", "By Hand"]


def test_shot_buttons_are_disabled_when_they_cannot_work_and_the_message_clears(run: dict[str, Any]) -> None:
    board = run["storyboard"]
    assert (board["open_without_image"], board["open_with_image"]) == (False, True)
    assert (board["regenerate_idle"], board["regenerate_running"]) == (True, False)
    assert board["message_one_left"] == "2 shots queued"  # another shot still runs
    assert board["message_all_ended"] == ""
    assert "Shot 'A' style image: no image" in board["row_labels"]


def test_an_image_guide_asks_for_its_image_at_once(run: dict[str, Any]) -> None:
    """A style guide on a region in three clicks (Add Guide, Style, the image), so one region with one style guide
    is five clicks from an open image: Add Paint Region (then paint), Add Guide, Style, the image, Generate."""
    guide = run["guide_image"]
    assert guide["style_invoked"] == ["RUNNING_MODAL"] and guide["popups"] == ["STYLE"]
    assert guide["palette_invoked"] == ["FINISHED"]  # no image to ask for: added at once
    assert "stripes" in guide["choices"] and not any("regia" in name or "(" in name for name in guide["choices"])
    assert guide["added"] == [1, "STYLE", "stripes"]
