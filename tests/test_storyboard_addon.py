"""Storyboards in the add-on, end to end in headless bpy: shots from markers and from a text block, a blockout's
outline, one engine job per shot on a managed engine subprocess, strips in the Sequencer, regenerating one shot,
a failing shot among good ones, export (contact sheet, numbered shots, the storyboard file the engine reads), cancel
and the panels.

One bpy child runs every phase (bpy_scripts/storyboard_e2e.py), so Blender and the engine start once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import bpykit
import numpy as np
import pytest
from PIL import Image
from regia.regia_contract.storyboard import derived_seed

pytestmark = [pytest.mark.bpy, pytest.mark.slow]

SCRIPT = Path(__file__).parent / "bpy_scripts" / "storyboard_e2e.py"
PHASES = ("markers", "text", "blockout", "generate", "regenerate", "export", "cancel", "ui")


@pytest.fixture(scope="module", params=[None, *bpykit.EXTRA_BPY_PYTHONS], ids=lambda p: "bpy" if p is None else p)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every phase once per bpy: this venv's (5.0.1), and any in REGIA_EXTRA_BPY_PYTHONS (4.2 LTS)."""
    bpykit.require_bpy()
    tmp = tmp_path_factory.mktemp("storyboard")
    zip_path = bpykit.build_extension(tmp / "dist")
    env = bpykit.bpy_env(tmp / "home", OMP_NUM_THREADS="1")
    result = bpykit.run_bpy(
        SCRIPT.read_text(), tmp, str(zip_path), sys.executable, str(tmp / "out"), *PHASES,
        timeout=600, env=env, python=request.param,
    )  # fmt: skip
    return {item["phase"]: item for item in bpykit.results(result)}


def test_markers_bound_to_cameras_give_one_shot_each_and_unbound_markers_are_named(run: dict[str, Any]) -> None:
    markers = run["markers"]
    assert markers["shots"] == [["A", 1, 24, "CamA"], ["B", 25, 59, "CamB"], ["C", 60, 90, "CamC"]]
    assert "marker 'note' (frame 40) has no camera: skipped" in markers["message"]


def test_a_text_block_gives_shots_and_keeps_the_shots_it_names(run: dict[str, Any]) -> None:
    text = run["text"]
    assert text["shots"] == [
        ["A", 1, 24, "a red door in the rain", "CamA"],
        ["B", 25, 59, "the hallway at night", "CamB"],
        ["C", 60, 90, "a window, morning light", "CamC"],
        ["Extra", 91, 114, "the street outside", None],
    ]
    assert text["kept_uids"], "shots named again must keep their identity (history, strip)"
    assert "Text 'bad' line 4: not a shot (got 'no colon on this line')" in text["error"]
    assert text["count_after_error"] == 4


def test_the_blockout_outline_has_its_edges_where_the_objects_are(run: dict[str, Any]) -> None:
    blockout = run["blockout"]
    assert blockout["size"] == [64, 48]
    left, right = blockout["boxes"]["Left"], blockout["boxes"]["Right"]
    assert right[0] > left[2], "the cubes project apart, left and right"
    assert blockout["ink_inside"] > 0.3 and blockout["ink_outside"] < 0.05, blockout
    assert min(blockout["ink_per_box"]) > 0.2, "both objects are outlined"
    assert blockout["shaded_contrast"] > 0.05, "the render shows the objects"
    assert blockout["settings_restored"] and "Regia blockout normals" not in blockout["materials"]
    assert "shot 'A' blockout: the shot has no camera, and neither has the scene" in blockout["no_camera"]


