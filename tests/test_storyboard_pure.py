"""The add-on's pure storyboard side, without Blender: shots from markers and text, seeds, the storyboard file and
each shot's spec (checked against the engine's own expansion of the same file), blockout edges, the contact sheet
and its pixel font."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from regia.addon.contact_sheet import BACKGROUND, INK, MISSING, Panel, cell_size, contact_sheet, layout
from regia.addon.edges import edges, outline_drawing, sobel
from regia.addon.naming import MAX_ID_NAME_BYTES
from regia.addon.spec_builder import Blobs, GuideInput, InputError, RegionInput
from regia.addon.storyboard import (
    Marker,
    ShotInput,
    ShotLine,
    StyleInput,
    export_files,
    parse_shot_text,
    shot_entry,
    shot_image_name,
    shots_from_markers,
    shots_from_text,
    spec_blobs,
    storyboard_head,
)
from regia.regia_contract import label_font
from regia.regia_contract.storyboard import derived_seed, shot_seed, shot_spec

W, H = 40, 32
CLIP = ("regia-tiny", "random")


# ---- shots from markers --------------------------------------------------------------------------------------


def test_markers_bound_to_cameras_make_shots_up_to_the_next_one_and_the_last_to_the_scene_end() -> None:
    markers = [Marker("B", 25, "CamB"), Marker("A", 1, "CamA"), Marker("note", 40, None), Marker("C", 60, "CamC")]
    shots, notes = shots_from_markers(markers, scene_end=90)
    assert [(s.name, s.frame_start, s.frame_end, s.camera) for s in shots] == [
        ("A", 1, 24, "CamA"),
        ("B", 25, 59, "CamB"),  # the unbound marker at 40 switches no camera, so B runs on
        ("C", 60, 90, "CamC"),
    ]
    assert notes == ["marker 'note' (frame 40) has no camera: skipped"]


def test_markers_sharing_a_frame_after_the_end_or_unnamed_are_handled_and_said() -> None:
    markers = [Marker("", 1, "CamA"), Marker("twin", 1, "CamB"), Marker("A", 10, "CamC"), Marker("late", 50, "CamD")]
    shots, notes = shots_from_markers(markers, scene_end=30)
    assert [(s.name, s.frame_start, s.frame_end) for s in shots] == [("CamA", 1, 9), ("A", 10, 49)]
    assert notes == [
        "marker 'twin' shares frame 1 with '': skipped",
        "marker 'late' (frame 50) is after the scene's end (30): skipped",
    ]


def test_markers_with_one_name_make_shots_with_unique_names() -> None:
    shots, _ = shots_from_markers([Marker("S", 1, "A"), Marker("S", 5, "B"), Marker("S", 9, "C")], 12)
    assert [s.name for s in shots] == ["S", "S.001", "S.002"]


# ---- shots from text ---------------------------------------------------------------------------------------------


def test_a_text_block_gives_shots_and_skips_blank_lines_and_comments() -> None:
    text = "# act one\n\nOpening: a red door in the rain\n  Hallway [30-41] : the hallway: at night  \n"
    assert parse_shot_text(text) == [
        ShotLine(3, "Opening", "a red door in the rain"),
        ShotLine(4, "Hallway", "the hallway: at night", (30, 41)),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A: fine\nno colon here\n", "line 2: not a shot (got 'no colon here')"),
        ("A: fine\n\n: nameless\n", "line 3: the shot has no name before the ':'"),
        ("A:\n", "line 1: shot 'A' has no description after the ':'"),
        ("A: one\nB: two\nA: again\n", "line 3: shot 'A' is already on line 1"),
        ("A [9-3]: backwards\n", "line 1: the shot ends before it starts (got '[9-3]')"),
        ("A [x-3]: odd\n", "line 1: not a shot (got 'A [x-3]: odd')"),
    ],
)
def test_a_malformed_line_is_an_error_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_shot_text(text)
    assert str(info.value).startswith(message), str(info.value)


def test_text_shots_take_their_own_frames_else_an_existing_shots_else_follow_the_previous_one() -> None:
    lines = parse_shot_text("A: a\nB: b\nC [100-110]: c\nD: d\n")
    shots = shots_from_text(lines, existing={"B": (50, 60)}, first_frame=1, length=10)
    assert [(s.name, s.frame_start, s.frame_end, s.description) for s in shots] == [
        ("A", 1, 10, "a"),
        ("B", 50, 60, "b"),
        ("C", 100, 110, "c"),
        ("D", 111, 120, "d"),
    ]


# ---- seeds -------------------------------------------------------------------------------------------------------


def test_seeds_follow_the_rule_and_a_shots_own_seed_wins() -> None:
    expected = int.from_bytes(hashlib.sha256(b"7:Opening").digest()[:4], "big")
    assert derived_seed(7, "Opening") == expected
    shot = {"name": "Opening", "seed": None}
    assert shot_seed({"seed": 7, "seed_rule": "per_shot", "shots": [shot]}, 0) == expected
    assert shot_seed({"seed": 7, "seed_rule": "fixed", "shots": [shot]}, 0) == 7
    assert shot_seed({"seed": 7, "seed_rule": "per_shot", "shots": [{"name": "Opening", "seed": 3}]}, 0) == 3
    assert derived_seed(7, "Opening") != derived_seed(7, "Hallway") != derived_seed(8, "Hallway")


# ---- the storyboard file and each shot's spec ------------------------------------------------------------------


def _image(value: float, w: int = 12, h: int = 10) -> np.ndarray:
    rng = np.random.default_rng(int(value * 100))
    image = np.ones((h, w, 4), dtype=np.float32)
    image[..., :3] = rng.random((h, w, 3)) * value
    return image


def _style(**fields: Any) -> StyleInput:
    base = StyleInput(
        name="Act 1", width=W, height=H, steps=3, images=[("bricks", _image(0.9)), ("sky", _image(0.5))],
        palette="#223344, ddcc88", prompt="{prompt}, in ink", negative="blurry", seed=11, seed_rule="per_shot",
        preview_every=0,
    )  # fmt: skip
    for key, value in fields.items():
        setattr(base, key, value)
    return base


def _shots() -> list[ShotInput]:
    outline = np.ones((H, W, 4), dtype=np.float32)
    outline[8:24, 10, :3] = 0.0
    mask = np.zeros((H, W), dtype=np.float32)
    mask[:, : W // 2] = 1.0
    left = RegionInput("left", mask, guides=[GuideInput("PALETTE", colors="#ff0000")])
    return [
        ShotInput("Opening", 1, 24, "a red door", "people", guides=[GuideInput("OUTLINE", 0.7, image=outline)]),
        ShotInput("Hallway", 25, 40, "", seed=5, regions=[left]),
        ShotInput("Street", 41, 60, "the street", guides=[GuideInput("CONTENT", 1.0, image=_image(0.7, W, H))]),
    ]


def _board(style: StyleInput) -> tuple[dict[str, Any], dict[str, bytes]]:
    blobs = Blobs()
    head = storyboard_head(style, blobs)
    shots = [shot_entry(shot, (W, H), blobs) for shot in _shots()]
    return {**head, "shots": shots}, blobs.blobs


def test_without_clip_a_shot_gets_the_style_images_the_palette_and_its_own_guides_but_no_text() -> None:
    board, _ = _board(_style())
    spec = shot_spec(board, 0)
    style_refs = board["style"]["images"]
    assert spec["guides"][:3] == [
        {"kind": "style", "image": style_refs[0], "weight": 1.0},
        {"kind": "style", "image": style_refs[1], "weight": 1.0},
        {"kind": "palette", "colors": ["#223344", "#ddcc88"], "weight": 0.3},
    ]
    assert [g["kind"] for g in spec["guides"]] == ["style", "style", "palette", "outline"]
    assert (spec["width"], spec["height"], spec["steps"], spec["preview_every"]) == (W, H, 3, 0)
    assert spec["seed"] == derived_seed(11, "Opening") and shot_spec(board, 1)["seed"] == 5
    assert "models" not in spec and spec["regions"] == [] and "init" not in spec


def test_with_clip_the_words_come_in_order_with_their_weights() -> None:
    board, _ = _board(_style(clip_model=CLIP[0], clip_weights=CLIP[1]))
    texts = [(g["prompt"], g["weight"]) for g in shot_spec(board, 0)["guides"] if g["kind"] == "text"]
    assert texts == [("a red door", 1.0), ("people", -1.0), ("a red door, in ink", 0.5), ("blurry", -0.5)]
    # No description: the style prompt's subject is "a scene", as the engine's presets do it.
    texts = [(g["prompt"], g["weight"]) for g in shot_spec(board, 1)["guides"] if g["kind"] == "text"]
    assert texts == [("a scene, in ink", 0.5), ("blurry", -0.5)]
    assert shot_spec(board, 1)["regions"][0]["name"] == "left"
    assert shot_spec(board, 0)["models"] == {"clip": {"name": "regia-tiny", "weights": "random"}}


def test_each_job_uploads_only_the_images_its_spec_names() -> None:
    board, blobs = _board(_style(images=[("bricks", _image(0.9))]))
    needed = spec_blobs(shot_spec(board, 0), blobs)
    style_sha = board["style"]["images"][0].removeprefix("blob:")
    outline_sha = board["shots"][0]["guides"][0]["image"].removeprefix("blob:")
    assert set(needed) == {style_sha, outline_sha}
    assert all(blobs[sha] == data for sha, data in needed.items())


def test_export_turns_blobs_into_png_files_beside_the_file_once_each() -> None:
    board, blobs = _board(_style(images=[("bricks", _image(0.9)), ("again", _image(0.9))]))  # the same pixels
    exported, files = export_files(board, blobs)
    assert exported["style"]["images"][0] == exported["style"]["images"][1]
    paths = [exported["style"]["images"][0], exported["shots"][0]["guides"][0]["image"]]
    paths += [exported["shots"][1]["regions"][0]["mask"], exported["shots"][2]["guides"][0]["image"]]
    assert set(files) == set(paths) and all(p.startswith("images/") and p.endswith(".png") for p in paths)
    for path, data in files.items():
        assert hashlib.sha256(data).hexdigest().startswith(Path(path).stem)
    assert "blob:" not in json.dumps(exported) and board["style"]["images"][0].startswith("blob:")  # a copy


def test_storyboard_mistakes_name_where_they_are() -> None:
    with pytest.raises(InputError, match="storyboard size: not a canvas"):
        storyboard_head(_style(width=8), Blobs())
    with pytest.raises(InputError, match="storyboard CLIP weights: no weights are set for the CLIP model ViT-B-32"):
        storyboard_head(_style(clip_model="ViT-B-32"), Blobs())
    with pytest.raises(InputError, match="storyboard palette: not a colour"):
        storyboard_head(_style(palette="#12345g"), Blobs())
    with pytest.raises(InputError, match="storyboard style images: too many"):
        storyboard_head(_style(images=[("x", _image(0.5))] * 9), Blobs())
    keep = ShotInput("S", 1, 2, regions=[RegionInput("r", np.ones((H, W), np.float32), mode="keep")])
    with pytest.raises(InputError, match="shot 'S' region 'r' mode: a shot's regions can only be edit regions"):
        shot_entry(keep, (W, H), Blobs())
    small = ShotInput("S", 1, 2, guides=[GuideInput("OUTLINE", image=np.ones((8, 8, 4), np.float32))])
    with pytest.raises(InputError, match=r"shot 'S' guides\[0\] \(outline\)"):
        shot_entry(small, (W, H), Blobs())
    with pytest.raises(InputError, match="shot 'S' frames: the shot ends before it starts"):
        shot_entry(ShotInput("S", 5, 2), (W, H), Blobs())
    empty = ShotInput("S", 1, 2, regions=[RegionInput("r", np.zeros((H, W), np.float32))])
    with pytest.raises(InputError, match="shot 'S' region 'r' mask: the mask is empty"):
        shot_entry(empty, (W, H), Blobs())


def test_a_shot_image_name_fits_a_blender_id_name() -> None:
    assert shot_image_name("Act 1", "Opening", 3) == "Act 1 Opening v003"
    long = shot_image_name("S" * 40, "é" * 40, 12)
    assert len(long.encode()) <= MAX_ID_NAME_BYTES and long.endswith(" v012")


# ---- the same shots as the engine expands them -------------------------------------------------------------------


def _as_sha(spec: dict[str, Any], sha_of: dict[str, str]) -> dict[str, Any]:
    """Image references replaced by the sha256 of the image's bytes, whether they are blobs or file paths."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and value in sha_of:
            return sha_of[value]
        return value

    return walk(spec)


