"""CLIP model loading (engine/models/): the tiny random model, checkpoints, the cache, offline, and the clear
missing-weights error through the API, the command line and the server. No model hub is reachable here, so
everything real runs on `regia-tiny` and a hub cache laid out by hand."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import jobkit
import open_clip
import pytest
import serverkit
import torch
from huggingface_hub import constants as hf_constants
from open_clip import pretrained as oc_pretrained
from safetensors.torch import save_file

from engine import models
from engine.errors import SpecError, SpecErrors
from engine.job import check_capabilities, clip_guides_used
from engine.models import ClipBundle, check_clip_available, fetch_clip, load_clip
from engine.models import clip as clip_models
from engine.process import OFFLINE_VARS
from engine.spec import validate_spec

CPU = torch.device("cpu")
TINY = models.TINY_MODEL
B32, B32_TAG = "ViT-B-32", "laion2b_s34b_b79k"
B32_FOLDER = "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
FAKE_TAG, FAKE_REPO, FAKE_REV = "regiatest", "regia/tiny-test", "0123456789abcdef0123456789abcdef01234567"
FAKE_MEAN, FAKE_STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def model_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty model cache of its own, online unless it says otherwise."""
    cache = tmp_path / "model-cache"
    cache.mkdir()
    monkeypatch.setenv("REGIA_MODEL_CACHE", str(cache))
    for name in OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.fixture(scope="module")
def tiny() -> ClipBundle:
    return load_clip(TINY, models.RANDOM, CPU)


@pytest.fixture(scope="module")
def trained_state(tiny) -> dict[str, torch.Tensor]:
    """The tiny model's weights moved off their random init, so a load that silently kept random weights shows."""
    rng = torch.Generator().manual_seed(7)
    return {k: v + 0.05 * torch.randn(v.shape, generator=rng) for k, v in tiny.model.state_dict().items()}


@pytest.fixture(scope="module")
def expected(tiny, trained_state):
    """What a model holding trained_state answers, computed without engine/models/'s loading."""
    model = copy.deepcopy(tiny.model)
    model.load_state_dict(trained_state)
    bundle = ClipBundle(TINY, "expected", model, CPU, tiny.image_size, tiny.mean, tiny.std, tiny.tokenizer)
    pixels = torch.rand(2, 3, tiny.image_size, tiny.image_size, generator=torch.Generator().manual_seed(1))
    prompt = f"a red barn {uuid.uuid4()}"
    with torch.no_grad():
        return pixels, bundle.encode_images(pixels), prompt, bundle.encode_texts([prompt])


def same_answers(bundle: ClipBundle, expected) -> bool:
    pixels, images, prompt, texts = expected
    with torch.no_grad():
        same_images = torch.allclose(bundle.encode_images(pixels), images, atol=1e-6)
    return same_images and torch.allclose(bundle.encode_texts([prompt]), texts, atol=1e-6)


def register_fake_tag(monkeypatch) -> None:
    """A pretrained tag of regia-tiny, as open_clip lists real ones (its weights on the hub)."""
    cfg = {"url": "", "hf_hub": f"{FAKE_REPO}/", "mean": FAKE_MEAN, "std": FAKE_STD}
    monkeypatch.setitem(oc_pretrained._PRETRAINED, TINY, {FAKE_TAG: cfg})


def cache_fake_tag(cache: Path, state: dict[str, torch.Tensor]) -> Path:
    """The fake tag's weights laid out in the hub cache the way a real download leaves them."""
    repo = cache / f"models--{FAKE_REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(FAKE_REV)
    snapshot = repo / "snapshots" / FAKE_REV
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "open_clip_model.safetensors"))
    return snapshot / "open_clip_model.safetensors"


