"""The add-on's side of the diffusion generator, without Blender (addon/diffusion.py, spec_builder, storyboard,
error_words): the specs and storyboards it builds pass the engine's validation, its input checks speak the artist's
words, the Diffusion Models list's paths are judged and resolved, and the managed engine gets `--diffusion=PATH`."""

from __future__ import annotations

import numpy as np
import pytest
from regia.addon import diffusion
from regia.addon.diffusion import DiffusionInput, ModelEntry, Unlisted
from regia.addon.engine_process import ManagedEngine
from regia.addon.error_words import field_label
from regia.addon.spec_builder import GuideInput, InputError, JobInput, RegionInput, build_job, canvas_size
from regia.addon.storyboard import Blobs, ShotInput, StyleInput, shot_entry, storyboard_canvas, storyboard_head
from regia.regia_contract.storyboard import shot_spec

from engine.spec import validate_spec

H, W = 60, 100  # not multiples of 8: the diffusion canvas is rounded
TINY = "random:tiny-sd"


def _box(x0: int, y0: int, x1: int, y1: int, size: tuple[int, int] = (W, H)) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def _job(**fields) -> JobInput:
    target = np.ones((H, W, 4), dtype=np.float32)
    target[..., :3] = np.random.default_rng(0).random((H, W, 3))
    regions = [
        RegionInput("sky", _box(0, 0, W, 30), guides=[GuideInput("TEXT", text="a red sky at dusk")],
                    guidance_scale=9.5),
        RegionInput("ground", _box(0, 30, W, H), mode="embolden",
                    guides=[GuideInput("TEXT", text="a field"), GuideInput("NEGATIVE_TEXT", 0.5, text="houses"),
                            GuideInput("PALETTE", colors="#223344 #ddcc88")]),
        RegionInput("face", _box(40, 20, 60, 40), mode="keep", guidance_scale=3.0),
    ]  # fmt: skip
    base = dict(
        target_name="photo",
        target=target,
        regions=regions,
        guides=[GuideInput("TEXT", text="a landscape painting")],
        steps=12,
        seed=5,
        generator="diffusion",
        diffusion=DiffusionInput(weights=TINY, sampler="dpmpp_2m", cfg=6.5, strength=0.6, guidance_every=3,
                                 guidance_strength=2.0),
    )  # fmt: skip
    return JobInput(**{**base, **fields})


def test_a_diffusion_spec_carries_its_generator_and_model_and_passes_the_engines_validation() -> None:
    built = build_job(_job())
    spec = built.spec
    assert spec["generator"] == {"kind": "diffusion", "sampler": "dpmpp_2m", "cfg": 6.5, "strength": 0.6,
                                 "guidance_every": 3, "guidance_strength": 2.0}  # fmt: skip
    assert spec["models"] == {"diffusion": {"weights": TINY}}
    assert "optimizer" not in spec  # a sampler has no optimiser
    assert (spec["width"], spec["height"]) == (104, 64) and spec["steps"] == 12
    checked = validate_spec(spec)
    assert checked.generator.kind == "diffusion" and checked.generator.sampler == "dpmpp_2m"
    assert checked.models.diffusion.weights == TINY and checked.models.clip is None
    assert (checked.width % 8, checked.height % 8) == (0, 0)


def test_text_guides_stay_text_guides_and_a_region_has_its_own_scale_only_when_set() -> None:
    spec = build_job(_job()).spec
    sky, ground, face = spec["regions"]
    assert sky["guidance_scale"] == 9.5 and "guidance_scale" not in ground
    assert "guidance_scale" not in face and "guides" not in face  # a keep region has nothing to guide
    assert sky["guides"] == [{"kind": "text", "prompt": "a red sky at dusk", "weight": 1.0}]
    assert ground["guides"][:2] == [
        {"kind": "text", "prompt": "a field", "weight": 1.0},
        {"kind": "text", "prompt": "houses", "weight": -0.5},  # Negative Text: the region's negative prompt
    ]
    assert spec["guides"] == [{"kind": "text", "prompt": "a landscape painting", "weight": 1.0}]
    regions = validate_spec(spec).regions
    assert [r.guidance_scale for r in regions] == [9.5, None, None]


def test_a_regions_own_strength_goes_in_only_with_the_target_as_start() -> None:
    job = _job()
    job.regions[0].init_strength, job.regions[2].init_strength = 0.3, 0.2
    sky, ground, face = build_job(job).spec["regions"]
    assert sky["init_strength"] == 0.3 and "init_strength" not in ground and "init_strength" not in face
    assert validate_spec(build_job(job).spec).regions[0].init_strength == 0.3
    fresh = _job(use_init=False)
    fresh.regions = [fresh.regions[0]]
    fresh.regions[0].init_strength = 0.3
    assert "init_strength" not in build_job(fresh).spec["regions"][0]  # no target to keep: nothing to be near