@pytest.mark.parametrize("clip", [False, True], ids=["no-clip", "clip"])
def test_the_addons_shot_specs_equal_the_engines_expansion_of_the_exported_file(clip: bool, tmp_path: Path) -> None:
    engine_storyboard = pytest.importorskip("engine.storyboard")
    from engine.spec import validate_spec

    style = _style(clip_model=CLIP[0], clip_weights=CLIP[1]) if clip else _style(seed_rule="fixed")
    board, blobs = _board(style)
    exported, files = export_files(board, blobs)
    for path, data in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    (tmp_path / "story.json").write_text(json.dumps(exported))
    loaded = engine_storyboard.load_storyboard_file(tmp_path / "story.json")
    sha_of = {f"blob:{sha}": sha for sha in blobs}
    sha_of |= {path: hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() for path in files}
    for index in range(len(board["shots"])):
        ours = validate_spec(shot_spec(board, index)).model_dump()
        theirs = engine_storyboard.shot_spec(loaded, index).model_dump()
        assert _as_sha(ours, sha_of) == _as_sha(theirs, sha_of), board["shots"][index]["name"]
    assert len({engine_storyboard.shot_spec(loaded, i).seed for i in range(3)}) == (3 if clip else 2)


# ---- blockout edges -----------------------------------------------------------------------------------------------


