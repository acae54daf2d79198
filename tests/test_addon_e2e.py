"""The add-on end to end in headless bpy 5.0.1: the installed extension's operators, a managed engine subprocess,
the timer's poll function driven directly, and the result image datablock.

One bpy child runs every phase (bpy_scripts/addon_e2e.py) so Blender and the engine start once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import bpykit
import pytest
from regia.addon.ui_text import title_case_problems

from engine.spec import validate_spec

pytestmark = [pytest.mark.bpy, pytest.mark.slow]

SCRIPT = Path(__file__).parent / "bpy_scripts" / "addon_e2e.py"
GUIDE_KINDS = {"TEXT", "NEGATIVE_TEXT", "INSPIRATION", "STYLE", "CONTENT", "SCRIBBLE", "OUTLINE", "PALETTE", "TV",
               "SATURATION", "SYMMETRY"}  # fmt: skip


@pytest.fixture(scope="module", params=[None, *bpykit.EXTRA_BPY_PYTHONS], ids=lambda p: "bpy" if p is None else p)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every phase once per bpy: this venv's (5.0.1), and any in REGIA_EXTRA_BPY_PYTHONS (4.2 LTS)."""
    bpykit.require_bpy()
    tmp = tmp_path_factory.mktemp("e2e")
    zip_path = bpykit.build_extension(tmp / "dist")
    env = bpykit.bpy_env(tmp / "home", OMP_NUM_THREADS="1")
    result = bpykit.run_bpy(
        SCRIPT.read_text(), tmp, str(zip_path), sys.executable, "masks", "generate", "health", "roundtrip", "cancel",
        "errors", "clip", "diffusion", "segment", "variations", "ui", "bad_python",
        timeout=600, env=env, python=request.param,
    )  # fmt: skip
    return {item["phase"]: item for item in bpykit.results(result)}


def test_the_engine_starts_with_blender_only_when_asked_and_only_once(run: dict[str, Any]) -> None:
    start = run["autostart"]
    assert start["off"] is False and start["farm"] is False and start["stopped"] == "stopped"
    assert start["started"] is True and start["again"] is False and start["state"] == "ready"
    assert start["pid"] is not None
    assert run["generate"]["engine_pid"] == start["pid"]  # the first Generate ran on it: no second start


def test_generate_makes_a_new_result_image_with_previews_and_history(run: dict[str, Any]) -> None:
    gen = run["generate"]
    seen = gen["seen"]
    assert seen["final"] == "DONE", seen
    assert "RUNNING" in seen["states"] and seen["states"][-1] == "DONE"
    assert gen["previews"] >= 2, "the preview image should update while the job runs"
    assert gen["result_size"] == [64, 48] and gen["packed"] and gen["result_target"] == "photo"
    assert len(gen["history"]) == 1 and gen["history"][0][0] == "photo.regia.001" and gen["history"][0][1]


@pytest.mark.perf
def test_a_poll_of_the_timer_never_waits_on_the_network(run: dict[str, Any]) -> None:
    assert run["generate"]["seen"]["longest_poll"] < 0.1


def test_the_source_is_unchanged_keep_is_exact_and_edit_regions_change(run: dict[str, Any]) -> None:
    gen = run["generate"]
    assert gen["source_unchanged"]
    assert gen["keep_max_diff"] <= 0.5 / 255 + 1e-6  # the painted keep region is bit-exact in 8 bits
    assert gen["edit_mean_diff"] > 0.02


def test_the_spec_built_from_the_scene_passes_the_engines_validation(run: dict[str, Any]) -> None:
    spec = validate_spec(run["generate"]["spec"])
    assert [r.name for r in spec.regions] == ["sky", "ground", "face"]
    assert [r.mode for r in spec.regions] == ["edit", "edit", "keep"]
    assert [g.kind for g in spec.regions[0].guides] == ["style"]
    assert (spec.width, spec.height, spec.steps, spec.seed) == (64, 48, 24, 3)


def test_a_region_gets_saturation_and_symmetry_guides_through_the_operators_and_runs(run: dict[str, Any]) -> None:
    gen = run["generate"]
    assert gen["seen"]["final"] == "DONE"
    assert gen["spec"]["regions"][1]["guides"][1:] == [
        {"kind": "saturation", "weight": -0.5},
        {"kind": "symmetry", "axis": "horizontal", "weight": 2.0},
    ]
    assert [g.kind for g in validate_spec(gen["spec"]).regions[1].guides] == ["palette", "saturation", "symmetry"]


