"""Specs written before guides moved into a table (per-region losses, the runner seam) give the same result bytes:
the demo job and a job per guide kind, mode and generator (tests/golden_jobs.py), against the PNGs the engine made
at commit 2d7b013 (tests/data/golden/).

Bytes are only promised for the same torch version, CPU kernels and thread count (README: Determinism); on another
platform the pixels must still agree within 2/255."""

from __future__ import annotations

import json
from pathlib import Path

import golden_jobs
import jobkit
import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "data" / "golden"


@pytest.mark.slow
def test_old_specs_give_the_same_bytes(tmp_path):
    results = golden_jobs.run_all(tmp_path)
    assert set(results) == {p.stem for p in GOLDEN.glob("*.png")}
    same_platform = golden_jobs.fingerprint() == json.loads((GOLDEN / "fingerprint.json").read_text())
    for name, path in results.items():
        before = GOLDEN / f"{name}.png"
        if same_platform:
            assert path.read_bytes() == before.read_bytes(), name
        else:
            diff = np.abs(jobkit.read_rgb(path).astype(int) - jobkit.read_rgb(before).astype(int)).max()
            assert diff <= 2, (name, diff)
