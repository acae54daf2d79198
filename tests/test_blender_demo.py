"""The README's main job (`make demo`, scripts/blender_demo.py) at a small size: the extension installed into a
private Blender home, the scene built, Generate pressed through the add-on's operators against a managed engine,
and the .blend, result and contact sheet written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bpykit
import numpy as np
import pytest
from PIL import Image

from engine.spec import validate_spec

pytestmark = [pytest.mark.bpy, pytest.mark.slow]

SCRIPT = bpykit.REPO / "scripts" / "blender_demo.py"


def test_the_main_job_runs_headless_through_blender(tmp_path: Path) -> None:
    bpykit.require_bpy()
    zip_path = bpykit.build_extension(tmp_path / "dist")
    out = tmp_path / "demo"
    env = bpykit.bpy_env(tmp_path / "unused-home", OMP_NUM_THREADS="1")  # the script sets its own HOME too
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--zip", str(zip_path), "--out", str(out), "--size", "64", "--steps", "8",
         "--device", "cpu"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (out / "regia_demo.blend").stat().st_size > 0
    assert (out / "blender-home" / "blender" / "extensions").is_dir(), "the extension went into the private home"
    with Image.open(out / "result.png") as image:
        assert image.size == (64, 64)
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.width > 3 * 64  # target | regions | result
    spec = validate_spec(json.loads((out / "spec.json").read_text()))
    assert [r.name for r in spec.regions] == ["backdrop", "suit", "helmet", "face"]
    assert [r.mode for r in spec.regions] == ["edit", "edit", "embolden", "keep"]
    assert np.asarray(Image.open(out / "result.png")).std() > 10