def test_generation_puts_each_shot_on_the_storyboard_channel_at_its_frames(run: dict[str, Any]) -> None:
    gen = run["generate"]
    shots, uids = gen["shots"], gen["uids"]
    for name in ("A", "B", "C"):
        assert shots[name]["state"] == "DONE", shots[name]
        assert shots[name]["versions"] == [f"Storyboard {name} v001"] == [shots[name]["image"]]
        assert gen["packed"][name]
    strips = sorted(gen["strips"], key=lambda s: s["frame_start"])
    assert [(s["name"], s["frame_start"], s["duration"]) for s in strips] == [
        ("A", 1, 24),
        ("B", 25, 35),
        ("C", 60, 31),
    ]
    assert {s["channel"] for s in strips} == {gen["channel"]} and {s["channel_name"] for s in strips} == {"Storyboard"}
    assert [s["shot"] for s in strips] == [uids["A"], uids["B"], uids["C"]]
    assert [s["file"] for s in strips] == ["Storyboard_A_v001.png", "Storyboard_B_v001.png", "Storyboard_C_v001.png"]


@pytest.mark.perf
def test_a_poll_of_the_timer_never_waits_on_the_network(run: dict[str, Any]) -> None:
    assert run["generate"]["longest_poll"] < 0.1


def test_one_failing_shot_leaves_the_others_done(run: dict[str, Any]) -> None:
    shots = run["generate"]["shots"]
    assert shots["Extra"]["state"] == "FAILED" and "CLIP" in shots["Extra"]["message"], shots["Extra"]
    assert shots["Broken"]["state"] == "FAILED" and shots["Broken"]["kind"] == "INPUT"
    assert "image 'missing'" in shots["Broken"]["message"]
    assert shots["Extra"]["versions"] == shots["Broken"]["versions"] == []
    assert [s["name"] for s in run["generate"]["strips"] if s["name"] in ("Extra", "Broken")] == []


def test_each_shot_runs_with_the_storyboards_style_its_blockout_and_its_own_seed(run: dict[str, Any]) -> None:
    gen = run["generate"]
    assert [g["kind"] for g in gen["spec_a"]["guides"]] == ["style", "palette", "content", "outline"]
    assert gen["spec_a"]["guides"][1]["colors"] == ["#223344", "#ddcc88"]
    assert gen["seeds"] == {name: derived_seed(7, name) for name in ("A", "B", "C")}
    assert [(r["name"], r["mode"]) for r in gen["regions_c"]] == [("paint 1", "edit")]


def test_a_shots_guide_list_offers_saturation_and_symmetry(run: dict[str, Any]) -> None:
    gen = run["generate"]
    assert gen["shots"]["C"]["state"] == "DONE"
    assert gen["guides_c"][-2:] == [
        {"kind": "saturation", "weight": -0.5},
        {"kind": "symmetry", "axis": "vertical", "weight": 1.0},
    ]


def test_regenerating_a_shot_replaces_only_its_strip_and_keeps_its_history(run: dict[str, Any]) -> None:
    regen = run["regenerate"]
    after = {s["name"]: s for s in regen["after"]}
    assert sorted(after) == ["A", "B", "C"], "one strip per shot"
    assert after["A"] == regen["before"]["A"] and after["C"] == regen["before"]["C"]
    assert after["B"]["file"] == "Storyboard_B_v002.png" and after["B"]["shot"] == regen["b_uid"]
    assert (after["B"]["frame_start"], after["B"]["duration"]) == (25, 35)
    assert regen["b_versions"] == ["Storyboard B v001", "Storyboard B v002"] and regen["b_image"] == "Storyboard B v002"
    assert regen["old_image_kept"]
    seed_before, new_take = regen["seeds"]
    assert new_take not in (0, seed_before) and regen["new_take_differs"]  # Regenerate Shot: a new take
    assert regen["locked"] == [new_take, True]  # locked: the same seed, the same image
    back = run["use_version"]
    assert back["image"] == "Storyboard B v001"
    assert [s["file"] for s in back["strips"] if s["name"] == "B"] == ["Storyboard_B_v001.png"]