def test_edges_outline_a_square_and_ignore_flat_areas_and_faint_noise() -> None:
    rng = np.random.default_rng(0)
    shaded = np.full((40, 40, 3), 0.3, dtype=np.float32) + rng.normal(0, 0.02, (40, 40, 3)).astype(np.float32)
    shaded[10:30, 12:28] = 0.9
    found = edges(shaded)
    ring = np.zeros((40, 40), dtype=bool)
    ring[8:32, 10:30] = True
    ring[12:28, 14:26] = False
    assert found[ring].mean() > 0.5
    assert not found[~ring].any()  # inside the square, outside it, and the noise: no lines


def test_a_normal_pass_adds_silhouettes_the_shading_does_not_show() -> None:
    shaded = np.full((30, 30, 3), 0.5, dtype=np.float32)  # an object exactly as bright as the background
    normals = np.zeros((30, 30, 4), dtype=np.float32)
    normals[5:25, 5:25] = (0.5, 0.5, 1.0, 1.0)
    assert not edges(shaded).any()
    found = edges(shaded, normals)
    assert found[4:6, 5:25].all() and found[5:25, 24:26].all() and not found[10:20, 10:20].any()
    drawing = outline_drawing(found)
    assert drawing.shape == (30, 30, 4) and set(np.unique(drawing[..., 0])) == {0.0, 1.0}
    assert (drawing[..., 3] == 1).all() and (drawing[found, 0] == 0).all()