def test_every_guide_kind_is_offered_with_an_icon_blender_has_and_lists_name_it(run: dict[str, Any]) -> None:
    ui = run["ui"]
    assert set(ui["kinds"]) == GUIDE_KINDS
    assert ui["missing_icons"] == []
    assert {"Smoothness", "Saturation", "Symmetry: Horizontal"} <= set(ui["guide_labels"]), ui["guide_labels"]


def test_the_generic_list_operators_move_a_lists_active_item(run: dict[str, Any]) -> None:
    ui = run["ui"]
    assert ui["moved"] == [["ground", "sky", "face"], 1]
    assert ui["back"] == [True, 0, ["CANCELLED"]]  # back in order; nothing moves above the top


def test_settings_round_trip_through_the_result_and_rerun_repeats_it(run: dict[str, Any]) -> None:
    roundtrip = run["roundtrip"]
    assert roundtrip["same"] and roundtrip["regions"] == 3
    assert roundtrip["rerun"] == "DONE" and roundtrip["identical"]


def test_cancel_stops_the_job_and_makes_no_result(run: dict[str, Any]) -> None:
    cancel = run["cancel"]
    assert cancel["cancelled_at"] and cancel["final"] == "CANCELLED"
    assert cancel["new_images"] == 0


def test_errors_are_clear_and_keep_the_settings(run: dict[str, Any]) -> None:
    errors = run["errors"]
    assert "region 'nothing' mask: the mask is empty" in errors["empty"]
    assert errors["empty_status"][:2] == ["FAILED", "INPUT"]
    assert "image 'small'" in errors["size"] and "8x8" in errors["size"] and "64x48" in errors["size"]
    state, kind, message = errors["engine_refused"]
    assert state == "FAILED" and "CLIP" in message and kind in ("FAILED", "MODELS")
    assert errors["steps_kept"] == 24 and errors["regions_kept"] == 3
    assert "127.0.0.1" in errors["down"] and errors["down_status"][:2] == ["FAILED", "UNREACHABLE"]


def test_disabling_the_addon_stops_its_engine(run: dict[str, Any]) -> None:
    pid = run["disable"]["engine_pid"]
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_mask_layers_paint_layers_and_colour_keys_give_the_expected_masks(run: dict[str, Any]) -> None:
    masks = run["masks"]
    # 'sky' spans mask y 0.5+12/64 .. 1 on a 64x48 image: mapped, the top 48/2 - 12 = 12 rows.
    assert masks["sky_rows"] == [1.0] * 12 + [0.0] * 36
    assert masks["sky_cols"] == [0.0] * 8  # the bottom rows are outside it whatever the column
    assert masks["face_box"] == [18, 24, 29, 39] and masks["face_sum"] == 12 * 16
    assert masks["keys"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] and masks["region_map_size"] == [64, 48]
    assert masks["red_cols"] == [1.0] * 20 + [0.0] * 44
    assert masks["green_cols"] == [0.0] * 40 + [1.0] * 24


def test_the_status_line_comes_from_health(run: dict[str, Any]) -> None:
    health = run["health"]
    assert health["state"] == "ready"
    message = health["message"]
    assert "on cpu" in message, health
    assert "models present: regia-tiny:random" in message, health
    assert "models missing: ViT-B-32:laion2b_s34b_b79k" in message and "fetch-models" in message, health
    # The Diffusion Models list reaches the engine as --diffusion=PATH; /health says which it has.
    assert "diffusion models present: random:tiny-sd" in message, health
    assert "diffusion models missing: /nonexistent/regia/gone.safetensors" in message, health


def test_the_clip_models_box_offers_download_for_a_missing_tag_and_settings_choose_from_the_list(
    run: dict[str, Any],
) -> None:
    health = run["health"]
    box = health["clip_box"]
    assert "label:regia-tiny:random: present" in box and "label:ViT-B-32:laion2b_s34b_b79k: missing" in box
    assert box.count("operator:regia.clip_download:IMPORT") == 1  # only the missing tag; random weights are not
    assert "operator:regia.clip_add_file:FILE_NEW" in box
    assert health["items"] == ["NONE", "regia-tiny:random", "ViT-B-32:laion2b_s34b_b79k"]
    assert health["chosen"] == ["regia-tiny", "random"]
    assert health["kept"] == ["RN50:openai", "RN50:openai"]  # set before, not in the list: offered, not lost
    assert health["emptied"] == ["", ""]