def test_export_writes_the_contact_sheet_the_numbered_shots_and_the_storyboard_file(run: dict[str, Any]) -> None:
    export = run["export"]
    files = export["files"]
    assert {
        "contact_sheet.png",
        "regia_storyboard.json",
        "shots/001_A.png",
        "shots/002_B.png",
        "shots/003_C.png",
    } <= set(files)
    # The style image, A's blockout and outline, C's region mask.
    assert len([f for f in files if f.startswith("images/")]) == 4
    assert export["sheet_size"] == export["expected_size"]
    assert max(export["diffs"]) < 0.02, export["diffs"]  # every shot is where the layout says, as it looks
    assert export["swapped"] > 0.05, "another shot's image must not match as well"


def test_the_addons_shot_specs_equal_the_engines_expansion_of_the_exported_file(run: dict[str, Any]) -> None:
    storyboard = pytest.importorskip("engine.storyboard")
    from engine.spec import validate_spec

    export = run["export"]
    folder = Path(export["folder"])
    board = storyboard.load_storyboard_file(folder / "regia_storyboard.json")
    assert [shot.name for shot in board.shots] == export["names"]
    sha_of = {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (folder / "images").glob("*.png")
    }
    assert [len(spec["regions"]) for spec in export["specs"]] == [0, 0, 1]
    for index, ours in enumerate(export["specs"]):
        ours_spec = validate_spec(_with_blob_refs(ours)).model_dump()
        theirs = _refs_to_sha(storyboard.shot_spec(board, index).model_dump(), sha_of)
        assert _refs_to_sha(ours_spec, {}) == theirs, export["names"][index]


def test_the_engine_cli_renders_the_exported_file_to_the_same_pixels_as_the_addons_jobs(
    run: dict[str, Any], tmp_path: Path
) -> None:
    """`python -m engine storyboard` on the exported file, without Blender: every shot bit-identical to the image
    the add-on got from the engine server (same spec, same seed, same device, one thread as the managed engine)."""
    export = run["export"]
    folder = Path(export["folder"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "engine", "storyboard", str(folder / "regia_storyboard.json")]
    result = subprocess.run(
        [*command, "--out", str(tmp_path), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300, env=env, cwd=bpykit.REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("001_A.png", "002_B.png", "003_C.png"):
        ours = _png_pixels(folder / "shots" / name)
        theirs = _png_pixels(tmp_path / "shots" / name)
        assert ours.shape == theirs.shape == (48, 64, 3) and (ours == theirs).all(), name


def _png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _with_blob_refs(value: Any) -> Any:
    """The child sent image refs as bare sha256: make them blob refs again, as the add-on submits them."""
    if isinstance(value, dict):
        return {k: _with_blob_refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_blob_refs(v) for v in value]
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return f"blob:{value}"
    return value


def _refs_to_sha(value: Any, sha_of: dict[str, str]) -> Any:
    """Blob refs and file paths alike as the sha256 of the image's bytes."""
    if isinstance(value, dict):
        return {k: _refs_to_sha(v, sha_of) for k, v in value.items()}
    if isinstance(value, list):
        return [_refs_to_sha(v, sha_of) for v in value]
    if isinstance(value, str) and value.startswith("blob:"):
        return value.removeprefix("blob:")
    return sha_of.get(value, value) if isinstance(value, str) else value


def test_cancel_all_stops_every_shot_and_makes_no_version(run: dict[str, Any]) -> None:
    cancel = run["cancel"]
    assert cancel["cancelled"]
    assert set(cancel["states"].values()) == {"CANCELLED"}, cancel["states"]
    assert set(cancel["new_versions"].values()) == {0}


def test_the_panels_draw_in_the_sequencer_and_scene_properties_and_open_a_shot_for_refining(
    run: dict[str, Any],
) -> None:
    ui = run["ui"]
    assert ui["panels"] == 8 and ui["spaces"] == ["PROPERTIES", "SEQUENCE_EDITOR"]
    assert ui["calls"] > 100
    assert ui["target"] == ui["shot_image"] == "Storyboard A v001"
