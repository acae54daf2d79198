"""Job spec validation: every bad spec is refused with an error that names the field.

Some checks live in validate_spec (the schema), others in prepare_job (files, sizes,
capabilities); both raise SpecError or SpecErrors.
"""

from __future__ import annotations

import json
from pathlib import Path

import jobkit
import numpy as np
import pytest

from engine.errors import SpecError, SpecErrors
from engine.spec import JobSpec, json_schema, load_spec_file, parse_spec_json, validate_spec
from regia_contract.kinds import GUIDE_KINDS

SIZE = 48


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A job folder with a valid init, a mask, a style image and some broken files."""
    jobkit.save(tmp_path / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(tmp_path / "masks" / "sky.png", jobkit.rect_mask(SIZE, 0, 0, 20, SIZE))
    jobkit.save(tmp_path / "masks" / "small.png", jobkit.rect_mask(32, 0, 0, 10, 32))
    jobkit.save(tmp_path / "masks" / "empty.png", np.zeros((SIZE, SIZE), np.uint8))
    clear = np.zeros((SIZE, SIZE, 4), np.uint8)
    clear[..., :3] = 255  # white but fully transparent: the alpha is the mask, and it is empty
    jobkit.save(tmp_path / "masks" / "clear.png", clear)
    jobkit.save(tmp_path / "styles" / "brick.png", jobkit.brick_texture(64))
    whole = (tmp_path / "init.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(1).integers(0, 256, 700, dtype=np.uint8).tobytes())
    return tmp_path


def region(name: str = "sky", mask: str = "masks/sky.png", **fields) -> dict:
    return {"name": name, "mask": mask, **fields}


def style(image: str = "styles/brick.png", **fields) -> dict:
    return {"kind": "style", "image": image, **fields}


def validate(data) -> JobSpec:
    return validate_spec(json.loads(json.dumps(data)))


# ---- valid specs ------------------------------------------------------------------------


def test_design_example_validates_and_round_trips():
    """The spec from DESIGN.md (with its REF placeholders as paths) is a valid version-1 spec."""
    data = {
        "version": 1,
        "width": 512,
        "height": 512,
        "seed": 0,
        "steps": 200,
        "generator": {"kind": "fourier"},
        "optimizer": {"kind": "adam", "lr": 0.05},
        "init": {"image": "init.png"},
        "preset": "watercolour",
        "guides": [],
        "losses": {"tv": 0.1, "saturation": 0.0, "symmetry": 0.0},
        "regions": [
            {
                "name": "sky",
                "mask": "sky.png",
                "feather": 4,
                "mode": "edit",
                "guides": [
                    {"kind": "text", "prompt": "neon jungle", "weight": 1.0},
                    {"kind": "text", "prompt": "a painter's silhouette", "weight": -0.5},
                    {"kind": "image", "image": "insp.png", "weight": 1.0},
                    {"kind": "style", "image": "style.png", "weight": 1.0},
                    {"kind": "content", "image": "content.png", "weight": 1.0},
                    {"kind": "scribble", "image": "scribble.png", "weight": 1.0},
                    {"kind": "outline", "image": "outline.png", "weight": 1.0},
                    {"kind": "palette", "colors": ["#223344", "#ddcc88"], "weight": 1.0},
                ],
            },
            {"name": "tree", "mask": "blob:" + "0" * 64, "mode": "keep"},
        ],
        "models": {"clip": {"name": "ViT-B-32", "weights": "laion2b_s34b_b79k"}},
        "preview_every": 10,
    }
    spec = validate(data)
    assert spec.generator.kind == "fourier"
    assert [g.kind for g in spec.regions[0].guides] == [
        "text",
        "text",
        "image",
        "style",
        "content",
        "scribble",
        "outline",
        "palette",
    ]
    assert spec.regions[0].guides[1].weight == -0.5
    again = validate_spec(json.loads(spec.to_json()))
    assert again == spec
    refs = dict(spec.image_refs())
    assert refs["init.image"] == "init.png"
    assert refs["regions[0].mask"] == "sky.png"
    assert refs["regions[0].guides[3].image"] == "style.png"
    assert refs["regions[1].mask"] == "blob:" + "0" * 64


def test_defaults():
    spec = validate({"version": 1})
    assert (spec.width, spec.height, spec.steps, spec.seed) == (512, 512, 200, 0)
    assert spec.generator.kind == "pixels"
    assert spec.optimizer.kind == "adam"
    assert spec.init is None and spec.preset is None
    assert spec.regions == [] and spec.guides == []


def test_schema_describes_the_spec():
    schema = json_schema()
    json.dumps(schema)
    for name in ("version", "width", "height", "seed", "steps", "generator", "regions", "guides", "losses"):
        assert name in schema["properties"], name


# ---- schema errors (validate_spec) ------------------------------------------------------


def test_unknown_guide_kind_in_region():
    data = jobkit.spec(regions=[region(guides=[{"kind": "sketch", "image": "x.png"}])])
    error = jobkit.spec_error(validate, data, field="regions[0].guides[0].kind")
    assert error.value == "sketch"
    for kind in GUIDE_KINDS:
        assert kind in error.allowed
    assert "regions[0].guides[0].kind" in str(error)


def test_unknown_top_level_guide_kind():
    error = jobkit.spec_error(validate, jobkit.spec(guides=[{"kind": "blur"}]), field="guides[0].kind")
    assert error.value == "blur"
    assert "palette" in error.allowed and "style" in error.allowed


def test_missing_guide_kind():
    error = jobkit.spec_error(validate, jobkit.spec(guides=[{"image": "x.png"}]), field="guides[0].kind")
    assert "missing" in error.detail


def test_unknown_generator_kind():
    error = jobkit.spec_error(validate, jobkit.spec(generator={"kind": "gan"}), field="generator.kind")
    assert error.value == "gan"
    assert all(kind in error.allowed for kind in ("pixels", "fourier", "diffusion"))


@pytest.mark.parametrize("steps", [-5, 0])
def test_steps_must_be_positive(steps):
    error = jobkit.spec_error(validate, jobkit.spec(steps=steps), field="steps")
    assert error.value == steps
    assert error.allowed == ">= 1"


def test_nan_weight_from_json_literal():
    text = json.dumps(jobkit.spec(guides=[{"kind": "palette", "colors": ["#102030"], "weight": 1.0}]))
    text = text.replace('"weight": 1.0', '"weight": NaN')
    assert "NaN" in text
    with pytest.raises(SpecErrors) as info:
        parse_spec_json(text)
    [error] = info.value.errors
    assert error.field == "guides[0].weight"
    assert "finite" in error.allowed


def test_infinite_lr():
    text = json.dumps(jobkit.spec(optimizer={"kind": "adam", "lr": 0.1})).replace("0.1", "Infinity")
    error = jobkit.spec_error(parse_spec_json, text, field="optimizer.lr")
    assert "finite" in error.allowed


def test_unknown_top_level_field():
    error = jobkit.spec_error(validate, jobkit.spec(colour="red"), field="colour")
    assert "unknown field" in error.detail
    for name in ("width", "steps", "regions", "guides"):
        assert name in error.allowed


def test_unknown_nested_field_lists_the_siblings():
    data = jobkit.spec(regions=[region(guides=[style(strength=2)])])
    error = jobkit.spec_error(validate, data, field="regions[0].guides[0].strength")
    assert error.allowed == "kind, image, weight"


def test_wrong_version():
    error = jobkit.spec_error(validate, jobkit.spec(version=2), field="version")
    assert error.value == 2
    assert error.allowed == "1"


@pytest.mark.parametrize(
    ("patch", "field", "allowed_has"),
    [
        ({"width": 8}, "width", ">= 16"),
        ({"seed": -1}, "seed", ">= 0"),
        ({"optimizer": {"kind": "rmsprop"}}, "optimizer.kind", "sgd"),
        ({"optimizer": {"kind": "adam", "schedule": "step"}}, "optimizer.schedule", "cosine"),
        ({"regions": [region(mode="erase")]}, "regions[0].mode", "embolden"),
        ({"regions": [region(feather=-1)]}, "regions[0].feather", ">= 0"),
        ({"guides": [{"kind": "palette", "colors": ["red"]}]}, "guides[0].colors[0]", "#"),
        ({"guides": [{"kind": "palette", "colors": []}]}, "guides[0].colors", "at least 1"),
        ({"guides": [style(weight=1000)]}, "guides[0].weight", "<= 100"),
        ({"losses": {"blur": 1.0}}, "losses.blur", "tv, saturation, symmetry"),
        ({"init": {"image": "blob:abc"}}, "init.image", None),
    ],
)
def test_field_errors(patch, field, allowed_has):
    error = jobkit.spec_error(validate, jobkit.spec(**patch), field=field)
    assert str(error).startswith(field + ":")
    if allowed_has is not None:
        assert allowed_has in error.allowed


def test_all_errors_reported_at_once():
    with pytest.raises(SpecErrors) as info:
        validate(jobkit.spec(width=4, seed=-2, steps=0))
    assert {e.field for e in info.value.errors} == {"width", "seed", "steps"}
    assert "(and 2 more)" in str(info.value)


def test_keep_region_takes_no_guides():
    data = jobkit.spec(regions=[region(mode="keep", guides=[style()])])
    error = jobkit.spec_error(validate, data)
    assert error.field.startswith("regions[0]")
    assert "keep" in error.detail


def test_duplicate_region_names_name_the_region():
    data = jobkit.spec(regions=[region(), region(mask="masks/other.png")])
    error = jobkit.spec_error(validate, data)
    assert error.field.startswith("regions")
    assert "unique" in error.detail and "sky" in error.detail


def test_not_an_object_and_not_json():
    assert jobkit.spec_error(validate_spec, [1, 2]).field == "(spec)"
    error = jobkit.spec_error(parse_spec_json, '{"version": 1,', "job.json")
    assert error.field == "job.json"
    assert "not valid JSON" in error.detail


def test_missing_spec_file(tmp_path):
    error = jobkit.spec_error(load_spec_file, tmp_path / "nope.json")
    assert error.field == "spec"
    assert "not found" in error.detail


# ---- errors found while preparing (files, sizes, capabilities) --------------------------


def test_valid_folder_prepares(folder):
    job = jobkit.prepare(folder, jobkit.spec(SIZE, init={"image": "init.png"}, regions=[region(guides=[style()])]))
    assert job.init is not None and tuple(job.init.shape) == (1, 3, SIZE, SIZE)
    assert [t.key for t in job.terms] == ["sky/style.0"]


def test_mask_size_mismatch(folder):
    error = jobkit.spec_error(
        jobkit.prepare, folder, jobkit.spec(SIZE, regions=[region(mask="masks/small.png")]), field="regions[0].mask"
    )
    assert "32x32" in error.detail and f"{SIZE}x{SIZE}" in error.detail
    assert error.value == "masks/small.png"


def test_init_size_mismatch(folder):
    error = jobkit.spec_error(jobkit.prepare, folder, jobkit.spec(SIZE, init={"image": "masks/small.png"}))
    assert error.field == "init.image"
    assert "32x32" in error.detail


def test_missing_file_names_the_ref(folder):
    data = jobkit.spec(SIZE, regions=[region(guides=[style("styles/nope.png")])])
    error = jobkit.spec_error(jobkit.prepare, folder, data, field="regions[0].guides[0].image")
    assert error.value == "styles/nope.png"
    assert "not found" in error.detail


def test_missing_mask(folder):
    error = jobkit.spec_error(jobkit.prepare, folder, jobkit.spec(SIZE, regions=[region(mask="masks/none.png")]))
    assert error.field == "regions[0].mask"


@pytest.mark.parametrize("name", ["truncated.png", "noise.png"])
def test_corrupt_png(folder, name):
    error = jobkit.spec_error(jobkit.prepare, folder, jobkit.spec(SIZE, init={"image": name}), field="init.image")
    assert name in error.detail
    assert "0x" not in str(error) and "BytesIO" not in str(error)  # no Python object reprs


def test_corrupt_mask(folder):
    data = jobkit.spec(SIZE, regions=[region(mask="truncated.png")])
    jobkit.spec_error(jobkit.prepare, folder, data, field="regions[0].mask")


def test_unknown_preset(folder):
    error = jobkit.spec_error(jobkit.prepare, folder, jobkit.spec(SIZE, preset="pastel"), field="preset")
    assert error.value == "pastel"
    for name in ("watercolour", "ink", "storybook"):
        assert name in error.allowed


@pytest.mark.parametrize("kind", ["text", "image"])
def test_clip_guides_refused(folder, kind):
    guide = {"kind": "text", "prompt": "neon jungle"} if kind == "text" else {"kind": "image", "image": "init.png"}
    data = jobkit.spec(SIZE, regions=[region(guides=[style(), guide])])
    error = jobkit.spec_error(jobkit.prepare, folder, data, field="regions[0].guides[1].kind")
    assert "CLIP" in error.detail
    assert error.value == kind
    assert "style" in error.allowed and kind not in error.allowed.split(", ")


def test_top_level_text_guide_refused(folder):
    data = jobkit.spec(SIZE, guides=[{"kind": "text", "prompt": "storm"}])
    jobkit.spec_error(jobkit.prepare, folder, data, field="guides[0].kind")


@pytest.mark.parametrize("mode", ["keep", "embolden"])
def test_keep_and_embolden_need_init(folder, mode):
    error = jobkit.spec_error(jobkit.prepare, folder, jobkit.spec(SIZE, regions=[region(mode=mode)]))
    assert error.field == "regions[0].mode"
    assert "init" in error.detail


@pytest.mark.parametrize("mask", ["masks/empty.png", "masks/clear.png"])
def test_empty_mask(folder, mask):
    data = jobkit.spec(SIZE, init={"image": "init.png"}, regions=[region(mask=mask)])
    error = jobkit.spec_error(jobkit.prepare, folder, data, field="regions[0].mask")
    assert "empty" in error.detail


def test_blob_ref_refused_from_a_folder(folder):
    data = jobkit.spec(SIZE, init={"image": "blob:" + "ab" * 32})
    error = jobkit.spec_error(jobkit.prepare, folder, data, field="init.image")
    assert "server" in error.detail


def test_error_types_are_spec_errors(folder):
    """Both stages raise the engine's own error types, never a bare exception."""
    for call, data in [
        (validate, jobkit.spec(steps=-1)),
        (lambda d: jobkit.prepare(folder, d), jobkit.spec(SIZE, init={"image": "noise.png"})),
    ]:
        with pytest.raises((SpecError, SpecErrors)):
            call(data)