def test_every_panel_draws_with_existing_properties_and_operators(run: dict[str, Any]) -> None:
    assert run["ui"]["calls"] > 100 and run["ui"]["guides_left"] == 1


def test_show_mask_and_a_new_scribble_canvas(run: dict[str, Any]) -> None:
    ui = run["ui"]
    assert ui["canvas"] == [[64, 48], 0.0]  # transparent, the target's size
    assert ui["shown_rows"] == [1.0] * 12 + [0.0] * 36  # the 'sky' layer


def test_an_interpreter_without_torch_says_so_and_how_to_fix_it(run: dict[str, Any]) -> None:
    bad = run["bad_python"]
    assert bad["state"] == "failed"
    assert "torch" in bad["message"] and "pip install" in bad["message"], bad


def test_text_prompts_run_with_a_clip_model_and_missing_weights_show_the_engines_message(run: dict[str, Any]) -> None:
    clip = run["clip"]
    assert clip["ran"] == "DONE"
    assert clip["models"] == {"clip": {"name": "regia-tiny", "weights": "random"}}
    assert {"kind": "text", "prompt": "a red sky at dusk", "weight": 1.0} in clip["guides"]
    assert {"kind": "text", "prompt": "clouds", "weight": -0.5} in clip["guides"]
    state, kind, message = clip["missing"]
    assert state == "FAILED" and kind == "MODELS"
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message and "fetch-models" in message, message
    assert clip["kept"] == ["ViT-B-32", 3]


def test_a_diffusion_job_runs_from_the_panel_with_prompts_per_region_and_its_own_guidance_scale(
    run: dict[str, Any],
) -> None:
    diffusion = run["diffusion"]
    assert diffusion["ran"][0] == "DONE", diffusion["ran"]
    spec = diffusion["spec"]
    assert spec["generator"] == {"kind": "diffusion", "sampler": "euler", "cfg": 7.0, "strength": 1.0,
                                 "guidance_every": 2, "guidance_strength": 1.0}  # fmt: skip
    assert spec["models"] == {"diffusion": {"weights": "random:tiny-sd"}} and spec["steps"] == 4
    sky, ground, face = spec["regions"]
    assert {"kind": "text", "prompt": "a red sky at dusk", "weight": 1.0} in sky["guides"]
    assert {"kind": "text", "prompt": "houses", "weight": -0.5} in ground["guides"]
    assert sky["guidance_scale"] == 9.0 and "guidance_scale" not in ground and face["mode"] == "keep"
    assert ground["init_strength"] == 0.6 and "init_strength" not in sky  # the ground's own strength
    checked = validate_spec(spec)
    assert checked.generator.kind == "diffusion" and "optimizer" not in spec
    assert diffusion["result_size"] == [64, 48]
    assert diffusion["keep_max_diff"] <= 0.5 / 255 + 1e-6  # keep holds with the diffusion generator too


def test_diffusion_mistakes_are_refused_in_the_artists_words_before_the_engine(run: dict[str, Any]) -> None:
    diffusion = run["diffusion"]
    assert "Diffusion Model: the Diffusion generator needs a model" in diffusion["no_model"]
    assert "not in the Diffusion Models list" in diffusion["unlisted"]
    assert "'Tiny SD'" in diffusion["unlisted"] and "'Gone'" in diffusion["unlisted"]
    assert "Inspiration guides need a CLIP model" in diffusion["inspiration"]


def test_the_panels_show_the_diffusion_settings_instead_of_the_optimisers(run: dict[str, Any]) -> None:
    diffusion = run["diffusion"]
    shown = set(diffusion["props"])
    assert {"diffusion_model", "sampler", "cfg", "diffusion_strength", "guidance_every", "guidance_strength",
            "diffusion_steps", "use_guidance_scale", "guidance_scale", "use_own_strength",
            "own_strength"} <= shown  # fmt: skip
    assert not {"optimizer", "lr", "schedule"} & shown
    assert "Canvas 64 x 48 (multiples of 8 for Diffusion)" in diffusion["labels"]
    assert "Shots are 320 x 184: multiples of 8 for Diffusion" in diffusion["labels"]
    pixels_props = set(run["ui"]["props"])
    assert {"optimizer", "lr", "schedule"} <= pixels_props and not {"sampler", "cfg", "guidance_scale"} & pixels_props


