"""Stable Diffusion model loading (engine/diffusion/: weights, ldm_keys, loading, tokenizers, memory): random tiny
models, a diffusers folder and one original-layout file of the same weights loading to the same components, family
and config detection from keys and shapes, the clear errors, and checks that build nothing. CPU, offline: no model hub
is reachable here, so every checkpoint is made by the test (tests/ldm_layout.py writes the original layout)."""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import shutil
import struct
from pathlib import Path
from typing import Any

import ldm_layout
import open_clip
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils as ldm
from diffusers.models.attention_processor import AttnProcessor2_0
from safetensors.torch import save, save_file
from transformers import CLIPTextModel

from engine.diffusion import RANDOM_CONFIGS, check_diffusion_available, diffusion_kind, loading, memory
from engine.diffusion import weights as found
from engine.diffusion.ldm_keys import FAMILY_VARIANTS, family_of, mismatches
from engine.diffusion.loading import DiffusionBundle, diffusion_build_count, load_diffusion
from engine.diffusion.tokenizers import BPE_FOLDER, bpe_files, clip_tokenizer
from engine.errors import SpecError

CPU = torch.device("cpu")
FIELD = "models.diffusion.weights"
FAMILY_OF = {"tiny-sd": "sd1", "tiny-sdxl": "sdxl"}


# ---- fixtures and helpers -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def model_cache(cache_root, monkeypatch) -> Path:
    """One model cache for the module (the tokenizer files are written once), offline."""
    monkeypatch.setenv("REGIA_MODEL_CACHE", str(cache_root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache_root


def trained(bundle: DiffusionBundle, seed: int = 7) -> dict[str, Any]:
    """Copies of the bundle's models moved off their random init (so a load that silently kept random weights shows),
    with diffusers' own attention (other tests install theirs on the shared bundle)."""
    rng = torch.Generator().manual_seed(seed)
    models = {"unet": bundle.unet, "vae": bundle.vae, **{f"text{i}": m for i, m in enumerate(bundle.text_encoders)}}
    out = {}
    for name, model in models.items():
        model = copy.deepcopy(model)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn(param.shape, generator=rng))
        out[name] = model
    out["unet"].set_attn_processor(AttnProcessor2_0())
    return out


def texts_of(models: dict[str, Any]) -> list[torch.nn.Module]:
    return [models[key] for key in sorted(models) if key.startswith("text")]


def answers(family: str, models: dict[str, Any], tokenizers: list[Any]) -> dict[str, torch.Tensor]:
    """Each component's output on fixed inputs."""
    rng = torch.Generator().manual_seed(3)
    latent = torch.randn(1, 4, 8, 8, generator=rng)
    unet = models["unet"]
    context = torch.randn(1, 77, unet.config.cross_attention_dim, generator=rng)
    extra = None
    if family == "sdxl":
        width = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        extra = {
            "text_embeds": torch.randn(1, width, generator=rng),
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]]),
        }
    out = {}
    with torch.no_grad():
        out["unet"] = unet(latent, torch.tensor([500]), encoder_hidden_states=context, added_cond_kwargs=extra).sample
        out["vae"] = models["vae"].decode(latent).sample
        for i, (encoder, tokenizer) in enumerate(zip(texts_of(models), tokenizers, strict=True)):
            ids = tokenizer(["a red barn!!"], padding="max_length", max_length=77, return_tensors="pt").input_ids
            out[f"ids{i}"] = ids
            out[f"text{i}"] = encoder(ids, output_hidden_states=True).hidden_states[-2]
    return out


def bundle_answers(bundle: DiffusionBundle) -> dict[str, torch.Tensor]:
    models = {"unet": bundle.unet, "vae": bundle.vae, **{f"text{i}": m for i, m in enumerate(bundle.text_encoders)}}
    return answers(bundle.family, models, bundle.tokenizers)


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


