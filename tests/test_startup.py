"""What an engine process does not spend its start on (bench/startup.py measures it): scipy for a job that does not
feather, transformers and timm for open_clip, random weights for a model whose checkpoint replaces them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jobkit
import pytest
import torch
from safetensors.torch import save_file

from engine import models
from engine.models import clip as clip_models
from engine.models import load_clip

CPU = torch.device("cpu")


def child(script: str) -> list[str]:
    """Run `script` in a fresh engine process; its stdout lines."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=jobkit.REPO,
        env={**os.environ, **jobkit.SUBPROCESS_ENV},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


@pytest.mark.slow
def test_a_job_without_feathering_never_imports_scipy(tmp_path):
    jobkit.save(tmp_path / "init.png", jobkit.astronaut(32))
    jobkit.save(tmp_path / "brick.png", jobkit.brick_texture(32))
    spec = {"version": 1, "width": 32, "height": 32, "steps": 2, "init": {"image": "init.png"},
            "guides": [{"kind": "style", "image": "brick.png"}]}  # fmt: skip
    (tmp_path / "job.json").write_text(json.dumps(spec))
    lines = child(
        f"""
        import sys
        from engine.cli import main
        code = main(["run", {str(tmp_path / "job.json")!r}, "--out", {str(tmp_path / "out")!r}, "--quiet"])
        print(code, "scipy" in sys.modules)
        """
    )
    assert lines[-1] == "0 False"


@pytest.mark.slow
def test_open_clip_loads_without_transformers_or_timm_and_they_still_import_after():
    lines = child(
        """
        import sys, torch
        from engine.models import load_clip
        bundle = load_clip("regia-tiny", "random", torch.device("cpu"))
        assert bundle.encode_texts(["a red barn"]).shape == (1, 64)
        print("transformers" in sys.modules, "timm" in sys.modules)
        from engine.diffusion import loading  # diffusers and transformers import for real afterwards
        import transformers
        print(transformers.CLIPTextModel.__name__, sys.modules["transformers"] is not None)
        """
    )
    assert lines == ["False False", "CLIPTextModel True"]


@pytest.mark.slow
def test_a_model_with_a_timm_tower_builds_though_timm_was_hidden(tmp_path):
    config = {
        "embed_dim": 32,
        "vision_cfg": {"timm_model_name": "resnet18", "timm_model_pretrained": False, "timm_pool": "avg",
                       "timm_proj": "linear", "image_size": 64},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }  # fmt: skip
    (tmp_path / "regia-timm-test.json").write_text(json.dumps(config))
    lines = child(
        f"""
        import sys, torch
        from engine.models import load_clip
        from engine.models.library import open_clip
        print("timm" in sys.modules)
        open_clip().add_model_config({str(tmp_path)!r})
        bundle = load_clip("regia-timm-test", "random", torch.device("cpu"))
        with torch.no_grad():
            print(tuple(bundle.encode_images(torch.rand(2, 3, 64, 64)).shape), type(bundle.model.visual).__name__)
        """
    )
    assert lines == ["False", "(2, 32) TimmModel"]


class InitCalls:
    """Counts calls of torch.nn.init's functions (which draw a new module's random weights)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.count = 0
        init = torch.nn.init
        for name in [n for n in vars(init) if n.endswith("_") and not n.startswith("_")]:
            monkeypatch.setattr(init, name, self._counting(getattr(init, name)))
        self.functions = {name: getattr(init, name) for name in vars(init)}

    def _counting(self, function):
        def counted(*args, **kwargs):
            self.count += 1
            return function(*args, **kwargs)

        return counted


def test_a_model_whose_checkpoint_replaces_its_weights_draws_none(tmp_path, monkeypatch):
    models.clear_loaded()
    trained = {k: v + 0.05 for k, v in load_clip(models.TINY_MODEL, "random", CPU).model.state_dict().items()}
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in trained.items()}, str(path))
    calls = InitCalls(monkeypatch)

    loaded = load_clip(models.TINY_MODEL, str(path), CPU)
    assert calls.count == 0
    assert all(torch.equal(v, trained[k]) for k, v in loaded.model.state_dict().items())
    # The text tower's causal mask is not in the checkpoint: it is computed, not left empty.
    mask = loaded.model.attn_mask
    assert torch.equal(mask, torch.full_like(mask, float("-inf")).triu(1))
    assert {name: getattr(torch.nn.init, name) for name in vars(torch.nn.init)} == calls.functions  # put back

    models.clear_loaded()
    load_clip(models.TINY_MODEL, "random", CPU)  # random weights are drawn, as before
    assert calls.count > 0
    models.clear_loaded()


def test_a_failed_load_puts_the_init_functions_back(tmp_path, monkeypatch):
    path = tmp_path / "wrong.safetensors"
    save_file({"not.a.key": torch.zeros(2)}, str(path))
    calls = InitCalls(monkeypatch)
    with pytest.raises(Exception, match="not an open_clip checkpoint"):
        clip_models._model_for(models.TINY_MODEL, str(path), CPU)
    assert {name: getattr(torch.nn.init, name) for name in vars(torch.nn.init)} == calls.functions