def test_other_generators_keep_their_spec() -> None:
    spec = build_job(_job(generator="pixels", regions=[], guides=[])).spec
    assert spec["generator"] == {"kind": "pixels"} and spec["optimizer"]["kind"] == "adam"
    assert (spec["width"], spec["height"]) == (W, H) and "models" not in spec
    validate_spec(spec)


@pytest.mark.parametrize(
    ("size", "scale", "expected"),
    [((100, 60), 1.0, (104, 64)), ((64, 48), 1.0, (64, 48)), ((512, 341), 0.5, (256, 168)), ((30, 30), 1.0, (32, 32))],
)
def test_the_diffusion_canvas_is_rounded_to_multiples_of_8(size, scale, expected) -> None:
    assert canvas_size(*size, scale, "diffusion") == expected
    assert canvas_size(100, 60, 1.0) == (100, 60)  # other generators: as scaled


def test_a_canvas_too_small_for_diffusion_says_so() -> None:
    with pytest.raises(InputError, match="8x8 pixels") as error:
        canvas_size(100, 60, 0.05, "diffusion")
    assert error.value.where == "scale"


def test_diffusion_without_a_model_is_refused_in_the_artists_words() -> None:
    with pytest.raises(InputError) as error:
        build_job(_job(diffusion=DiffusionInput()))
    assert error.value.where == "Diffusion Model"
    assert "needs a model" in str(error.value) and "Diffusion Models list in Regia's preferences" in str(error.value)


def test_out_of_range_diffusion_settings_name_the_panels_field() -> None:
    with pytest.raises(InputError, match="CFG Scale: out of range"):
        build_job(_job(diffusion=DiffusionInput(weights=TINY, cfg=31.0)))
    with pytest.raises(InputError, match="Sampler: unknown choice"):
        build_job(_job(diffusion=DiffusionInput(weights=TINY, sampler="heun")))


def test_inspiration_guides_still_need_clip_with_diffusion() -> None:
    picture = np.ones((8, 8, 4), dtype=np.float32)
    region = RegionInput("sky", _box(0, 0, W, 30), guides=[GuideInput("INSPIRATION", image=picture)])
    with pytest.raises(InputError) as error:
        build_job(_job(regions=[region]))
    assert error.value.where == "region 'sky' guides (inspiration)"
    assert "need a CLIP model, also with the Diffusion generator" in str(error.value)
    with pytest.raises(InputError, match="Guides for All Regions"):
        build_job(_job(regions=[], guides=[GuideInput("INSPIRATION", image=picture)]))
    spec = build_job(_job(regions=[region], clip_model="regia-tiny", clip_weights="random")).spec
    assert spec["models"] == {"clip": {"name": "regia-tiny", "weights": "random"}, "diffusion": {"weights": TINY}}
    validate_spec(spec)


# ---- the Diffusion Models list -------------------------------------------------------------------------------------

ENTRIES = [ModelEntry("SD 1.5", "/models/sd15.safetensors"), ModelEntry("Tiny", TINY), ModelEntry("Empty", "")]


def test_a_setting_names_an_entry_by_label_or_path_and_nothing_else() -> None:
    assert diffusion.resolve_model("SD 1.5", ENTRIES) == "/models/sd15.safetensors"
    assert diffusion.resolve_model(" Tiny ", ENTRIES) == TINY
    assert diffusion.resolve_model(TINY, ENTRIES) == TINY
    assert diffusion.resolve_model("", ENTRIES) == ""
    unknown = diffusion.resolve_model("/elsewhere/model.ckpt", ENTRIES)
    assert isinstance(unknown, Unlisted) and "not in the Diffusion Models list" in unknown.message
    assert unknown.allowed == "'SD 1.5', 'Tiny', 'Empty'"
    empty = diffusion.resolve_model("Empty", ENTRIES)
    assert isinstance(empty, Unlisted) and "has no path" in empty.message
    assert "add one in Regia's preferences" in diffusion.resolve_model("x", []).allowed


def test_model_paths_are_judged_for_the_list(tmp_path) -> None:
    folder = tmp_path / "sd-folder"
    folder.mkdir()
    assert "no model_index.json" in diffusion.model_path_problem(str(folder))
    (folder / "model_index.json").write_text("{}")
    assert diffusion.model_path_problem(str(folder)) is None
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    assert diffusion.model_path_problem(str(weights)) is None
    (tmp_path / "notes.txt").write_text("x")
    assert "not a model file" in diffusion.model_path_problem(str(tmp_path / "notes.txt"))
    assert "does not exist" in diffusion.model_path_problem(str(tmp_path / "gone.ckpt"))
    assert "No path" in diffusion.model_path_problem("  ")
    assert diffusion.model_path_problem(TINY) is None
    assert [diffusion.label_for(p) for p in (str(weights), f"{folder}/", TINY)] == ["model", "sd-folder", TINY]