def ldm_checkpoint(family: str, models: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = ldm_layout.checkpoint(family, models["unet"], models["vae"], texts_of(models))
    return {key: value.contiguous() for key, value in state.items()}


def raises(weights: str, *parts: str) -> SpecError:
    """The check and the load both refuse the weights, naming the field and the given parts."""
    problem = check_diffusion_available(weights)
    assert problem is not None and problem.field == FIELD
    with pytest.raises(SpecError) as info:
        load_diffusion(weights, CPU)
    for error in (problem, info.value):
        assert error.field == FIELD
        for part in parts:
            assert part in error.detail, (part, error.detail)
    return info.value


@pytest.fixture(scope="module")
def tiny() -> dict[str, DiffusionBundle]:
    return {name: load_diffusion(f"random:{name}", CPU) for name in ("tiny-sd", "tiny-sdxl")}


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory) -> dict[str, Any]:
    """For each tiny config: trained weights as a diffusers folder, one .safetensors and one .ckpt, and what they
    answer, computed without engine/diffusion/'s loading."""
    root, out = tmp_path_factory.mktemp("checkpoints"), {}
    for config, bundle in tiny.items():
        family, models = FAMILY_OF[config], trained(bundle)
        state = ldm_checkpoint(family, models)
        file = root / f"{config}.safetensors"
        save_file(state, str(file))
        torch.save({"global_step": 1, "state_dict": state}, root / f"{config}.ckpt")
        folder = ldm_layout.save_diffusers_folder(
            root / f"{config}-folder",
            config,
            models["unet"],
            models["vae"],
            texts_of(models),
            bundle.tokenizers,
            bundle.scheduler_config,
        )
        out[config] = {
            "file": file,
            "ckpt": root / f"{config}.ckpt",
            "folder": folder,
            "state": state,
            "expected": answers(family, models, bundle.tokenizers),
        }
    return out