def run_engine(*args, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        cwd=jobkit.REPO,
        env={**os.environ, **jobkit.SUBPROCESS_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_endpoint() -> str:
    return f"http://127.0.0.1:{serverkit.free_port()}"  # nothing listens: connections are refused at once


def assert_missing_b32(error: SpecError, cache: Path) -> None:
    """The missing-weights error names the model, the tag, where it looked and how to get the weights."""
    assert error.field == "models.clip.weights", error.one_line()
    text = error.one_line()
    for part in (B32, B32_TAG, str(cache), B32_FOLDER, f"fetch-models {B32}:{B32_TAG}", "set models.clip.weights"):
        assert part in text, (part, text)


# ---- loading ------------------------------------------------------------------------------------


def test_random_tiny_model_is_built_once_frozen_and_repeatable():
    models.clear_loaded()
    before = models.build_count()
    first = load_clip(TINY, "random", CPU)
    assert load_clip(TINY, "random", CPU) is first and models.build_count() == before + 1
    assert models.loaded_models() == [f"{TINY}:random"]
    assert not first.model.training and not any(p.requires_grad for p in first.model.parameters())
    assert first.image_size == 64 and first.embed_dim == 64 and first.dtype == torch.float32
    assert first.mean.shape == first.std.shape == (1, 3, 1, 1)
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    models.clear_loaded()
    again = load_clip(TINY, "random", CPU)
    assert again is not first and models.build_count() == before + 2
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in weights.items())  # a fixed seed


def test_encode_images_is_unit_norm_differentiable_and_counted(tiny):
    pixels = torch.rand(3, 3, 64, 64, requires_grad=True)
    calls = tiny.image_forwards
    features = tiny.encode_images(pixels)
    assert features.shape == (3, 64) and tiny.image_forwards == calls + 1
    assert torch.allclose(features.norm(dim=-1), torch.ones(3), atol=1e-5)
    (features[:, :8].sum() - features[:, 8:].sum()).backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.model.parameters())
    with pytest.raises(ValueError, match="64, 64"):
        tiny.encode_images(torch.rand(1, 3, 32, 32))


def test_encode_images_normalises_with_the_model_mean_and_std(tiny):
    """Grey at the mean is the zero input: the same features as feeding the tower zeros directly."""
    grey = tiny.mean.expand(1, 3, 64, 64).clone()
    with torch.no_grad():
        direct = torch.nn.functional.normalize(tiny.model.encode_image(torch.zeros(1, 3, 64, 64)), dim=-1)
        assert torch.allclose(tiny.encode_images(grey), direct, atol=1e-6)


