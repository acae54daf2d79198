"""The add-on's table of guide kinds (addon/guide_kinds.py) and the spec JSON it builds, without Blender.

Per-region losses (Smoothness, Saturation, Symmetry) and Palette, in a region's guides, in the guides for all
regions and in a storyboard shot's guides, must build the JSON the engine's spec accepts; the table must follow the
contract, so that a new contract row shows up in the add-on with nothing else to add.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from regia.addon import guide_kinds
from regia.addon.error_words import in_artist_words
from regia.addon.spec_builder import Blobs, GuideInput, InputError, JobInput, RegionInput, build_job
from regia.addon.storyboard import ShotInput, StyleInput, shot_entry, storyboard_head
from regia.regia_contract import kinds as contract
from regia.regia_contract.storyboard import shot_spec

from engine.spec import validate_spec

H, W = 32, 40
LOSS_GUIDES = [
    (GuideInput("TV", 0.7), {"kind": "tv", "weight": 0.7}),
    (GuideInput("SATURATION", -0.5), {"kind": "saturation", "weight": -0.5}),
    (GuideInput("SYMMETRY", 2.0, axis="horizontal"), {"kind": "symmetry", "axis": "horizontal", "weight": 2.0}),
    (GuideInput("SYMMETRY", 1.0), {"kind": "symmetry", "axis": "vertical", "weight": 1.0}),
    (GuideInput("PALETTE", -0.25, colors="#112233 AABBCC"),
     {"kind": "palette", "colors": ["#112233", "#aabbcc"], "weight": -0.25}),
]  # fmt: skip


def _job(region_guides: list[GuideInput], guides: list[GuideInput]) -> JobInput:
    mask = np.zeros((H, W), dtype=np.float32)
    mask[:, : W // 2] = 1.0
    target = np.ones((H, W, 4), dtype=np.float32)
    return JobInput("t", target, regions=[RegionInput("Sky", mask, guides=region_guides)], guides=guides, steps=3)


@pytest.mark.parametrize(("guide", "expected"), LOSS_GUIDES, ids=lambda v: getattr(v, "kind", ""))
def test_each_loss_guide_builds_its_json_in_a_region_and_for_all_regions(guide: GuideInput, expected: dict) -> None:
    spec = build_job(_job([guide], [guide])).spec
    assert spec["regions"][0]["guides"] == [expected]
    assert spec["guides"] == [expected]
    validated = validate_spec(json.loads(json.dumps(spec)))
    assert validated.regions[0].guides[0].kind == expected["kind"]
    if expected["kind"] == "symmetry":
        assert validated.guides[0].axis == expected["axis"]


def test_the_settings_losses_stay_the_whole_canvas_shorthand() -> None:
    job = _job([GuideInput("SATURATION", 1.0)], [])
    job.tv, job.saturation, job.symmetry = 0.1, -0.2, 0.3
    spec = build_job(job).spec
    assert spec["losses"] == {"tv": 0.1, "saturation": -0.2, "symmetry": 0.3}
    validate_spec(spec)


def test_a_symmetry_axis_the_contract_does_not_know_is_an_error_naming_the_guide() -> None:
    with pytest.raises(InputError) as error:
        build_job(_job([GuideInput("SYMMETRY", axis="diagonal")], []))
    text = str(error.value)
    assert "region 'Sky' guides[0] (symmetry) axis: unknown choice (got 'diagonal')" in text
    assert "allowed: vertical, horizontal" in text


def test_a_storyboard_shot_with_a_saturation_guide_expands_to_a_spec_the_engine_accepts() -> None:
    blobs = Blobs()
    head = storyboard_head(StyleInput(name="Board", width=W, height=H, steps=4, palette="#223344"), blobs)
    guides = [GuideInput("SATURATION", -0.8), GuideInput("SYMMETRY", 0.5, axis="vertical"), GuideInput("TV", 0.2)]
    shot = shot_entry(ShotInput("A", 1, 24, description="a door", guides=guides), (W, H), blobs)
    spec = shot_spec({**head, "shots": [shot]}, 0)
    assert spec["guides"][-3:] == [
        {"kind": "saturation", "weight": -0.8},
        {"kind": "symmetry", "axis": "vertical", "weight": 0.5},
        {"kind": "tv", "weight": 0.2},
    ]
    validated = validate_spec(spec)
    assert [g.kind for g in validated.guides] == ["palette", "saturation", "symmetry", "tv"]


# ---- the table -------------------------------------------------------------------------------------------------


def test_every_contract_kind_is_in_the_table_and_negative_text_stays() -> None:
    assert {k.spec_kind for k in guide_kinds.KINDS.values()} == set(contract.GUIDE_KINDS)
    table = guide_kinds.KINDS
    for identifier, number in guide_kinds.STORED_NUMBERS.items():  # what .blend files hold must not move
        assert table[identifier].number == number
    assert {"TV", "SATURATION", "SYMMETRY"} <= set(table)
    assert len({k.number for k in table.values()}) == len(table)
    negative = table["NEGATIVE_TEXT"]
    assert negative.spec_kind == "text" and negative.weight(0.5) == negative.weight(-0.5) == -0.5
    assert table["TEXT"].weight(-0.5) == -0.5  # a text guide with a negative weight is negative text too


def test_labels_icons_tooltips_and_fields_come_from_the_contract() -> None:
    table = guide_kinds.KINDS
    assert [table[k].label for k in ("TV", "SATURATION", "SYMMETRY", "NEGATIVE_TEXT")] == [
        "Smoothness", "Saturation", "Symmetry", "Negative Text"
    ]  # fmt: skip
    assert all(k.label == k.label.title() or k.label.istitle() for k in table.values())
    assert [table[k].icon for k in ("TV", "SATURATION", "SYMMETRY", "PALETTE")] == [
        "MOD_SMOOTH", "RESTRICT_COLOR_ON", "MOD_MIRROR", "COLOR"
    ]  # fmt: skip
    assert all(k.tooltip for k in table.values())
    assert "negative adds grain" in table["TV"].tooltip and "CLIP" in table["INSPIRATION"].tooltip
    fields = {k: table[k].fields for k in ("TEXT", "STYLE", "SCRIBBLE", "PALETTE", "TV", "SATURATION", "SYMMETRY")}
    assert fields == {
        "TEXT": ("text",), "STYLE": ("image",), "SCRIBBLE": ("image",), "PALETTE": ("colors",), "TV": (),
        "SATURATION": (), "SYMMETRY": ("axis",),
    }  # fmt: skip
    assert [k.identifier for k in table.values() if k.image == "canvas"] == ["SCRIBBLE", "OUTLINE"]
    assert table["SCRIBBLE"].paper[3] == 0.0 and table["OUTLINE"].paper == (1.0, 1.0, 1.0, 1.0)
    assert [item[0] for item in guide_kinds.axis_items()] == list(contract.SYMMETRY_AXES)
    assert all(item[2] for item in guide_kinds.axis_items())


def test_a_new_contract_row_appears_in_the_add_on_with_nothing_added(monkeypatch: pytest.MonkeyPatch) -> None:
    row = contract.GuideKind("grain", "Film Grain", "Adds film grain", frozenset({contract.AXIS}))
    monkeypatch.setitem(guide_kinds.GUIDE_KINDS, "grain", row)
    table = guide_kinds._table()
    new = table["GRAIN"]
    assert (new.label, new.icon, new.tooltip, new.fields) == ("Film Grain", "DOT", "Adds film grain", ("axis",))
    assert new.number == guide_kinds._table()["GRAIN"].number, "the stored number is the same every time"


def test_list_rows_show_the_first_field() -> None:
    table = guide_kinds.KINDS
    values = {"text": "a sky", "image": "", "colors": "#fff", "axis": "vertical"}
    shown = {k: guide_kinds.display_value(table[k], values) for k in ("TEXT", "STYLE", "PALETTE", "TV", "SYMMETRY")}
    assert shown == {"TEXT": "a sky", "STYLE": "(no image)", "PALETTE": "#fff", "TV": "", "SYMMETRY": "vertical"}


def test_engine_errors_name_a_loss_guide_by_its_label() -> None:
    spec = {"regions": [{"name": "Sky", "guides": [{"kind": "tv"}, {"kind": "symmetry"}]}]}
    text = in_artist_words("regions[0].guides[1].axis: not an axis", spec)
    assert text == "Region 'Sky', Symmetry guide 2: not an axis"
    assert in_artist_words("regions[0].guides[0].weight: too big", spec).startswith("Region 'Sky', Smoothness guide 1")
