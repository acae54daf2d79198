"""The command line, run as a real subprocess: exit codes, output files, one-line errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jobkit
import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.spec import validate_spec

SIZE = 40


def torch_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *map(str, args)],
        cwd=jobkit.REPO,
        env={**os.environ, **jobkit.SUBPROCESS_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def engine(*args) -> subprocess.CompletedProcess:
    return finish(start(*args))


@pytest.fixture
def here(capsys, monkeypatch):
    """`python -m engine ARGS` through main() in this process: the command line's own code path (exit code, one
    line per error on stderr), without an interpreter start."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # main() sets torch's threads: keep this process's one thread

    def call(*args) -> subprocess.CompletedProcess:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return call


def assert_user_error(proc: subprocess.CompletedProcess, field: str) -> str:
    """Exit 2, one 'error: <field>: ...' line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {field}: "), lines[0]
    return lines[0]


def job_folder(root: Path, **fields) -> Path:
    """A job folder with an init, a style and a mask, and a spec using them."""
    root.mkdir(parents=True, exist_ok=True)
    jobkit.save(root / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(root / "styles" / "brick.png", jobkit.brick_texture(64))
    jobkit.save(root / "masks" / "left.png", jobkit.rect_mask(SIZE, 0, 0, SIZE, 20))
    data = jobkit.spec(
        SIZE,
        12,
        init={"image": "init.png"},
        regions=[
            {"name": "left", "mask": "masks/left.png", "guides": [{"kind": "style", "image": "styles/brick.png"}]}
        ],
        preview_every=5,
    )
    data.update(fields)
    return jobkit.write_spec(root, data)


# ---- a successful run -------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same spec run twice, and once with another seed (no init: the seed matters)."""
    root = tmp_path_factory.mktemp("cli")
    spec_path = job_folder(root / "job", preset="ink")
    procs = {name: start("run", spec_path, "--out", root / name, "--quiet") for name in ("a", "b")}
    free = job_folder(root / "free", init=None, regions=[], guides=[{"kind": "style", "image": "styles/brick.png"}])
    for name, seed in (("s1", 1), ("s2", 2)):
        data = json.loads(free.read_text())
        data["seed"] = seed
        path = jobkit.write_spec(root / "free", data, f"seed{seed}.json")
        procs[name] = start("run", path, "--out", root / name, "--quiet")
    return root, {name: finish(proc) for name, proc in procs.items()}


@pytest.mark.slow
def test_run_succeeds_and_writes_everything(runs):
    root, procs = runs
    proc = procs["a"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "result.png" in proc.stdout
    out = root / "a"
    with Image.open(out / "result.png") as image:
        assert image.size == (SIZE, SIZE) and image.mode == "RGB"
    previews = sorted(p.name for p in (out / "previews").glob("step_*.png"))
    assert previews == ["step_00001.png", "step_00005.png", "step_00010.png"]  # after the first step, then every 5
    for name in previews:
        with Image.open(out / "previews" / name) as image:
            assert image.size == (SIZE, SIZE)
    # uncovered pixels of the init survive the whole trip to disk
    result = jobkit.read_rgb(out / "result.png")
    np.testing.assert_array_equal(result[:, 28:], jobkit.astronaut(SIZE)[:, 28:])


@pytest.mark.slow
def test_losses_csv(runs):
    root, _ = runs
    with (root / "a" / "losses.csv").open() as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    assert header[:2] == ["step", "total"]
    # the region's style, the preset's palette (top-level guide) and the preset's losses
    assert set(header[2:]) == {"left/style.0", "left/palette.g0", "global/tv", "global/saturation"}
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 13))
    for row in rows[1:]:
        values = [float(v) for v in row[1:]]
        assert all(np.isfinite(values))
        assert values[0] == pytest.approx(sum(values[1:]), rel=1e-3, abs=1e-5)


