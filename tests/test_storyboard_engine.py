"""Storyboards on the engine side: the file format, one shot as a job, style statistics computed once per
process, the `storyboard` command, and that one shared style makes shots look alike."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import jobkit
import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from engine.cli import main
from engine.errors import SpecErrors
from engine.guides.style import STYLE_CACHE, StyleStatsCache
from engine.job import prepare_job
from engine.optimize import run
from engine.refs import FolderSource
from engine.spec import validate_spec
from engine.storyboard import (
    Storyboard,
    job_field,
    safe_name,
    shot_file,
    shot_seed,
    shot_spec,
    validate_storyboard,
)
from regia_contract.storyboard import derived_seed

SIZE = 40
CLIP = {"clip": {"name": "regia-tiny", "weights": "random"}}


def board(shots: int = 2, **fields: Any) -> dict[str, Any]:
    """A storyboard dict with `shots` plain shots; keyword arguments add or replace top-level fields."""
    data_ = {
        "version": 1,
        "name": "Act 1",
        "width": SIZE,
        "height": SIZE,
        "steps": 6,
        "generator": {"kind": "pixels"},
        "preview_every": 0,
        "shots": [{"name": f"shot {i}", "frame_start": 1 + 10 * i, "frame_end": 10 + 10 * i} for i in range(shots)],
    }
    data_.update(fields)
    return data_


def fields_of(data_: Any) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        validate_storyboard(data_)
    return [error.field for error in info.value.errors]


# ---- the format and shot_spec -------------------------------------------------------------


def test_fixed_rule_gives_every_shot_the_storyboard_seed():
    story = validate_storyboard(board(3, seed=7))
    assert [shot_spec(story, i).seed for i in range(3)] == [7, 7, 7]


def test_per_shot_seeds_follow_the_name_not_the_order():
    forward = board(4, seed=11, seed_rule="per_shot")
    backward = dict(forward, shots=list(reversed(forward["shots"])))
    a, b = validate_storyboard(forward), validate_storyboard(backward)
    seeds_a = {shot.name: shot_seed(a, i) for i, shot in enumerate(a.shots)}
    seeds_b = {shot.name: shot_seed(b, i) for i, shot in enumerate(b.shots)}
    assert seeds_a == seeds_b
    assert len(set(seeds_a.values())) == 4  # different names, different seeds
    # documented formula (README): the add-on or anyone else can recompute it
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"11:shot 2").digest()[:4], "big")
    assert seeds_a["shot 2"] == expected == derived_seed(11, "shot 2")
    other = validate_storyboard(dict(forward, seed=12))
    assert shot_seed(other, 0) != shot_seed(a, 0)  # the storyboard seed still matters


def test_an_explicit_shot_seed_wins_over_either_rule():
    for rule in ("fixed", "per_shot"):
        data_ = board(2, seed=5, seed_rule=rule)
        data_["shots"][1]["seed"] = 99
        story = validate_storyboard(data_)
        assert shot_spec(story, 1).seed == 99
        assert shot_spec(story, 0).seed == (5 if rule == "fixed" else derived_seed(5, "shot 0"))


def style_board(**fields: Any) -> dict[str, Any]:
    data_ = board(
        2,
        preset="storybook",
        style={
            "images": ["styles/a.png", "styles/b.png"],
            "weight": 0.8,
            "palette": ["#112233", "#ddccbb"],
            "palette_weight": 0.3,
            "prompt": "a woodcut of {prompt}",
            "negative": "blurry",
        },
        **fields,
    )
    data_["shots"][0].update(
        description="a lighthouse at dusk",
        negative="people",
        init={"image": "init/0.png"},
        guides=[{"kind": "outline", "image": "outline.png", "weight": 2.0}],
        regions=[{"name": "sky", "mask": "masks/sky.png", "guides": [{"kind": "palette", "colors": ["#000000"]}]}],
    )
    return data_


def test_shot_spec_without_clip_leaves_the_text_out():
    story = validate_storyboard(style_board())
    spec = shot_spec(story, 0)
    kinds = [(g.kind, g.weight) for g in spec.guides]
    assert kinds == [("style", 0.8), ("style", 0.8), ("palette", 0.3), ("outline", 2.0)]
    assert [g.image for g in spec.guides if g.kind == "style"] == ["styles/a.png", "styles/b.png"]
    assert spec.init is not None and spec.init.image == "init/0.png"
    assert [r.name for r in spec.regions] == ["sky"]
    assert (spec.width, spec.height, spec.steps, spec.preset, spec.preview_every) == (SIZE, SIZE, 6, "storybook", 0)
    assert validate_spec(json.loads(spec.to_json())) == spec  # a valid job, and it round-trips
    assert [g.kind for g in shot_spec(story, 1).guides] == ["style", "style", "palette"]  # shared, no own guides


def test_shot_spec_with_clip_adds_description_negative_and_style_text():
    story = validate_storyboard(style_board(models=CLIP))
    texts = [(g.prompt, g.weight) for g in shot_spec(story, 0).guides if g.kind == "text"]
    assert texts == [
        ("a lighthouse at dusk", 1.0),
        ("people", -1.0),
        ("a woodcut of a lighthouse at dusk", 0.5),
        ("blurry", -0.5),
    ]
    kinds = [g.kind for g in shot_spec(story, 0).guides]
    assert kinds == ["style", "style", "palette", "text", "text", "text", "text", "outline"]
    # a shot without description or negative: the style prompt still names a subject, nothing empty is sent
    assert [(g.prompt, g.weight) for g in shot_spec(story, 1).guides if g.kind == "text"] == [
        ("a woodcut of a scene", 0.5),
        ("blurry", -0.5),
    ]
    assert shot_spec(story, 0).models.clip is not None


def test_job_fields_map_back_to_storyboard_fields():
    story = validate_storyboard(style_board(models=CLIP))
    assert job_field(story, 0, "guides[1].image") == "style.images[1]"
    assert job_field(story, 0, "guides[2].colors") == "style.palette"
    assert job_field(story, 0, "guides[3].prompt") == "shots[0].description"
    assert job_field(story, 0, "guides[7].image") == "shots[0].guides[0].image"
    assert job_field(story, 0, "guides[8]") == "preset"
    assert job_field(story, 0, "regions[0].mask") == "shots[0].regions[0].mask"
    assert job_field(story, 0, "init.image") == "shots[0].init.image"
    assert job_field(story, 0, "width") == "width"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["shots"][1].update(name="shot 0"), "shots[1].name"),
        (lambda d: d["shots"][0].update(frame_end=0), "shots[0].frame_end"),
        (lambda d: d["shots"][1].update(colour="red"), "shots[1].colour"),
        (lambda d: d.update(shots=[]), "shots"),
        (lambda d: d.update(style={"palette": ["red"]}), "style.palette[0]"),
        (lambda d: d.update(seed_rule="random"), "seed_rule"),
        (
            lambda d: d["shots"][0].update(guides=[{"kind": "style", "image": "a.png", "weight": "1"}]),
            "shots[0].guides[0].weight",
        ),
        (lambda d: d["shots"][0].update(guides=[{"kind": "sketch"}]), "shots[0].guides[0].kind"),
        (lambda d: d["shots"][0].pop("frame_start"), "shots[0].frame_start"),
        (
            lambda d: d["shots"][0].update(regions=[{"name": "a", "mask": "m.png"}, {"name": "a", "mask": "n.png"}]),
            "shots[0].regions[1].name",
        ),
        (lambda d: d.update(width=8), "width"),
        (lambda d: d.update(version=2), "version"),
    ],
)
def test_validation_errors_name_the_field(mutate, field):
    data_ = board(3)
    mutate(data_)
    assert field in fields_of(data_)


def test_unknown_field_lists_what_is_allowed():
    data_ = board(1)
    data_["shots"][0]["colour"] = "red"
    data_["title"] = "x"
    with pytest.raises(SpecErrors) as info:
        validate_storyboard(data_)
    by_field = {e.field: e for e in info.value.errors}
    assert "description" in by_field["shots[0].colour"].allowed
    assert "seed_rule" in by_field["title"].allowed and "frame_start" not in by_field["title"].allowed
    assert fields_of([1, 2]) == ["(storyboard)"]


def test_the_format_fields_are_the_documented_ones():
    """The add-on writes this format: a renamed field breaks it (README, Storyboards)."""
    assert set(Storyboard.model_fields) == {
        "version", "name", "width", "height", "steps", "generator", "optimizer", "preset", "losses", "style",
        "models", "cutouts", "seed", "seed_rule", "preview_every", "shots",
    }  # fmt: skip
    shot = Storyboard.model_fields["shots"].annotation.__args__[0]
    assert set(shot.model_fields) == {
        "name", "frame_start", "frame_end", "description", "negative", "seed", "init", "guides", "regions"
    }  # fmt: skip


def test_safe_file_names_numbered_in_shot_order():
    assert shot_file(0, "Opening") == "shots/001_Opening.png"
    assert shot_file(11, "../../etc/passwd") == "shots/012_etc_passwd.png"
    assert safe_name("Café: la nuit / 2") == "Cafe_la_nuit_2"
    assert safe_name("灯塔") == "shot"


# ---- style statistics computed once per process ------------------------------------------


@pytest.fixture()
def style_folder(tmp_path) -> Path:
    jobkit.save(tmp_path / "brick.png", jobkit.brick_texture(64))
    jobkit.save(tmp_path / "copy" / "same.png", jobkit.brick_texture(64))  # the same pixels, another file
    jobkit.save(tmp_path / "grass.png", jobkit.grass_texture(64))
    return tmp_path


def style_job(folder: Path, image: str, size: int = SIZE, seed: int = 0):
    spec = jobkit.spec(size, 2, seed=seed, guides=[{"kind": "style", "image": image}])
    return jobkit.prepare(folder, spec)


def test_a_second_job_with_the_same_style_image_does_not_recompute(style_folder):
    STYLE_CACHE.clear()
    first = style_job(style_folder, "brick.png")
    assert STYLE_CACHE.computed == 1
    second = style_job(style_folder, "copy/same.png", seed=3)  # keyed by pixels, not by path
    assert STYLE_CACHE.computed == 1
    (a,) = [t.target for t in first.terms if t.kind == "style"]
    (b,) = [t.target for t in second.terms if t.kind == "style"]
    for (mean_a, gram_a), (mean_b, gram_b) in zip(a, b, strict=True):
        assert torch.equal(mean_a, mean_b) and torch.equal(gram_a, gram_b)
    # and they are what a fresh computation gives
    STYLE_CACHE.clear()
    fresh = next(t.target for t in style_job(style_folder, "brick.png").terms if t.kind == "style")
    for (mean_a, gram_a), (mean_f, gram_f) in zip(a, fresh, strict=True):
        assert torch.equal(mean_a, mean_f) and torch.equal(gram_a, gram_f)


def test_other_pixels_or_canvas_size_compute_again(style_folder):
    STYLE_CACHE.clear()
    style_job(style_folder, "brick.png")
    style_job(style_folder, "grass.png")
    assert STYLE_CACHE.computed == 2
    style_job(style_folder, "brick.png", size=SIZE + 8)  # the reference is scaled to the canvas's area
    assert STYLE_CACHE.computed == 3
    style_job(style_folder, "grass.png")
    assert STYLE_CACHE.computed == 3


def test_the_cache_is_bounded_least_recently_used_first_out():
    cache = StyleStatsCache(capacity=2)
    made = []

    def compute(tag: str):
        return lambda: made.append(tag) or [(torch.zeros(1), torch.zeros(1))]

    for key in ("a", "b", "a", "c", "a", "b"):
        cache.get((key,), compute(key))
    assert made == ["a", "b", "c", "b"]  # "b" was least recently used when "c" came
    assert len(cache) == 2 and cache.computed == 4


# ---- the command --------------------------------------------------------------------------


def write_board(folder: Path, data_: dict[str, Any], name: str = "board.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data_, indent=2))
    return path


@pytest.fixture()
def board_folder(tmp_path) -> Path:
    jobkit.save(tmp_path / "styles" / "brick.png", jobkit.brick_texture(48))
    jobkit.save(tmp_path / "init" / "astronaut.png", jobkit.astronaut(SIZE))
    jobkit.save(tmp_path / "init" / "coffee.png", jobkit.coffee(SIZE))
    return tmp_path


def cli_board(**fields: Any) -> dict[str, Any]:
    data_ = board(
        3,
        style={"images": ["styles/brick.png"], "palette": ["#223344", "#ddcc88"]},
        seed_rule="per_shot",
        **fields,
    )
    data_["shots"][0].update(name="Opening: the sea", init={"image": "init/astronaut.png"})
    data_["shots"][2].update(name="Café", init={"image": "init/coffee.png"}, description="a cup")
    return data_


@pytest.mark.slow
def test_cli_writes_numbered_shots_contact_sheet_and_report(board_folder, capsys):
    STYLE_CACHE.clear()
    path = write_board(board_folder, cli_board())
    out = board_folder / "out"
    assert main(["storyboard", str(path), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    files = ["shots/001_Opening_the_sea.png", "shots/002_shot_1.png", "shots/003_Cafe.png"]
    assert sorted(str(p.relative_to(out)) for p in (out / "shots").iterdir()) == files
    assert STYLE_CACHE.computed == 1  # three shots, one style image: its statistics computed once
    report = json.loads((out / "storyboard.json").read_text())
    assert [s["file"] for s in report["shots"]] == files
    assert [s["status"] for s in report["shots"]] == ["done"] * 3
    story = validate_storyboard(cli_board())
    assert [s["seed"] for s in report["shots"]] == [shot_seed(story, i) for i in range(3)]
    assert [(s["frame_start"], s["frame_end"]) for s in report["shots"]] == [(1, 10), (11, 20), (21, 30)]
    for entry in report["shots"]:
        assert entry["seconds"] > 0 and entry["losses"]["total"] > 0 and "canvas/style.g0" in entry["losses"]
    for name in files:
        assert jobkit.read_rgb(out / name).shape == (SIZE, SIZE, 3)
    sheet = jobkit.read_rgb(out / "contact_sheet.png")
    assert sheet.shape[1] > 3 * SIZE and sheet.shape[0] > SIZE  # three panels in a row, labels underneath
    # The shot as a job gives the same pixels as the storyboard run (same spec, same seed, same device).
    alone = run(prepare_job(shot_spec(story, 2), FolderSource(board_folder), torch.device("cpu")))
    assert np.array_equal(alone.image, jobkit.read_rgb(out / files[2]))


@pytest.mark.slow
def test_one_failing_shot_leaves_the_others_done(board_folder, capsys):
    data_ = cli_board()
    data_["shots"][1]["guides"] = [{"kind": "content", "image": "missing.png"}]
    path = write_board(board_folder, data_)
    out = board_folder / "out"
    assert main(["storyboard", str(path), "--out", str(out), "--quiet"]) == 1
    report = json.loads((out / "storyboard.json").read_text())
    assert [s["status"] for s in report["shots"]] == ["done", "failed", "done"]
    failed = report["shots"][1]
    assert failed["field"] == "shots[1].guides[0].image" and "file not found" in failed["error"]
    assert failed["file"] is None
    assert (out / "shots" / "001_Opening_the_sea.png").is_file() and (out / "shots" / "003_Cafe.png").is_file()
    assert not list((out / "shots").glob("002_*"))
    assert (out / "contact_sheet.png").is_file()
    err = capsys.readouterr().err
    assert "shots[1].guides[0].image" in err and "Traceback" not in err


@pytest.mark.slow
def test_only_renders_the_named_shots_and_keeps_earlier_ones(board_folder, capsys):
    path = write_board(board_folder, cli_board())
    out = board_folder / "out"
    assert main(["storyboard", str(path), "--out", str(out), "--quiet", "--only", "Café"]) == 0
    report = json.loads((out / "storyboard.json").read_text())
    assert [s["status"] for s in report["shots"]] == ["skipped", "skipped", "done"]
    assert main(["storyboard", str(path), "--out", str(out), "--quiet", "--only", "shot 1"]) == 0
    report = json.loads((out / "storyboard.json").read_text())
    assert [s["status"] for s in report["shots"]] == ["skipped", "done", "kept"]
    assert main(["storyboard", str(path), "--out", str(out), "--only", "nobody"]) == 2
    assert "error: --only: no shot has this name; got 'nobody'" in capsys.readouterr().err


def assert_exit_2(argv: list[str], capsys, fields: list[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err
    assert [line.split(":")[1].strip() for line in lines] == fields, lines
    assert all(line.startswith("error: ") for line in lines)


def test_bad_storyboard_file_exits_2_one_line_per_error(board_folder, capsys):
    data_ = cli_board()
    data_["shots"][1]["name"] = "Café"
    data_["shots"][0]["frame_end"] = -3
    path = write_board(board_folder, data_)
    out = board_folder / "out"
    assert_exit_2(["storyboard", str(path), "--out", str(out)], capsys, ["shots[0].frame_end", "shots[2].name"])
    assert not out.exists()  # nothing ran, nothing written
    (board_folder / "broken.json").write_text("{not json")
    assert main(["storyboard", str(board_folder / "broken.json"), "--out", str(out)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_shared_problems_stop_the_storyboard_before_any_shot(board_folder, capsys):
    data_ = cli_board(preset="pastel")
    data_["style"]["images"].append("styles/missing.png")
    path = write_board(board_folder, data_)
    assert_exit_2(["storyboard", str(path), "--out", str(board_folder / "o")], capsys, ["preset", "style.images[1]"])


def test_out_folder_must_not_overwrite_a_storyboard_image(board_folder, capsys):
    jobkit.save(board_folder / "shots" / "001_Opening_the_sea.png", jobkit.astronaut(SIZE))
    data_ = cli_board()
    data_["shots"][0]["init"] = {"image": "shots/001_Opening_the_sea.png"}
    path = write_board(board_folder, data_)
    assert_exit_2(["storyboard", str(path), "--out", str(board_folder)], capsys, ["--out"])


def test_validate_checks_every_shot_without_running(board_folder, capsys):
    path = write_board(board_folder, cli_board())
    assert main(["storyboard", str(path), "--validate"]) == 0
    assert "ok (3 shots)" in capsys.readouterr().out
    data_ = cli_board()
    data_["shots"][2]["init"] = {"image": "styles/brick.png"}  # 48x48 on a 40x40 canvas
    data_["shots"][1]["regions"] = [{"name": "r", "mask": "nope.png"}]
    path = write_board(board_folder, data_)
    assert_exit_2(["storyboard", str(path), "--validate"], capsys, ["shots[1].regions[0].mask", "shots[2].init.image"])
    assert not (board_folder / "out").exists()


# ---- one shared style makes shots consistent ----------------------------------------------

LOOK_SIZE = 64
LOOK_STEPS = 50
PHOTOS = {
    "astronaut": lambda: data.astronaut(),
    "coffee": lambda: data.coffee()[:, 80:480],
    "chelsea": lambda: data.chelsea()[:, 60:360],
    "rocket": lambda: data.rocket()[:, 100:527],
    "camera": lambda: np.stack([data.camera()] * 3, axis=-1),
    "tissue": lambda: data.immunohistochemistry(),
}
OTHER_LOOKS: list[dict[str, Any]] = [
    {"preset": "ink"},
    {"preset": "neon"},
    {"preset": "storybook"},
    {"preset": "watercolour"},
    {},
    {"style": {"images": ["styles/grass.png"]}},
]


class GramProbe(nn.Module):
    """An independent judge of style: NOT the engine's feature net (other seed, 5x5 strided convs, leaky ReLU,
    unconstrained filters). Gram matrices of its three layers plus the colour mean and covariance."""

    def __init__(self, seed: int = 8675309):
        super().__init__()
        rng = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList()
        channels = 3
        for width in (24, 48, 96):
            conv = nn.Conv2d(channels, width, 5, stride=2, padding=2)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=rng) * (1.0 / (channels * 25)) ** 0.5)
                conv.bias.zero_()
            self.convs.append(conv)
            channels = width
        self.requires_grad_(False)

    def describe(self, pixels: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        flat = x.flatten(2)[0]
        parts = [flat.mean(1), torch.cov(flat)]
        x = (x - 0.5) / 0.25
        for conv in self.convs:
            x = nn.functional.leaky_relu(conv(x), 0.2)
            f = x.flatten(2)[0]
            parts.append(f @ f.t() / f.shape[1])
        return parts


def style_distance(probe: GramProbe, a: np.ndarray, b: np.ndarray) -> float:
    """Sum over descriptor parts of the relative Frobenius distance."""
    total = 0.0
    for x, y in zip(probe.describe(a), probe.describe(b), strict=True):
        total += float((x - y).norm() / (0.5 * (x.norm() + y.norm())).clamp_min(1e-8))
    return total


def mean_pairwise(probe: GramProbe, images: list[np.ndarray]) -> float:
    pairs = list(itertools.combinations(images, 2))
    return sum(style_distance(probe, a, b) for a, b in pairs) / len(pairs)


def look_board(**fields: Any) -> dict[str, Any]:
    """Six shots with the same contents: each starts from its own photo and keeps its layout (content guide)."""
    shots = [
        {
            "name": name,
            "frame_start": 1 + 24 * i,
            "frame_end": 24 + 24 * i,
            "init": {"image": f"photos/{name}.png"},
            "guides": [{"kind": "content", "image": f"photos/{name}.png", "weight": 0.5}],
        }
        for i, name in enumerate(PHOTOS)
    ]
    base = {
        "version": 1,
        "width": LOOK_SIZE,
        "height": LOOK_SIZE,
        "steps": LOOK_STEPS,
        "preview_every": 0,
        "seed": 3,
        "seed_rule": "per_shot",
        "shots": shots,
    }
    return validate_storyboard({**base, **fields})


@pytest.fixture(scope="module")
def look_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("looks")
    for name, photo in PHOTOS.items():
        jobkit.save(folder / "photos" / f"{name}.png", jobkit.resized(photo(), LOOK_SIZE))
    jobkit.save(folder / "styles" / "brick.png", jobkit.brick_texture(96))
    jobkit.save(folder / "styles" / "grass.png", jobkit.grass_texture(96))
    return folder


def render(story: Storyboard, index: int, folder: Path) -> np.ndarray:
    return run(prepare_job(shot_spec(story, index), FolderSource(folder), torch.device("cpu"))).image


@pytest.mark.slow
def test_one_storyboard_style_is_more_consistent_than_six_looks(look_folder):
    shared = look_board(style={"images": ["styles/brick.png"], "palette": ["#3b1f14", "#b5562f", "#e8c4a0"]})
    together = [render(shared, i, look_folder) for i in range(len(PHOTOS))]
    apart = [render(look_board(**look), i, look_folder) for i, look in enumerate(OTHER_LOOKS)]
    probe = GramProbe()
    one_style, six_looks = mean_pairwise(probe, together), mean_pairwise(probe, apart)
    print(f"mean pairwise style distance: one storyboard style {one_style:.3f}, six looks {six_looks:.3f}")
    assert one_style < 0.75 * six_looks, (one_style, six_looks)
    # the shots still differ from each other: each keeps its own content
    assert min(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in itertools.combinations(together, 2)) > 5


def test_the_contact_sheet_writes_whole_labels_with_accented_letters():
    from engine.contact_sheet import contact_sheet

    panel = np.zeros((40, 100, 3), np.uint8)
    short = contact_sheet([("001 A  [1-24]", panel)])
    description = "Ærøskøbing harbour at dawn: the ferry leaves, gulls follow it over the grey water"
    long = contact_sheet([(f"001 Été à Ærø  [1-24]\n{description}", panel)])
    assert long.shape[0] > short.shape[0] + 3 * 14  # the description is written whole, over several lines
    accented = contact_sheet([("É", panel)])[48:, :]
    unknown = contact_sheet([("?", panel)])[48:, :]
    assert not np.array_equal(accented, unknown)  # É has a glyph of its own