def test_the_managed_engine_gets_each_model_as_one_joined_option(tmp_path) -> None:
    odd = "-odd folder/sd 1.5.safetensors"
    args = diffusion.serve_args(["regia-tiny:random", "regia-tiny:random"], [odd, " ", TINY, odd])
    assert args == ["--clip=regia-tiny:random", f"--diffusion={odd}", f"--diffusion={TINY}"]
    command = ManagedEngine("python", tmp_path, tmp_path / "data", extra_args=args).command()
    assert f"--diffusion={odd}" in command and "--diffusion" not in command and odd not in command
    assert command.index(f"--diffusion={odd}") > command.index("serve")


def test_the_status_line_says_which_diffusion_models_the_engine_has() -> None:
    health = {"version": "0.1", "device": "cpu", "models": {"present": ["regia-tiny:random"], "missing": []}}
    line = diffusion.health_line(health)
    assert line.startswith("Engine 0.1 on cpu; CLIP models present: regia-tiny:random") and "diffusion" not in line
    health["diffusion_models"] = {"present": [TINY], "missing": ["/models/gone.safetensors"]}
    line = diffusion.health_line(health)
    assert f"diffusion models present: {TINY}" in line
    assert "diffusion models missing: /models/gone.safetensors (fix the path in the Diffusion Models list" in line


def test_engine_errors_about_diffusion_fields_use_the_panels_names() -> None:
    spec = build_job(_job()).spec
    assert field_label("models.diffusion.weights", spec) == "Diffusion Model"
    assert field_label("models.clip.weights", spec) == "CLIP Model"
    assert field_label("generator.cfg", spec) == "CFG Scale"
    assert field_label("generator.guidance_every", spec) == "Guidance Every"
    assert field_label("regions[0].guidance_scale", spec) == "Region 'sky' guidance scale"
    assert field_label("regions[0].init_strength", spec) == "Region 'sky' strength"
    assert field_label("width", spec) == "Size"


# ---- storyboards ----------------------------------------------------------------------------------------------------


def _style(**fields) -> StyleInput:
    base = dict(name="Act 1", width=100, height=60, steps=20, generator="diffusion", prompt="a woodcut of {prompt}",
                seed_rule="per_shot", diffusion=DiffusionInput(weights=TINY, cfg=5.0))  # fmt: skip
    return StyleInput(**{**base, **fields})


def _shots() -> list[ShotInput]:
    region = RegionInput("sea", _box(0, 30, 100, 60), guides=[GuideInput("TEXT", text="waves")], guidance_scale=8.0)
    return [
        ShotInput("Opening", 1, 24, description="a lighthouse at dusk", negative="people"),
        ShotInput("Storm", 25, 48, description="a storm", regions=[region]),
    ]


def test_a_diffusion_storyboard_expands_to_shot_specs_the_engine_accepts() -> None:
    from engine.storyboard import validate_storyboard

    blobs = Blobs()
    style = _style()
    head = storyboard_head(style, blobs)
    canvas = storyboard_canvas(style)
    assert canvas == (104, 64) and (head["width"], head["height"]) == canvas
    assert head["generator"]["kind"] == "diffusion" and head["generator"]["cfg"] == 5.0
    assert head["models"] == {"diffusion": {"weights": TINY}} and head["steps"] == 20
    board = {**head, "shots": [shot_entry(s, canvas, blobs, (100, 60), head) for s in _shots()]}
    validate_storyboard(board)
    for index in range(len(board["shots"])):
        spec = validate_spec(shot_spec(board, index))
        assert spec.generator.kind == "diffusion" and spec.models.diffusion.weights == TINY
        assert (spec.width, spec.height, spec.steps) == (104, 64, 20)
    opening = shot_spec(board, 0)["guides"]  # the words are the diffusion prompts: no CLIP needed
    assert {"kind": "text", "prompt": "a lighthouse at dusk", "weight": 1.0} in opening
    assert {"kind": "text", "prompt": "people", "weight": -1.0} in opening
    storm = validate_spec(shot_spec(board, 1))
    assert storm.regions[0].guidance_scale == 8.0 and storm.regions[0].guides[0].kind == "text"


def test_a_diffusion_storyboard_without_a_model_or_with_inspiration_but_no_clip_is_refused() -> None:
    with pytest.raises(InputError, match="Diffusion Model: the Diffusion generator needs a model"):
        storyboard_head(_style(diffusion=DiffusionInput()), Blobs())
    blobs = Blobs()
    head = storyboard_head(_style(), blobs)
    shot = ShotInput("Dream", 1, 2, guides=[GuideInput("INSPIRATION", image=np.ones((8, 8, 4), np.float32))])
    with pytest.raises(InputError, match="shot 'Dream' guides \\(inspiration\\)"):
        shot_entry(shot, (104, 64), blobs, (100, 60), head)