@pytest.mark.slow
def test_resolved_spec_validates_and_has_the_preset_applied(runs):
    root, _ = runs
    data = json.loads((root / "a" / "spec.resolved.json").read_text())
    spec = validate_spec(data)
    assert spec.preset == "ink"
    assert spec.losses.tv == pytest.approx(0.1)
    assert spec.losses.saturation == pytest.approx(-0.3)
    [palette] = [g for g in spec.guides if g.kind == "palette"]
    assert palette.colors[0] == "#0d0d0d"
    assert palette.weight == pytest.approx(0.6)
    assert spec.steps == 12 and spec.width == SIZE
    assert spec.regions[0].mask == "masks/left.png"


@pytest.mark.slow
def test_same_spec_same_png_bytes(runs):
    root, procs = runs
    assert procs["b"].returncode == 0, procs["b"].stderr
    assert (root / "a" / "result.png").read_bytes() == (root / "b" / "result.png").read_bytes()
    assert (root / "a" / "losses.csv").read_bytes() == (root / "b" / "losses.csv").read_bytes()


@pytest.mark.slow
def test_other_seed_other_image(runs):
    root, procs = runs
    for name in ("s1", "s2"):
        assert procs[name].returncode == 0, procs[name].stderr
    a, b = jobkit.read_rgb(root / "s1" / "result.png"), jobkit.read_rgb(root / "s2" / "result.png")
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 3


# ---- user errors: exit 2, one line, no traceback ----------------------------------------


def test_bad_spec(tmp_path, here):
    spec_path = job_folder(tmp_path, steps=-4)
    proc = here("run", spec_path, "--out", tmp_path / "out", "--quiet")
    line = assert_user_error(proc, "steps")
    assert "-4" in line and ">= 1" in line
    assert not (tmp_path / "out").exists()


def test_missing_spec_file(tmp_path, here):
    proc = here("run", tmp_path / "nope.json", "--out", tmp_path / "out", "--quiet")
    line = assert_user_error(proc, "spec")
    assert "not found" in line