# ---- random models ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["tiny-sd", "tiny-sdxl"])
def test_a_random_tiny_model_loads_once_and_runs(config, tiny):
    bundle = tiny[config]
    assert (bundle.family, bundle.label, bundle.config) == (FAMILY_OF[config], f"random:{config}", config)
    assert (bundle.dtype, bundle.vae_scale_factor, bundle.prediction_type) == (torch.float32, 8, "epsilon")
    assert len(bundle.tokenizers) == len(bundle.text_encoders) == (2 if config == "tiny-sdxl" else 1)
    for model in (bundle.unet, bundle.vae, *bundle.text_encoders):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    builds = diffusion_build_count()
    assert load_diffusion(f"random:{config}", CPU) is bundle and diffusion_build_count() == builds
    tokens = [
        t(["a lighthouse"], padding="max_length", max_length=77, return_tensors="pt").input_ids
        for t in bundle.tokenizers
    ]
    with torch.no_grad():
        outs = [enc(ids, output_hidden_states=True) for enc, ids in zip(bundle.text_encoders, tokens, strict=True)]
        context = torch.cat([o.hidden_states[-2] if config == "tiny-sdxl" else o.last_hidden_state for o in outs], -1)
        extra = None
        if config == "tiny-sdxl":
            extra = {"text_embeds": outs[1].text_embeds, "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
        latent = torch.randn(1, 4, 64 // 8, 64 // 8)
        noise = bundle.unet(latent, torch.tensor([999]), encoder_hidden_states=context, added_cond_kwargs=extra).sample
    assert noise.shape == latent.shape and torch.isfinite(noise).all()
    assert bundle.scheduler_config["num_train_timesteps"] == 1000


def test_random_weights_are_the_same_in_every_build():
    findings = found.inspect_weights("random:tiny-sd")
    first, second = (loading._random_parts("random:tiny-sd", findings) for _ in range(2))
    for a, b in ((first.unet, second.unet), (first.text_encoders[0], second.text_encoders[0])):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


# ---- the original layout --------------------------------------------------------------------------------------------


def test_the_test_layout_round_trips_through_diffusers_converters(tiny):
    sd, xl = tiny["tiny-sd"], tiny["tiny-sdxl"]
    unet, vae = sd.unet.state_dict(), sd.vae.state_dict()
    assert_same(
        ldm.convert_ldm_unet_checkpoint(ldm_layout.unet_to_ldm(unet, sd.unet.config), dict(sd.unet.config)), unet
    )
    xl_unet = xl.unet.state_dict()
    back = ldm.convert_ldm_unet_checkpoint(ldm_layout.unet_to_ldm(xl_unet, xl.unet.config), dict(xl.unet.config))
    assert_same(back, xl_unet)
    assert_same(ldm.convert_ldm_vae_checkpoint(ldm_layout.vae_to_ldm(vae, sd.vae.config), dict(sd.vae.config)), vae)
    clip = sd.text_encoders[0].state_dict()
    back = ldm.convert_ldm_clip_checkpoint(ldm_layout.clip_to_ldm(clip))
    assert_same({k.removeprefix("text_model."): v for k, v in back.items() if "position_ids" not in k}, clip)
    big = xl.text_encoders[1]
    prefix = ldm_layout.SDXL_TEXT[1]
    back = ldm.convert_open_clip_checkpoint(big, ldm_layout.open_clip_to_ldm(big.state_dict(), prefix), prefix=prefix)
    assert_same(back, big.state_dict())


@pytest.mark.parametrize("config", ["tiny-sd", "tiny-sdxl", "sd1", "sd2", "sd2-v", "sdxl"])
def test_each_shipped_config_is_recognised_by_its_own_layout(config):
    """Full-size layouts cost nothing on the meta device: each converts and fits its config, and no other."""
    family = found.config_family(config)
    with torch.device("meta"):
        unet, vae, texts = loading._shipped_models(config)
    state = ldm_layout.checkpoint(family, unet, vae, texts)
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    assert family_of(shapes) == family and mismatches(config, shapes, found.shipped_config) == []
    others = [name for name in FAMILY_VARIANTS[family] if name != config and {name, config} != {"sd2", "sd2-v"}]
    assert all(mismatches(name, shapes, found.shipped_config) for name in others)
    name = "v2-1_768-ema-pruned.safetensors" if config == "sd2-v" else "model.safetensors"
    findings = found.detect_file(name, Path("/x") / name, shapes)
    assert (findings.family, findings.config) == (family, config)
    models = loading.convert_checkpoint(state, findings, AssertionError)
    assert models[0].config.sample_size == unet.config.sample_size


def test_the_prediction_type_of_a_single_file():
    with torch.device("meta"):
        unet, vae, texts = loading._shipped_models("sd2")
    shapes = {k: tuple(v.shape) for k, v in ldm_layout.checkpoint("sd2", unet, vae, texts).items()}
    for name, config, prediction in [
        ("v2-1_768-ema-pruned.safetensors", "sd2-v", "v_prediction"),
        ("768-v-ema.ckpt", "sd2-v", "v_prediction"),
        ("v2-1_512-ema-pruned.safetensors", "sd2", "epsilon"),
        ("my-model-vpred.safetensors", "sd2-v", "v_prediction"),
    ]:
        findings = found.detect_file(name, Path(name), shapes)
        assert (findings.config, findings.prediction_type) == (config, prediction), name
    marked = found.detect_file("m", Path("model.safetensors"), {**shapes, "v_pred": ()})
    assert marked.prediction_type == "v_prediction"


# ---- one file and one folder of the same weights ------------------------------------------------------------------


@pytest.mark.parametrize("config", ["tiny-sd", "tiny-sdxl"])
def test_a_single_file_and_a_folder_load_to_the_same_components(config, saved, no_network):
    paths, family = saved[config], FAMILY_OF[config]
    loaded = {}
    for form in ("file", "folder", "ckpt"):
        weights = str(paths[form])
        assert diffusion_kind(weights) == ("folder" if form == "folder" else "file")
        assert check_diffusion_available(weights) is None
        bundle = load_diffusion(weights, CPU)
        assert (bundle.family, bundle.label, bundle.prediction_type) == (family, weights, "epsilon")
        assert bundle.config == ("" if form == "folder" else config)  # a single file's config is found by its shapes
        assert [type(t).__name__ for t in bundle.text_encoders] == [
            type(t).__name__ for t in texts_of(trained_like(config))
        ]
        loaded[form] = bundle_answers(bundle)
    for form, answer in loaded.items():
        assert_same(answer, paths["expected"]), form
    assert no_network == []


@pytest.mark.parametrize("form", ["file", "folder"])
def test_weights_from_files_are_never_drawn_at_random_first(saved, monkeypatch, form):
    """Every parameter is made on the meta device (or left undrawn) and then takes the file's values: drawing random
    ones first would cost seconds for a real UNet. A spy on torch.nn.init sees only meta tensors."""
    drawn: list[str] = []
    init = torch.nn.init
    for name in [n for n in vars(init) if n.endswith("_") and not n.startswith("_")]:
        real = getattr(init, name)

        def spy(tensor, *args, _real=real, _name=name, **kwargs):
            if not tensor.is_meta:
                drawn.append(f"{_name}{tuple(tensor.shape)}")
            return _real(tensor, *args, **kwargs)

        monkeypatch.setattr(init, name, spy)
    loading.clear_diffusion()
    bundle = load_diffusion(str(saved["tiny-sd"][form]), CPU)
    assert drawn == []
    assert_same(bundle_answers(bundle), saved["tiny-sd"]["expected"])


def trained_like(config: str) -> dict[str, Any]:
    return {f"text{i}": m for i, m in enumerate(load_diffusion(f"random:{config}", CPU).text_encoders)}


def test_a_second_load_of_a_file_builds_nothing(saved):
    weights = str(saved["tiny-sd"]["file"])
    first = load_diffusion(weights, CPU)
    builds = diffusion_build_count()
    assert load_diffusion(weights, CPU) is first and diffusion_build_count() == builds
    assert weights in loading.loaded_diffusion()


# ---- what cannot be used ------------------------------------------------------------------------------------------


def test_missing_paths_and_unknown_forms(tmp_path):
    raises(str(tmp_path / "nowhere.safetensors"), "there is no file", str(tmp_path / "nowhere.safetensors"))
    raises(str(tmp_path / "nowhere"), "there is no folder", str(tmp_path / "nowhere"))
    raises("stabilityai/stable-diffusion-2-1", "never downloads")
    problem = raises("random:nope", "no random config 'nope'")
    assert all(f"random:{name}" in problem.allowed for name in RANDOM_CONFIGS)
    assert "random:<config>" in raises("sd15", "neither random:<config>").allowed


def test_a_folder_that_is_not_a_whole_diffusers_folder(tmp_path, saved):
    raises(str(tmp_path), "is not a diffusers folder", "model_index.json")
    folder = tmp_path / "partial"
    shutil.copytree(saved["tiny-sd"]["folder"], folder)
    shutil.rmtree(folder / "vae")
    raises(str(folder), "it has no vae/ folder")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusion3Pipeline"}))
    raises(str(folder), "unsupported model family", "StableDiffusion3Pipeline")


def test_a_file_of_another_kind(tmp_path):
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\0" * 64)
    raises(str(other), "a .bin file", ".safetensors or .ckpt")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    raises(str(text), "not a torch checkpoint")


def test_truncated_files(tmp_path, saved):
    data = saved["tiny-sd"]["file"].read_bytes()
    for name, cut, words in [("payload", len(data) - 1000, "truncated"), ("header", 100, "header claims")]:
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data[:cut])
        raises(str(path), "cannot be read", words)
    ckpt = saved["tiny-sd"]["ckpt"].read_bytes()
    path = tmp_path / "cut.ckpt"
    path.write_bytes(ckpt[: len(ckpt) // 2])
    raises(str(path), "cannot be read", "truncated or corrupt")


def test_a_ckpt_that_holds_code_is_refused(tmp_path, saved):
    path = tmp_path / "callbacks.ckpt"
    torch.save({"state_dict": saved["tiny-sd"]["state"], "hparams": argparse.Namespace(lr=1)}, path)
    raises(str(path), "weights-only loading refuses", "convert it to .safetensors")


def _select(state: dict[str, torch.Tensor], *prefixes: str) -> dict[str, torch.Tensor]:
    return {key: value for key, value in state.items() if key.startswith(prefixes)}


@pytest.mark.parametrize(
    ("what", "found_words"),
    [
        ("clip", "a CLIP text encoder on its own"),
        ("sd3", "SD3"),
        ("lora", "a LoRA"),
        ("vae", "a VAE on its own"),
        ("diffusers-unet", "a diffusers-layout UNet on its own"),
        ("inpainting", "9 input channels"),
        ("unet-only", "without its text encoder"),
    ],
)
def test_a_file_of_another_family_says_what_it_found(what, found_words, tmp_path, saved, tiny):
    state = saved["tiny-sd"]["state"]
    tensor = torch.zeros(4, 4)
    make = {
        "clip": lambda: _select(state, "cond_stage_model."),
        "sd3": lambda: {"model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias": tensor},
        "lora": lambda: {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": tensor},
        "vae": lambda: {k.removeprefix(ldm_layout.VAE): v for k, v in _select(state, ldm_layout.VAE).items()},
        "diffusers-unet": lambda: tiny["tiny-sd"].unet.state_dict(),
        "inpainting": lambda: {**state, "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(32, 9, 3, 3)},
        "unet-only": lambda: _select(state, ldm_layout.UNET),
    }
    path = tmp_path / f"{what}.safetensors"
    save_file({k: v.contiguous() for k, v in make[what]().items()}, str(path))
    problem = raises(str(path), "unsupported model family", found_words, str(path))
    assert "SD 1.x, SD 2.x" in problem.allowed and "SDXL" in problem.allowed


def test_shapes_that_fit_no_shipped_config(tmp_path, saved):
    state = saved["tiny-sd"]["state"]
    fewer = {k: v for k, v in state.items() if not k.startswith("model.diffusion_model.output_blocks.5.")}
    path = tmp_path / "fewer.safetensors"
    save_file(fewer, str(path))
    raises(str(path), "match no shipped sd1 config", "UNet output blocks expected 6, found 5")
    no_vae = tmp_path / "no-vae.safetensors"
    save_file({k: v for k, v in state.items() if not k.startswith(ldm_layout.VAE)}, str(no_vae))
    raises(str(no_vae), "an incomplete sd1 checkpoint", "no VAE")


def test_a_misshapen_tensor_inside_is_named_at_load(tmp_path, saved):
    """Shapes the check does not read (it reads a few) are all compared when the file loads."""
    key = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
    state = {**saved["tiny-sd"]["state"], key: torch.zeros(32, 32, 1, 1)}
    path = tmp_path / "misshapen.safetensors"
    save_file(state, str(path))
    assert check_diffusion_available(str(path)) is None
    with pytest.raises(SpecError, match="does not fit the config") as info:
        load_diffusion(str(path), CPU)
    assert info.value.field == FIELD and "down_blocks.0.resnets.0.conv1.weight is (32, 32, 1, 1)" in info.value.detail


# ---- checks are cheap -----------------------------------------------------------------------------------------------


def sparse_checkpoint(path: Path, state: dict[str, torch.Tensor], extra_bytes: int) -> None:
    """A safetensors file with one more tensor of `extra_bytes`, left as a hole in the file (nothing is written)."""
    data = save(state)
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    end = max(info["data_offsets"][1] for key, info in header.items() if key != "__metadata__")
    header["model_ema.everything"] = {
        "dtype": "F32",
        "shape": [extra_bytes // 4],
        "data_offsets": [end, end + extra_bytes],
    }
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as stream:
        stream.write(struct.pack("<Q", len(text)) + text + data[8 + length :])
        stream.truncate(8 + len(text) + end + extra_bytes)


def test_a_check_builds_nothing_and_reads_headers_only(tmp_path, saved, monkeypatch, no_network):
    big = tmp_path / "big.safetensors"
    sparse_checkpoint(big, saved["tiny-sd"]["state"], 1 << 30)

    def refuse(*args, **kwargs):
        raise AssertionError("a check built a model or read tensors")

    for owner, name in [
        (UNet2DConditionModel, "__init__"),
        (AutoencoderKL, "__init__"),
        (CLIPTextModel, "__init__"),
        (loading, "_build"),
        (torch, "load"),
    ]:
        monkeypatch.setattr(owner, name, refuse)
    read = []
    opened = pathlib.Path.open

    def counting_open(self, *args, **kwargs):
        stream = opened(self, *args, **kwargs)
        original = stream.read
        stream.read = lambda *a: read.append(len(chunk := original(*a))) or chunk
        return stream

    monkeypatch.setattr(pathlib.Path, "open", counting_open)
    for weights in (big, saved["tiny-sd"]["folder"], saved["tiny-sdxl"]["file"], "random:tiny-sdxl"):
        assert check_diffusion_available(str(weights)) is None, weights
    assert 0 < sum(read) < 1 << 20 and big.stat().st_size > 1 << 30
    assert no_network == []


# ---- tokenizers ------------------------------------------------------------------------------------------------------


def test_tokenizers_give_open_clips_ids(model_cache):
    reference = open_clip.get_tokenizer("ViT-B-32")
    sd1, openclip = clip_tokenizer("<|endoftext|>", model_cache), clip_tokenizer("!", model_cache)
    prompts = ["a red barn", "A photo of an astronaut, riding a horse!!", "naïve café, 3 cats; don't", "word " * 90]
    for prompt in prompts:
        want = reference([prompt])[0]
        got = [
            t(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids[0]
            for t in (sd1, openclip)
        ]
        assert torch.equal(got[1], want), prompt  # OpenCLIP pads with id 0, as open_clip does
        end = int((want == 49407).nonzero()[0])
        assert torch.equal(got[0][: end + 1], want[: end + 1]) and (got[0][end:] == 49407).all(), prompt
    assert (sd1.pad_token_id, openclip.pad_token_id, len(sd1), sd1.model_max_length) == (49407, 0, 49408, 77)


def test_the_bpe_files_are_written_once_and_whole(tmp_path):
    folder = tmp_path / BPE_FOLDER
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text("{}")  # a crash left half a folder
    assert bpe_files(tmp_path) == folder
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert (len(vocab), vocab["<|startoftext|>"], vocab["<|endoftext|>"], vocab["!"]) == (49408, 49406, 49407, 0)
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894
    stamp = (folder / "merges.txt").stat().st_mtime_ns
    assert bpe_files(tmp_path) == folder and (folder / "merges.txt").stat().st_mtime_ns == stamp
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind


# ---- dtype and memory savers -----------------------------------------------------------------------------------------


def test_the_dtype_per_device_and_the_vae_that_overflows_float16(monkeypatch):
    assert loading.pick_dtype(CPU) == torch.float32 and loading.pick_dtype(torch.device("mps")) == torch.float32
    for bf16, want in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16=bf16: bf16)
        assert loading.pick_dtype(torch.device("cuda")) == want
    monkeypatch.setattr(loading, "pick_dtype", lambda device: torch.float16)
    for config, vae_dtype in (("tiny-sd", torch.float16), ("tiny-sdxl", torch.float32)):  # SDXL's VAE: force_upcast
        parts = loading._random_parts(f"random:{config}", found.inspect_weights(f"random:{config}"))
        bundle = loading._bundle(parts, CPU)
        assert (bundle.unet.dtype, bundle.vae.dtype, bundle.dtype) == (torch.float16, vae_dtype, torch.float16)


def test_memory_savers_follow_free_memory_and_the_canvas():
    gib = 1 << 30
    plan = memory.plan_memory_savers(20 * gib, 1024, 1024)
    assert (plan.vae_tiling, plan.vae_slicing, plan.attention_slicing) == (False, False, False)
    plan = memory.plan_memory_savers(6 * gib, 2048, 2048)
    assert (plan.vae_tiling, plan.vae_slicing, plan.attention_slicing) == (True, True, False)
    assert memory.plan_memory_savers(gib, 512, 512).attention_slicing
    assert memory.plan_memory_savers(3 * gib, 1024, 1024, batch=4).vae_slicing
    assert "GiB free" in plan.reason


def test_memory_savers_on_a_card_and_not_on_the_cpu(tiny, monkeypatch):
    bundle = tiny["tiny-sd"]
    assert memory.apply_memory_savers(bundle, 4096, 4096) == memory.MemoryPlan(
        False, False, False, memory.apply_memory_savers(bundle, 1, 1).reason
    )
    assert not bundle.vae.use_tiling
    models = trained(bundle)
    card = copy.copy(bundle)
    card.device, card.unet, card.vae = torch.device("cuda"), models["unet"], models["vae"]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1 << 30, 8 << 30))
    plan = memory.apply_memory_savers(card, 2048, 2048)
    assert plan.vae_tiling and card.vae.use_tiling and plan.attention_slicing
    assert {type(p).__name__ for p in card.unet.attn_processors.values()} == {"SlicedAttnProcessor"}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (40 << 30, 80 << 30))
    plan = memory.apply_memory_savers(card, 512, 512)
    assert not plan.vae_tiling and not card.vae.use_tiling
    assert {type(p).__name__ for p in card.unet.attn_processors.values()} == {"AttnProcessor2_0"}
    custom = type("RegionalProcessor", (AttnProcessor2_0,), {})
    card.unet.set_attn_processor(custom())
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1 << 30, 8 << 30))
    assert memory.apply_memory_savers(card, 512, 512).attention_slicing  # said, not done: the processors are not ours
    assert {type(p).__name__ for p in card.unet.attn_processors.values()} == {"RegionalProcessor"}
