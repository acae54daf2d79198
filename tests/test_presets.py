"""Style presets: every bundled preset loads, fills in defaults, and never overrides the spec."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jobkit
import numpy as np
import pytest

from engine.errors import SpecError
from engine.presets import Preset, apply_preset, known_presets, load_preset, presets_dir
from engine.spec import validate_spec

PRESET_FILES = sorted((jobkit.REPO / "presets").glob("*.toml"))
SIZE = 40


def spec_with(**fields):
    return validate_spec(jobkit.spec(SIZE, **fields))


def test_bundled_presets_are_found():
    assert presets_dir().resolve() == (jobkit.REPO / "presets").resolve()
    assert {"watercolour", "ink", "storybook", "neon"} <= set(known_presets())
    assert known_presets() == sorted(p.stem for p in PRESET_FILES)


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_each_preset_file_loads(path):
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    preset = load_preset(path.stem)
    assert isinstance(preset, Preset)
    assert preset.name == raw["name"]
    assert preset.description
    assert "{prompt}" in preset.prompt
    assert preset.palette and all(c.startswith("#") and len(c) == 7 for c in preset.palette)
    assert preset.palette_weight > 0
    for name in ("tv", "saturation", "symmetry"):
        assert getattr(preset.losses, name) == pytest.approx(raw.get("losses", {}).get(name, 0.0))


@pytest.mark.parametrize("name", [p.stem for p in PRESET_FILES])
def test_preset_defaults_apply(name):
    preset = load_preset(name)
    resolved = apply_preset(spec_with(preset=name))
    assert resolved.preset == name
    assert resolved.losses == preset.losses
    [palette] = [g for g in resolved.guides if g.kind == "palette"]
    assert palette.colors == preset.palette
    assert palette.weight == pytest.approx(preset.palette_weight)


def test_explicit_losses_win():
    ink = load_preset("ink")
    assert ink.losses.tv != 0 and ink.losses.saturation != 0
    resolved = apply_preset(spec_with(preset="ink", losses={"tv": 0.0}))
    assert resolved.losses.tv == 0.0  # set by the spec, even to zero
    assert resolved.losses.saturation == pytest.approx(ink.losses.saturation)  # not set: the preset's
    everything = apply_preset(spec_with(preset="ink", losses={"tv": 0.5, "saturation": 0.2, "symmetry": 0.1}))
    assert (everything.losses.tv, everything.losses.saturation, everything.losses.symmetry) == (0.5, 0.2, 0.1)


def test_explicit_palette_guide_wins():
    mine = {"kind": "palette", "colors": ["#123456"], "weight": 2.0}
    resolved = apply_preset(spec_with(preset="watercolour", guides=[mine]))
    palettes = [g for g in resolved.guides if g.kind == "palette"]
    assert len(palettes) == 1 and palettes[0].colors == ["#123456"] and palettes[0].weight == 2.0


def test_other_guides_are_kept_and_palette_is_added():
    style = {"kind": "style", "image": "brick.png", "weight": 0.5}
    resolved = apply_preset(spec_with(preset="storybook", guides=[style]))
    assert [g.kind for g in resolved.guides] == ["style", "palette"]


def test_no_preset_is_a_no_op():
    spec = spec_with(losses={"tv": 0.2})
    assert apply_preset(spec) is spec


def test_applying_twice_and_round_trip_change_nothing():
    once = apply_preset(spec_with(preset="neon"))
    assert apply_preset(once) == once
    reloaded = validate_spec(json.loads(once.to_json()))
    assert apply_preset(reloaded) == once


def test_preset_terms_in_a_prepared_job(tmp_path):
    jobkit.save(tmp_path / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(tmp_path / "left.png", jobkit.rect_mask(SIZE, 0, 0, SIZE, 20))
    data = jobkit.spec(SIZE, init={"image": "init.png"}, preset="ink", regions=[{"name": "sky", "mask": "left.png"}])
    job = jobkit.prepare(tmp_path, data)
    keys = [t.key for t in job.terms]
    assert keys == ["sky/palette.g0", "global/tv", "global/saturation"]
    assert job.spec.losses.tv == pytest.approx(0.1)
    weights = {t.key: t.weight for t in job.terms}
    assert weights["sky/palette.g0"] == pytest.approx(0.6)
    assert weights["global/saturation"] == pytest.approx(-0.3)


def test_ink_preset_drains_colour(tmp_path):
    """The preset acts: ink (dark neutral palette, negative saturation) takes the colour out."""
    init = jobkit.astronaut(SIZE)
    jobkit.save(tmp_path / "init.png", init)
    jobkit.save(tmp_path / "all.png", np.full((SIZE, SIZE), 255, np.uint8))
    data = jobkit.spec(SIZE, 30, init={"image": "init.png"}, preset="ink", regions=[{"name": "a", "mask": "all.png"}])
    result = jobkit.run_job(tmp_path, data)

    def chroma(image):
        x = image.astype(float) / 255
        return (x.max(2) - x.min(2)).mean()

    assert chroma(result.image) < 0.6 * chroma(init)


# ---- custom preset folders and broken presets -------------------------------------------


def write_preset(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text)


def test_preset_without_palette_weight_adds_no_guide(tmp_path):
    write_preset(tmp_path, "plain", 'name = "Plain"\npalette = ["#000000"]\n[losses]\ntv = 0.2\n')
    resolved = apply_preset(spec_with(preset="plain"), tmp_path)
    assert resolved.guides == []
    assert resolved.losses.tv == pytest.approx(0.2)


def test_presets_dir_override(tmp_path, monkeypatch):
    write_preset(tmp_path, "mine", 'name = "Mine"\n')
    monkeypatch.setenv("REGIA_PRESETS_DIR", str(tmp_path))
    assert known_presets() == ["mine"]
    error = jobkit.spec_error(apply_preset, spec_with(preset="ink"), field="preset")
    assert error.allowed == "mine"


@pytest.mark.parametrize(
    "text",
    [
        'name = "Broken"\npalette = ["#12"]\n',  # bad colour
        'name = "Broken"\ncolour = 1\n',  # unknown key
        'name = "Broken\n',  # not TOML
    ],
)
def test_broken_preset_is_a_spec_error(tmp_path, text):
    write_preset(tmp_path, "broken", text)
    with pytest.raises(SpecError) as info:
        load_preset("broken", tmp_path)
    assert info.value.field == "preset"
    assert "broken" in info.value.detail
    assert "\n" not in str(info.value)


def test_unknown_preset_lists_the_known_ones():
    error = jobkit.spec_error(apply_preset, spec_with(preset="pastel"), field="preset")
    assert error.value == "pastel"
    assert error.allowed == ", ".join(known_presets())


def test_style_prompt_wraps_the_strongest_prompt_and_applies_once():
    clip = {"clip": {"name": "regia-tiny", "weights": "random"}}
    guides = [
        {"kind": "text", "prompt": "a lighthouse", "weight": 1.0},
        {"kind": "text", "prompt": "a woodcut of a lighthouse", "weight": 0.5},
    ]
    spec = validate_spec(jobkit.spec(48, preset="watercolour", models=clip, guides=guides))
    once = apply_preset(spec)
    prompts = [g.prompt for g in once.guides if g.kind == "text"]
    assert "a watercolour painting of a lighthouse, soft washes, wet-on-wet, textured paper" in prompts
    assert not any("painting of a woodcut" in p for p in prompts)
    assert apply_preset(once).guides == once.guides  # a resolved spec run again gains nothing
    assert [
        g
        for g in apply_preset(validate_spec(jobkit.spec(48, preset="watercolour", guides=guides))).guides
        if g.kind == "text"
    ] == [g for g in spec.guides if g.kind == "text"]  # no CLIP model: no style prompt