def test_invalid_json(tmp_path, here):
    (tmp_path / "spec.json").write_text('{"version": 1, "steps": }')
    proc = here("run", tmp_path / "spec.json", "--out", tmp_path / "out", "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not valid JSON" in proc.stderr


@pytest.mark.parametrize("keep", [200, 16], ids=["cut in its data", "cut in its header"])
def test_corrupt_png(tmp_path, keep, here):
    spec_path = job_folder(tmp_path)
    init = tmp_path / "init.png"
    init.write_bytes(init.read_bytes()[:keep])  # truncated (random bytes: see test_spec.py)
    proc = here("run", spec_path, "--out", tmp_path / "out", "--quiet")
    line = assert_user_error(proc, "init.image")
    assert "init.png" in line
    assert not (tmp_path / "out" / "result.png").exists()


def test_text_guide_refused(tmp_path, here):
    spec_path = job_folder(tmp_path, guides=[{"kind": "text", "prompt": "a neon jungle"}])
    proc = here("validate", spec_path)
    line = assert_user_error(proc, "guides[0].kind")
    assert "CLIP" in line


def test_several_errors_one_line_each(tmp_path, here):
    spec_path = job_folder(tmp_path, steps=0, width=3, colour="red")
    proc = here("run", spec_path, "--out", tmp_path / "out", "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == ["colour", "steps", "width"]
    assert all(line.startswith("error: ") for line in lines)


def test_out_must_not_overwrite_an_input(tmp_path, here):
    """An input image named result.png in the --out folder is never overwritten."""
    spec_path = job_folder(tmp_path)
    data = json.loads(spec_path.read_text())
    (tmp_path / "init.png").rename(tmp_path / "result.png")
    data["init"] = {"image": "result.png"}
    jobkit.write_spec(tmp_path, data)
    before = (tmp_path / "result.png").read_bytes()
    proc = here("run", spec_path, "--out", tmp_path, "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "result.png" in proc.stderr and proc.stderr.startswith("error: ")
    assert (tmp_path / "result.png").read_bytes() == before
    assert not (tmp_path / "spec.resolved.json").exists()
    assert not (tmp_path / "losses.csv").exists()


# ---- other commands ---------------------------------------------------------------------


def test_schema_prints_json_schema(here):
    proc = here("schema")
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert "properties" in schema
    assert {"width", "height", "steps", "regions", "guides"} <= set(schema["properties"])


def test_validate_ok(tmp_path, here):
    spec_path = job_folder(tmp_path)
    proc = here("validate", spec_path)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_presets_lists_the_bundled_presets(here):
    proc = here("presets")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert {"watercolour", "ink", "storybook", "neon"} <= set(names)


@pytest.mark.slow
def test_cli_module_does_not_import_torch():
    """cli.py says torch is imported late 'so that `schema` and errors stay fast'."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, engine.cli; print('torch' in sys.modules)"],
        cwd=jobkit.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip() == "False"


# ---- more user errors, in-process through main() (same code path, no interpreter start) ---


def test_unavailable_device_is_a_user_error(tmp_path, capsys):
    if torch_has_cuda():
        pytest.skip("this machine has CUDA")
    spec_path = job_folder(tmp_path)
    assert main(["run", str(spec_path), "--out", str(tmp_path / "out"), "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device: ") and len(err.strip().splitlines()) == 1


def test_out_that_is_a_file_is_a_user_error(tmp_path, capsys):
    spec_path = job_folder(tmp_path)
    (tmp_path / "taken").write_text("not a folder")
    assert main(["run", str(spec_path), "--out", str(tmp_path / "taken"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_out_below_a_file_is_one_error_line(tmp_path, capsys):
    spec_path = job_folder(tmp_path)
    (tmp_path / "taken").write_text("not a folder")
    assert main(["run", str(spec_path), "--out", str(tmp_path / "taken" / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_out_must_not_overwrite_an_input_preview(tmp_path):
    """Re-using a preview of the last run as the next init, with the same --out, keeps it intact."""
    spec_path = job_folder(tmp_path)
    data = json.loads(spec_path.read_text())
    preview = tmp_path / "out" / "previews" / "step_00005.png"
    jobkit.save(preview, jobkit.coffee(SIZE))
    before = preview.read_bytes()
    data["init"] = {"image": "out/previews/step_00005.png"}
    jobkit.write_spec(tmp_path, data)
    code = main(["run", str(spec_path), "--out", str(tmp_path / "out"), "--quiet"])
    assert preview.read_bytes() == before
    assert code == 2


# ---- threads, and files that are not what they seem ------------------------------------------------


@pytest.mark.slow
def test_threads_set_the_count_and_the_same_count_gives_the_same_bytes(tmp_path, here):
    spec_path = job_folder(tmp_path / "job", steps=4)
    procs = [start("run", spec_path, "--out", tmp_path / f"t{i}", "--quiet", "--threads", 2) for i in range(2)]
    for proc in procs:
        assert finish(proc).returncode == 0
    assert (tmp_path / "t0" / "result.png").read_bytes() == (tmp_path / "t1" / "result.png").read_bytes()
    assert_user_error(here("run", spec_path, "--out", tmp_path / "t3", "--threads", 0), "--threads")


def test_a_spec_with_a_key_twice_is_refused_naming_it(tmp_path, here):
    spec_path = job_folder(tmp_path / "job")
    text = spec_path.read_text()
    spec_path.write_text(text.replace('"steps": 12', '"steps": 12, "steps": 9000'))
    line = assert_user_error(here("validate", spec_path), str(spec_path))
    assert "'steps' appears twice" in line, line


@pytest.mark.slow
def test_validate_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "spec.json"
    os.mkfifo(fifo)
    proc = start("validate", fifo)
    result = finish(proc, timeout=60)  # reading a FIFO would wait for a writer for ever
    line = assert_user_error(result, "spec")
    assert "FIFO" in line, line