def test_generators_samplers_and_the_new_settings_have_labels_icons_and_tooltips(run: dict[str, Any]) -> None:
    diffusion = run["diffusion"]
    assert [g[:2] for g in diffusion["generators"]] == [["pixels", "Pixels"], ["fourier", "Fourier"],
                                                        ["diffusion", "Diffusion"]]  # fmt: skip
    assert all(has_tooltip and has_icon for _, _, has_tooltip, has_icon in diffusion["generators"])
    assert [s[1] for s in diffusion["samplers"]] == ["Euler", "Euler Ancestral", "DDIM", "DPM++ 2M"]
    assert all(s[2] for s in diffusion["samplers"])
    for owner, name, tooltip in diffusion["properties"]:
        assert tooltip, f"{owner}.{name} has no tooltip"
        assert not title_case_problems(name), f"{owner}.{name} is not in Title Case"  # "Python for Install" is


def test_the_preferences_list_diffusion_models_and_say_what_is_wrong_with_a_path(run: dict[str, Any]) -> None:
    diffusion = run["diffusion"]
    label, path, added = diffusion["added"]
    assert (label, added) == ("my-model", 1) and path.endswith("my-model.safetensors")
    problem, calls = diffusion["prefs"]
    assert "/nonexistent/regia/gone.safetensors does not exist" in problem
    assert calls.count("operator:regia.diffusion_model_problem:ERROR") == 1  # the Gone entry only
    assert diffusion["storyboard"] == [320, 184, "diffusion", {"diffusion": {"weights": "random:tiny-sd"}}, 30]


def test_segment_into_regions_makes_a_colour_key_region_per_part(run: dict[str, Any]) -> None:
    segment = run["segment"]
    first, second = segment["first"], segment["second"]
    assert first["started"] and not first["pressable_while_running"] and first["message"] is None
    assert 3 <= len(first["names"]) <= 6 and first["names"][0] == "Part 1" and first["active"] == "Part 1"
    assert first["map"] == ["photo parts", [64, 48], True]  # the target's size, packed into the .blend
    assert first["covered_once"] == 1.0 and first["smallest"] > 0  # every pixel in exactly one part
    assert first["others"] == segment["others_before"]  # mask-layer and paint regions are kept
    assert second["message"] is None, second["message"]
    assert 2 <= len(second["names"]) <= 3 and second["covered_once"] == 1.0  # the first run's parts replaced
    assert second["others"] == segment["others_before"]


def test_variations_make_a_grid_to_pick_a_result_or_the_next_target_from(run: dict[str, Any]) -> None:
    var = run["variations"]
    base = var["base"]
    assert var["seeds"] == [base, base + 1, base + 2] == var["spec_seeds"] and var["blocked_while_running"]
    assert var["states"] == ["DONE"] * 3 and var["distinct"]  # three seeds, three different images
    assert var["names"] == ["photo variation 1", "photo variation 2", "photo variation 3"]
    assert var["grid"] is not None and var["grid"][0] > 64 * 2  # a grid, wider than two variations
    added, name, summary, belongs_to, helper, gone_from_list = var["picked"]
    assert added == 1 and name.startswith("photo.regia.") and f"seed {base + 1}" in summary
    assert belongs_to == "photo" and not helper and gone_from_list
    new_target, still_a_result, regions, seed, steps = var["as_target"]
    assert new_target.startswith("photo.regia.") and not still_a_result and regions == 3
    assert (seed, steps) == (base + 2, 6)  # the settings that made it


def test_variations_can_vary_the_preset_instead_of_the_seed(run: dict[str, Any]) -> None:
    presets = run["variations"]["presets"]
    assert [name for name, _seed in presets] == ["ink", "neon"] and len({seed for _name, seed in presets}) == 1


def test_generate_picks_a_new_seed_unless_it_is_locked(run: dict[str, Any]) -> None:
    first, second, locked = run["variations"]["generate_seeds"]
    assert first != second and locked == second  # unlocked: a new take; locked: the seed stays