def test_sobel_reads_one_for_a_full_step() -> None:
    step = np.zeros((5, 6), dtype=np.float32)
    step[:, 3:] = 1.0
    assert sobel(step)[2, 2] == pytest.approx(1.0) and sobel(step)[2, 0] == 0.0


# ---- contact sheet and font -------------------------------------------------------------------------------------


def test_the_contact_sheet_shows_every_shot_in_order_with_its_label() -> None:
    shots = [np.full((30, 90, 4), (v, 1 - v, 0.5, 1), dtype=np.float32) for v in (0.1, 0.5, 0.9)]
    panels = [Panel(image, [f"0{i + 1} shot", "frames 1-24"]) for i, image in enumerate(shots)]
    panels.append(Panel(None, ["04 later", "frames 25-30"]))
    sheet, boxes = contact_sheet(panels, cell=(90, 30), columns=2)
    (width, height), expected = layout(4, (90, 30), 2, 2)
    assert sheet.shape == (height, width, 3) and boxes == expected
    label = 2 * (label_font.HEIGHT + 3) + 3  # two lines
    assert [(b.x, b.y) for b in boxes] == [(8, 8), (106, 8), (8, 8 + 30 + label + 8), (106, 8 + 30 + label + 8)]
    for image, box in zip(shots, boxes, strict=False):
        np.testing.assert_allclose(sheet[box.y : box.y + 30, box.x : box.x + 90], image[..., :3], atol=1e-6)
    last = boxes[3]
    assert np.allclose(sheet[last.y : last.y + 30, last.x : last.x + 90], MISSING)
    for box in boxes:  # ink under every shot, background between them
        text = sheet[box.y + box.height : box.y + box.height + label, box.x : box.x + box.width]
        assert np.isclose(text, INK, atol=0.05).all(axis=-1).sum() > 10
    assert np.allclose(sheet[0, :], BACKGROUND)


def test_cells_of_large_storyboards_are_shown_smaller() -> None:
    assert cell_size(320, 180) == (320, 180)
    assert cell_size(1920, 1080) == (480, 270)


def test_labels_are_written_whole_in_a_font_with_accented_letters() -> None:
    glyphs = label_font.glyphs()
    assert all(glyph.shape[0] == label_font.HEIGHT for glyph in glyphs.values())
    for accented, plain in (("É", "E"), ("ø", "o"), ("Ł", "L"), ("ß", "B"), ("č", "c")):
        ink, base = glyphs[accented], glyphs[plain]
        assert ink.any() and not np.array_equal(ink, glyphs["?"])  # a glyph of its own, not the fallback
        width = min(ink.shape[1], base.shape[1])
        assert np.abs(ink[:, :width] - base[:, :width]).sum() > 0.5  # the accent (or stroke) is drawn
    assert label_font.text_width("\u4e00") == label_font.text_width("?")  # what the font lacks reads '?'
    description = "Ærøskøbing harbour at dawn, the ferry leaving, gulls over the water"
    lines = label_font.wrap(description, 120)
    assert len(lines) > 1 and " ".join(lines) == description  # whole, broken between words
    assert all(label_font.text_width(line) <= 120 for line in lines)
    assert label_font.wrap("Supercalifragilisticexpialidocious", 40)[0] != ""  # a long word is cut inside
    panels = [Panel(np.zeros((30, 120, 3), np.float32), ["01 Ærø", "frames 1-24", description])]
    sheet, _boxes = contact_sheet(panels, cell=(120, 30))
    assert sheet.shape[0] == 8 + 30 + (2 + len(lines)) * (label_font.HEIGHT + 3) + 3 + 8