def test_encode_texts_runs_each_prompt_through_the_model_once(tiny, monkeypatch):
    tokenized: list[list[str]] = []
    encoded: list[int] = []
    tokenizer, encode_text = tiny.tokenizer, tiny.model.encode_text
    monkeypatch.setattr(tiny, "tokenizer", lambda texts: tokenized.append(list(texts)) or tokenizer(texts))
    monkeypatch.setattr(tiny.model, "encode_text", lambda tokens: encoded.append(len(tokens)) or encode_text(tokens))
    a, b, c = (f"{word} {uuid.uuid4()}" for word in ("a neon jungle", "a misty harbour", "a red barn"))
    counted = tiny.texts_encoded

    first = tiny.encode_texts([a, b, a])
    assert first.shape == (3, 64) and not first.requires_grad
    assert torch.allclose(first.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.equal(first[0], first[2]) and not torch.allclose(first[0], first[1])
    assert tokenized == [[a, b]] and encoded == [2]

    second = tiny.encode_texts([b, c, a])
    assert tokenized == [[a, b], [c]] and encoded == [2, 1]
    assert torch.equal(second[0], first[1]) and torch.equal(second[2], first[0])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # cached values do not depend on the caller's autocast
        assert torch.equal(tiny.encode_texts([c]), second[1:2])
    assert tokenized == [[a, b], [c]] and tiny.texts_encoded == counted + 3
    assert tiny.encode_texts([]).shape == (0, 64)


@pytest.mark.slow
def test_the_tokenizer_and_a_model_work_with_the_network_blocked():
    script = textwrap.dedent(
        """
        import socket
        def refuse(self, address, *args):
            raise OSError(f"network used: {address}")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        import open_clip, torch
        from engine.models import load_clip
        tokens = open_clip.get_tokenizer("ViT-B-32")(["a neon jungle"])
        assert tokens.shape == (1, 77) and int(tokens[0, 0]) == 49406, tokens
        bundle = load_clip("regia-tiny", "random", torch.device("cpu"))
        assert bundle.encode_texts(["a neon jungle"]).shape == (1, 64)
        print("ok")
        """
    )
    env = {**os.environ, **jobkit.SUBPROCESS_ENV, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": closed_endpoint()}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=jobkit.REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ---- weights from files and from the cache --------------------------------------------------------


@pytest.mark.parametrize("form", ["plain.pt", "wrapped.bin", "file.safetensors"])
def test_a_checkpoint_file_loads_with_the_same_answers(tmp_path, trained_state, expected, form):
    path = tmp_path / form
    if form == "plain.pt":
        torch.save(trained_state, path)
    elif form == "wrapped.bin":  # as training scripts save it: under "state_dict", with DDP's "module." prefixes
        torch.save({"state_dict": {f"module.{k}": v for k, v in trained_state.items()}, "epoch": 3}, path)
    else:
        save_file({k: v.contiguous() for k, v in trained_state.items()}, str(path))
    assert check_clip_available(TINY, str(path)) is None
    bundle = load_clip(TINY, str(path), CPU)
    assert bundle.weights == str(path) and same_answers(bundle, expected)
    assert not same_answers(load_clip(TINY, "random", CPU), expected)


def test_a_cached_tag_loads_offline_without_the_network(model_cache, monkeypatch, trained_state, expected, no_network):
    monkeypatch.setenv("REGIA_OFFLINE", "1")
    register_fake_tag(monkeypatch)
    missing = check_clip_available(TINY, FAKE_TAG)
    assert missing.field == "models.clip.weights" and "offline" in missing.detail  # not in the cache yet
    with pytest.raises(SpecError, match="offline"):
        fetch_clip(TINY, FAKE_TAG)
    path = cache_fake_tag(model_cache, trained_state)
    assert check_clip_available(TINY, FAKE_TAG) is None
    assert fetch_clip(TINY, FAKE_TAG) == path
    bundle = load_clip(TINY, FAKE_TAG, CPU)
    assert torch.allclose(bundle.mean.flatten(), torch.tensor(FAKE_MEAN))  # the tag's own preprocessing
    assert torch.allclose(bundle.std.flatten(), torch.tensor(FAKE_STD))
    loaded = bundle.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trained_state.items())
    _, _, prompt, texts = expected  # the text tower answers as the expected model (images differ: their mean/std)
    assert torch.allclose(bundle.encode_texts([prompt]), texts, atol=1e-6)
    assert no_network == []


def test_a_corrupt_or_foreign_checkpoint_is_a_clear_error(tmp_path, tiny):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 64)
    foreign = tmp_path / "foreign.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, foreign)
    for path in (garbage, foreign):
        with pytest.raises(SpecError) as info:
            load_clip(TINY, str(path), CPU)
        assert info.value.field == "models.clip.weights"
        assert str(path) in info.value.detail and f"not an open_clip checkpoint of {TINY}" in info.value.detail


# ---- missing weights --------------------------------------------------------------------------------


def test_a_tag_not_in_the_cache_offline_says_where_it_looked_and_how_to_get_it(model_cache, monkeypatch, no_network):
    monkeypatch.setenv("REGIA_OFFLINE", "1")
    checked = check_clip_available(B32, B32_TAG)
    assert_missing_b32(checked, model_cache)
    assert "offline" in checked.detail
    started = time.monotonic()
    with pytest.raises(SpecError) as info:
        load_clip(B32, B32_TAG, CPU)
    assert_missing_b32(info.value, model_cache)
    assert time.monotonic() - started < 2 and no_network == []


