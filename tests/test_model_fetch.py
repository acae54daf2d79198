"""Download from the preferences, the add-on's pure side (addon/model_fetch.py): which models can be downloaded, the
download's progress from what fetch-models prints, its failure in its own words, and Cancel."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest
from regia.addon.model_fetch import FetchTask, downloadable, parse_progress


@pytest.mark.parametrize(
    ("pair", "expected"),
    [("ViT-B-32:laion2b_s34b_b79k", True), ("regia-tiny:random", False), ("ViT-B-32:/models/vit.pt", False),
     ("ViT-B-32:vit.safetensors", False), ("ViT-B-32", False), (":tag", False)],
)  # fmt: skip
def test_only_pretrained_tags_can_be_downloaded(pair, expected):
    assert downloadable(pair) is expected


def test_progress_is_read_from_the_last_bar():
    text = (
        "open_clip_model.safetensors:  10%|█         | 60.5M/605M [00:01<00:09, 55.2MB/s]\r"
        "open_clip_model.safetensors:  45%|████▌     | 272M/605M [00:05<00:06, 55.2MB/s]"
    )
    assert parse_progress(text) == (0.45, "272 of 605 MB")
    assert parse_progress("Resolving ViT-B-32") is None


def _fake_engine(tmp_path: Path, body: str) -> Path:
    """A folder whose `engine` package answers `fetch-models` as `body` says (the real one would download)."""
    package = tmp_path / "root" / "engine"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(textwrap.dedent(body))
    return package.parent


def test_a_download_reports_progress_then_done(tmp_path):
    root = _fake_engine(tmp_path, """
        import sys, time
        assert sys.argv[1:] == ["fetch-models", "ViT-B-32:laion2b_s34b_b79k"], sys.argv
        for done in (100, 300, 605):
            bar = f"model.safetensors: {done * 100 // 605}%|##| {done}M/605M [00:01<00:01, 55MB/s]"
            print(bar, end="\\r", flush=True)
            time.sleep(0.05)
        print("ViT-B-32:laion2b_s34b_b79k: /cache/model.safetensors")
    """)  # fmt: skip
    task = FetchTask(sys.executable, root, "ViT-B-32:laion2b_s34b_b79k").start()
    task.wait(30)
    assert task.state == "DONE" and task.fraction == 1.0 and "/cache/model.safetensors" in task.output


def test_a_failure_says_what_fetch_models_said(tmp_path):
    root = _fake_engine(
        tmp_path,
        """
        import sys
        print("error: ViT-B-32:nope: open_clip has no pretrained tag 'nope'", file=sys.stderr)
        sys.exit(2)
    """,
    )
    task = FetchTask(sys.executable, root, "ViT-B-32:nope").start()
    task.wait(30)
    assert task.state == "FAILED" and task.error == "ViT-B-32:nope: open_clip has no pretrained tag 'nope'"


def test_cancel_stops_the_download(tmp_path):
    root = _fake_engine(
        tmp_path,
        """
        import time
        print("model.safetensors:   1%|#| 6M/605M", flush=True)
        time.sleep(60)
    """,
    )
    task = FetchTask(sys.executable, root, "ViT-B-32:laion2b_s34b_b79k").start()
    deadline = time.monotonic() + 20
    while task.fraction == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert task.fraction == 0.01 and task.detail == "6 of 605 MB"
    task.cancel()
    task.wait(10)
    assert task.state == "CANCELLED"


def test_a_python_that_is_not_there_is_named(tmp_path):
    task = FetchTask(str(tmp_path / "no-python"), tmp_path, "ViT-B-32:laion2b_s34b_b79k").start()
    assert task.state == "FAILED" and "no-python" in task.error