def test_online_an_uncached_tag_is_left_to_the_download_at_load(model_cache, monkeypatch):
    """Online, the cheap check lets an uncached tag through: open_clip fetches it when the job loads the model,
    before any step. Offline it is missing at once (see the test above)."""
    monkeypatch.delenv("REGIA_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert check_clip_available(B32, B32_TAG) is None
    # ...but it is not on this machine now, which is what /health reports.
    here = check_clip_available(B32, B32_TAG, allow_download=False)
    assert here is not None and "not in the cache yet" in here.detail


def test_a_download_from_an_unreachable_hub_fails_fast_with_the_same_error(model_cache, monkeypatch):
    endpoint = closed_endpoint()
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    started = time.monotonic()
    with pytest.raises(SpecError) as info:
        load_clip(B32, B32_TAG, CPU)
    assert time.monotonic() - started < 10
    assert_missing_b32(info.value, model_cache)
    assert endpoint in info.value.detail and "cannot be reached" in info.value.detail


@pytest.mark.slow
def test_fetch_models_against_an_unreachable_hub_exits_2_fast(model_cache):
    endpoint = closed_endpoint()
    started = time.monotonic()
    proc = run_engine("fetch-models", f"{B32}:{B32_TAG}", env={"HF_ENDPOINT": endpoint})
    assert time.monotonic() - started < 20  # the interpreter start included; the hub client alone retries ~25 s
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {B32}:{B32_TAG}: "), lines
    for part in (endpoint, "cannot be reached", str(model_cache), B32_FOLDER):
        assert part in lines[0], (part, lines[0])
    assert not any(model_cache.iterdir())


def test_a_missing_file_names_the_path_it_looked_at(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for weights, path in (
        (str(tmp_path / "nope.pt"), tmp_path / "nope.pt"),
        ("./w/b32.safetensors", tmp_path / "w" / "b32.safetensors"),
    ):
        error = check_clip_available(B32, weights)
        assert error.field == "models.clip.weights" and str(path) in error.detail and B32 in error.detail
        assert "set models.clip.weights to its path" in error.detail
        with pytest.raises(SpecError, match="there is no file"):
            load_clip(B32, weights, CPU)


def test_an_unknown_model_name_or_tag_lists_what_is_known():
    error = check_clip_available("ViT-B-33", "laion2b_s34b_b79k")
    assert error.field == "models.clip.name" and error.value == "ViT-B-33"
    assert error.allowed.startswith("ViT-B-32") and "RN50" in error.allowed and TINY in error.allowed
    with pytest.raises(SpecError) as info:
        load_clip("ViT-B-33", "random", CPU)
    assert info.value.field == "models.clip.name"
    hf_tower = check_clip_available("ViT-B-16-SigLIP", "random")
    assert hf_tower.field == "models.clip.name" and "Hugging Face" in hf_tower.detail
    tag = check_clip_available(B32, "laion2b")
    assert tag.field == "models.clip.weights" and B32_TAG in tag.allowed and "random" in tag.allowed


def test_checking_availability_never_builds_loads_or_downloads(tmp_path, model_cache, monkeypatch, no_network):
    def forbidden(*args, **kwargs):
        raise AssertionError("a model was built or loaded")

    for owner, name in (
        (open_clip, "create_model"),
        (open_clip, "load_checkpoint"),
        (torch, "load"),
        (clip_models, "_build"),
    ):
        monkeypatch.setattr(owner, name, forbidden)
    monkeypatch.setattr(oc_pretrained, "download_pretrained", forbidden)
    existing = tmp_path / "exists.pt"
    existing.write_bytes(b"whatever: checked to exist, not read")
    register_fake_tag(monkeypatch)
    cache_fake_tag(model_cache, {"x": torch.zeros(1)})
    assert check_clip_available(TINY, "random") is None
    assert check_clip_available(TINY, str(existing)) is None
    assert check_clip_available(TINY, FAKE_TAG) is None
    assert check_clip_available(B32, B32_TAG) is None  # online: left to the download at load
    monkeypatch.setenv("REGIA_OFFLINE", "1")
    assert check_clip_available(B32, B32_TAG) is not None
    assert check_clip_available(B32, str(tmp_path / "absent.pt")) is not None
    assert no_network == []


# ---- capability checks, the command line and the server ---------------------------------------------


def capability_errors(**fields) -> list[SpecError]:
    try:
        check_capabilities(validate_spec(jobkit.spec(48, **fields)))
    except SpecErrors as exc:
        return list(exc.errors)
    return []


TEXT = {"kind": "text", "prompt": "a neon jungle"}


def test_capabilities_ask_for_a_clip_model_and_for_weights_on_this_machine(model_cache, monkeypatch):
    monkeypatch.setenv("REGIA_OFFLINE", "1")  # online, an uncached tag is fetched at load instead
    errors = capability_errors(guides=[TEXT])
    assert [e.field for e in errors] == ["guides[0].kind"]
    assert "need a CLIP model" in errors[0].detail and "models.clip" in errors[0].detail
    missing = capability_errors(guides=[TEXT], models={"clip": {"name": B32, "weights": B32_TAG}})
    assert [e.field for e in missing] == ["models.clip.weights"]
    assert_missing_b32(missing[0], model_cache)
    unknown = capability_errors(guides=[TEXT], models={"clip": {"name": "ViT-B-33", "weights": "random"}})
    assert [e.field for e in unknown] == ["models.clip.name"]
    available = capability_errors(guides=[TEXT], models={"clip": {"name": TINY, "weights": "random"}})
    assert not [e for e in available if e.field.startswith("models.clip")]
    # models.clip without CLIP guides is fine, whether or not its weights are here.
    assert capability_errors(models={"clip": {"name": B32, "weights": B32_TAG}}) == []
    assert clip_guides_used(validate_spec(jobkit.spec(48, guides=[TEXT])))
    assert not clip_guides_used(validate_spec(jobkit.spec(48, models={"clip": {"name": TINY, "weights": "random"}})))


@pytest.mark.slow
def test_run_with_missing_weights_exits_2_before_any_step(tmp_path, model_cache):
    spec = jobkit.spec(32, 5, guides=[TEXT], models={"clip": {"name": B32, "weights": B32_TAG}}, preview_every=1)
    spec_path = jobkit.write_spec(tmp_path / "job", spec)
    out = tmp_path / "out"
    proc = run_engine("run", spec_path, "--out", out, "--quiet", "--offline", env={"HF_ENDPOINT": closed_endpoint()})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: models.clip.weights: "), lines
    for part in (B32, B32_TAG, str(model_cache), "offline", f"fetch-models {B32}:{B32_TAG}"):
        assert part in lines[0], (part, lines[0])
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_server_health_lists_configured_models_and_refuses_missing_weights(tmp_path, model_cache, trained_state):
    checkpoint = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in trained_state.items()}, str(checkpoint))
    env = {**serverkit.engine_env(), "REGIA_MODEL_CACHE": str(model_cache)}
    configured = ["--clip", f"{TINY}:random", "--clip", f"{B32}:{B32_TAG}", "--clip", f"{TINY}:{checkpoint}"]
    # No --offline: a server never downloads for a client (only fetch-models, or --allow-downloads, do).
    with serverkit.serving(tmp_path / "data", *configured, env=env) as server:
        client = server.client()
        health = client.get("/health").json()
        assert health["models"] == {
            "present": [f"{TINY}:random", f"{TINY}:{checkpoint}"],
            "missing": [f"{B32}:{B32_TAG}"],
        }
        assert health["offline"] is True and health["downloads"] is False

        spec = jobkit.spec(32, 3, guides=[TEXT], models={"clip": {"name": B32, "weights": B32_TAG}})
        error = serverkit.check_errors(client.post("/jobs", json=spec), 422, "models.clip.weights")[0]
        for part in (B32, B32_TAG, str(model_cache), f"fetch-models {B32}:{B32_TAG}"):
            assert part in error["message"], (part, error)

        elsewhere = str(tmp_path / "not-configured.pt")  # a client path is refused before the disk is looked at
        spec["models"]["clip"] = {"name": TINY, "weights": elsewhere}
        error = serverkit.check_errors(client.post("/jobs", json=spec), 422, "models.clip.weights")[0]
        assert "--clip" in error["message"] and str(checkpoint) in error["allowed"]

        spec.pop("models")
        serverkit.check_errors(client.post("/jobs", json=spec), 422, "guides[0].kind")
        assert client.get("/health").status_code == 200 and server.alive()
        assert client.get("/jobs").json()["jobs"] == []
