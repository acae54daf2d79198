"""The diffusion generator (engine/diffusion/): regional prompts in one UNet pass, keep regions bit-exact, guides on
the predicted image, and the same job everywhere (CLI, server, storyboard). CPU, `random:tiny-sd` components."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jobkit
import numpy as np
import pytest
import torch

from engine.diffusion.attention import TOKENS, RegionalAttnProcessor, RegionalContext
from engine.diffusion.loading import load_diffusion
from engine.diffusion.prompts import region_prompts
from engine.errors import SpecErrors
from engine.execute import execute
from engine.images import png_bytes
from engine.presets import apply_preset
from engine.refs import FolderSource
from engine.spec import validate_spec

SIZE = 64
TINY = {"diffusion": {"weights": "random:tiny-sd"}}
CPU = torch.device("cpu")


def folder_with_images(folder: Path) -> Path:
    jobkit.save(folder / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(folder / "left.png", jobkit.rect_mask(SIZE, 0, 0, SIZE, SIZE // 2))
    jobkit.save(folder / "right.png", jobkit.rect_mask(SIZE, 0, SIZE // 2, SIZE, SIZE))
    return folder


def diffusion_spec(steps: int = 8, **fields: Any) -> dict[str, Any]:
    spec = jobkit.spec(SIZE, steps, generator={"kind": "diffusion"}, models=TINY)
    spec.update(fields)
    return spec


def run(folder: Path, spec: dict[str, Any]) -> np.ndarray:
    return execute(validate_spec(spec), FolderSource(folder), CPU).image


# ---- regional attention ----------------------------------------------------------------------------------------


def test_a_region_attends_only_to_its_own_prompt():
    unet = load_diffusion("random:tiny-sd", CPU).unet
    name, attn = next((n, m) for n, m in unet.named_modules() if n.endswith("attn2"))
    width = attn.to_q.in_features
    rng = torch.Generator().manual_seed(0)
    side = 8
    hidden = torch.randn(1, side * side, width, generator=rng)
    dim = attn.to_k.in_features
    prompt_a, prompt_b, other_b = (torch.randn(1, TOKENS, dim, generator=rng) for _ in range(3))
    weights = torch.zeros(2, side, side)
    weights[0, :, : side // 2] = 1.0
    weights[1, :, side // 2 :] = 1.0
    regional = RegionalAttnProcessor()
    regional.context = RegionalContext(weights)
    with torch.no_grad():
        both = regional(attn, hidden, torch.cat([prompt_a, prompt_b], 1))
        changed = regional(attn, hidden, torch.cat([prompt_a, other_b], 1))
        regional.context = None
        alone = regional(attn, hidden, prompt_a)
    inside_a = torch.zeros(side, side, dtype=torch.bool)
    inside_a[:, : side // 2] = True
    inside_a = inside_a.flatten()
    torch.testing.assert_close(both[0, inside_a], alone[0, inside_a], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both[0, inside_a], changed[0, inside_a], rtol=0, atol=0)
    assert (both[0, ~inside_a] - changed[0, ~inside_a]).abs().max() > 1e-3  # B's own positions do follow B
    regional.context, regional.dense = RegionalContext(weights), True  # the GPU's path gives the same
    with torch.no_grad():
        torch.testing.assert_close(regional(attn, hidden, torch.cat([prompt_a, prompt_b], 1)), both)
    assert name.endswith("attn2")


def test_small_regions_survive_coarse_layers():
    weights = torch.zeros(2, 16, 16)
    weights[0, 5:7, 5:7] = 1.0  # 2x2 latent cells: less than one cell of a 4x4 layer
    weights[1] = 1.0 - weights[0]
    coarse = RegionalContext(weights).at(16)  # a 4x4 grid
    assert coarse[:, 0].max() > 0.4 and torch.allclose(coarse.sum(1), torch.ones(16))


def test_prompts_per_region_with_negatives_and_the_top_level_for_the_rest():
    spec = validate_spec(
        diffusion_spec(
            guides=[{"kind": "text", "prompt": "a castle"}, {"kind": "text", "prompt": "blurry", "weight": -1}],
            regions=[
                {"name": "sky", "mask": "m.png", "guides": [{"kind": "text", "prompt": "stormy sky"},
                                                            {"kind": "text", "prompt": "sun", "weight": -0.5}]},
                {"name": "wall", "mask": "m.png", "mode": "embolden", "guides": [{"kind": "text", "prompt": "moss"}]},
            ],
            init={"image": "i.png"},
        )
    )  # fmt: skip
    prompts = region_prompts(spec, ["sky", "wall"])
    assert [(p.name, p.positive, p.negative) for p in prompts] == [
        ("sky", "stormy sky, a castle", "sun, blurry"),
        ("wall", "moss", ""),  # embolden regions take no top-level guides, as with the other generators
        ("", "a castle", "blurry"),
    ]


# ---- keep, guides, the rest ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["random:tiny-sd", "random:tiny-sdxl"])
def test_keep_regions_and_uncovered_pixels_are_bit_exact(tmp_path, weights):
    folder = folder_with_images(tmp_path)
    spec = diffusion_spec(
        models={"diffusion": {"weights": weights}},
        init={"image": "init.png"},
        guides=[{"kind": "text", "prompt": "a red door"}],
        regions=[{"name": "face", "mask": "right.png", "mode": "keep"}],
    )
    spec["regions"].append(
        {"name": "left", "mask": "left.png", "feather": 4, "guides": [{"kind": "text", "prompt": "x"}]}
    )
    image = run(folder, spec)
    init = jobkit.astronaut(SIZE)
    assert np.array_equal(image[:, SIZE // 2 :], init[:, SIZE // 2 :])
    assert np.abs(image[:, : SIZE // 2 - 4].astype(int) - init[:, : SIZE // 2 - 4].astype(int)).mean() > 5
    if weights != "random:tiny-sd":
        return
    # The cached UNet is left as the job found it: a plain one-prompt call works after a job with three.
    unet = load_diffusion(weights, CPU).unet
    latent, prompt = torch.zeros(1, 4, SIZE // 8, SIZE // 8), torch.zeros(1, TOKENS, unet.config.cross_attention_dim)
    with torch.no_grad():
        assert unet(latent, torch.tensor([1]), encoder_hidden_states=prompt).sample.shape == latent.shape


@pytest.mark.slow
def test_a_guide_pulls_the_predicted_image_in_its_region_only(tmp_path):
    folder = folder_with_images(tmp_path)
    garden = {"kind": "text", "prompt": "a garden"}
    red = {"kind": "palette", "colors": ["#ff0000"], "weight": 1.0}
    lake = {"name": "right", "mask": "right.png", "guides": [{"kind": "text", "prompt": "a lake"}]}
    left, right = slice(0, SIZE // 2), slice(SIZE // 2 + 8, SIZE)  # the right region, past the decoder's reach

    def sample(strength: float, *guides: dict) -> np.ndarray:
        regions = [{"name": "left", "mask": "left.png", "guides": list(guides)}, lake]
        return run(folder, diffusion_spec(12, regions=regions, generator={"kind": "diffusion",
                                                                          "guidance_strength": strength}))  # fmt: skip

    def distance_to_red(image: np.ndarray) -> float:  # the palette loss of a one-colour palette
        return float(np.abs(image[:, left].astype(float) / 255 - [1.0, 0.0, 0.0]).mean())

    def change(a: np.ndarray, b: np.ndarray, side: slice) -> float:
        return float(np.abs(a[:, side].astype(float) - b[:, side]).mean())

    plain, gentle, strong = sample(0.0, garden, red), sample(1.0, garden, red), sample(3.0, garden, red)
    assert distance_to_red(strong) < distance_to_red(gentle) < distance_to_red(plain) - 0.005
    # The noise floor: in this tiny random model, changing the left region's prompt moves the right as much as the
    # left (self-attention and the VAE's mid-block attention see the whole canvas). Guidance must spill far less.
    desert = sample(0.0, {"kind": "text", "prompt": "a desert at night"}, red)
    prompt_spill = change(plain, desert, right) / change(plain, desert, left)
    guide_spill = change(plain, strong, right) / change(plain, strong, left)
    assert prompt_spill > 0.5 and guide_spill < 0.5 * prompt_spill, (guide_spill, prompt_spill)


@pytest.mark.slow
def test_img2img_strength_and_samplers_are_deterministic(tmp_path):
    folder = folder_with_images(tmp_path)
    for sampler in ("euler", "euler_ancestral", "ddim", "dpmpp_2m"):
        spec = diffusion_spec(6, init={"image": "init.png"}, generator={"kind": "diffusion", "sampler": sampler,
                                                                         "strength": 0.5})  # fmt: skip
        first, again = run(folder, spec), run(folder, spec)
        assert np.array_equal(first, again), sampler
    near = diffusion_spec(6, init={"image": "init.png"}, generator={"kind": "diffusion", "strength": 0.2})
    far = diffusion_spec(6, init={"image": "init.png"}, generator={"kind": "diffusion", "strength": 1.0})
    # A random VAE cannot reproduce the init: "near" is near what it makes of the init (encoded, then decoded)
    vae = load_diffusion("random:tiny-sd", CPU).vae
    with torch.no_grad():
        pixels = torch.from_numpy(jobkit.astronaut(SIZE).copy()).permute(2, 0, 1)[None].float() / 255 * 2 - 1
        round_trip = vae.decode(vae.encode(pixels).latent_dist.mean).sample
    round_trip = ((round_trip[0].permute(1, 2, 0).clamp(-1, 1) + 1) / 2 * 255).numpy()
    assert np.abs(run(folder, near) - round_trip).mean() < np.abs(run(folder, far) - round_trip).mean() - 5


@pytest.mark.slow
def test_a_region_with_its_own_strength_stays_nearer_the_init(tmp_path):
    folder = folder_with_images(tmp_path)
    vae = load_diffusion("random:tiny-sd", CPU).vae
    with torch.no_grad():
        pixels = torch.from_numpy(jobkit.astronaut(SIZE).copy()).permute(2, 0, 1)[None].float() / 255 * 2 - 1
        round_trip = vae.decode(vae.encode(pixels).latent_dist.mean).sample
    round_trip = ((round_trip[0].permute(1, 2, 0).clamp(-1, 1) + 1) / 2 * 255).numpy()

    def sample(**left: Any) -> np.ndarray:
        regions = [{"name": "left", "mask": "left.png", **left}, {"name": "right", "mask": "right.png"}]
        return run(folder, diffusion_spec(8, init={"image": "init.png"}, regions=regions))

    def distance(image: np.ndarray, side: slice) -> float:
        return float(np.abs(image[:, side] - round_trip[:, side]).mean())

    left, right = slice(0, SIZE // 2 - 8), slice(SIZE // 2 + 8, SIZE)
    same, gentle = sample(), sample(init_strength=0.25)
    assert distance(gentle, left) < distance(same, left) - 5  # the left starts late, from the init noised less
    assert distance(gentle, left) < distance(gentle, right) - 5
    with pytest.raises(SpecErrors) as info:
        validate_spec(diffusion_spec(regions=[{"name": "left", "mask": "left.png", "init_strength": 0.5}]))
    assert "regions[0].init_strength" in str(info.value) and "init.image" in str(info.value)


def test_guidance_scale_per_region_and_for_embolden():
    from types import SimpleNamespace

    from engine.diffusion.sampler import EMBOLDEN_SCALE, scale_map

    spec = validate_spec(
        diffusion_spec(
            generator={"kind": "diffusion", "cfg": 5.0},
            regions=[{"name": "own", "mask": "m.png", "guidance_scale": 11.0},
                     {"name": "bold", "mask": "m.png", "mode": "embolden", "strength": 2.0},
                     {"name": "plain", "mask": "m.png"}],
        )
    )  # fmt: skip
    weights = torch.zeros(4, 2, 2)
    for index in range(4):
        weights[index].view(-1)[index] = 1.0  # a cell each: own, bold, plain, the rest
    job = SimpleNamespace(spec=spec, layout=SimpleNamespace(names=["own", "bold", "plain"]))
    scales = scale_map(job, weights)[0, 0].flatten().tolist()
    assert scales == pytest.approx([11.0, 5.0 * (1 + EMBOLDEN_SCALE * 2.0), 5.0, 5.0])


@pytest.mark.slow
def test_progress_previews_and_cancel_between_steps(tmp_path):
    from engine.errors import JobCancelled
    from engine.progress import CancelToken

    folder = folder_with_images(tmp_path)
    spec = validate_spec(diffusion_spec(6, preview_every=2, guides=[{"kind": "palette", "colors": ["#204080"]}]))
    seen = []
    result = execute(spec, FolderSource(folder), CPU, on_progress=seen.append)
    assert [p.step for p in seen] == list(range(1, 7)) and all(p.steps == 6 for p in seen)
    assert [p.step for p in seen if p.preview is not None] == [1, 2, 4]  # the final image is the result
    assert seen[1].preview.shape == (SIZE, SIZE, 3) and seen[1].preview.dtype == np.uint8
    assert "palette" in " ".join(seen[0].losses) and len(result.history) == 6
    cancel = CancelToken()

    def stop_after_two(progress) -> None:
        if progress.step == 2:
            cancel.cancel()

    with pytest.raises(JobCancelled, match="after 2 of 6"):
        execute(spec, FolderSource(folder), CPU, on_progress=stop_after_two, cancel=cancel)


def test_bad_diffusion_settings_name_the_field(tmp_path):
    folder = folder_with_images(tmp_path)
    with pytest.raises(SpecErrors) as info:
        validate_spec(diffusion_spec(generator={"kind": "diffusion", "sampler": "plms"}))
    assert info.value.errors[0].field == "generator.sampler" and "dpmpp_2m" in info.value.errors[0].allowed
    with pytest.raises(SpecErrors) as info:
        execute(validate_spec(jobkit.spec(SIZE, 2, generator={"kind": "diffusion"})), FolderSource(folder), CPU)
    assert info.value.errors[0].field == "models.diffusion"
    odd = diffusion_spec(2, width=70)
    with pytest.raises(Exception) as info:
        run(folder, odd)
    assert "width" in str(info.value) and "multiple" in str(info.value)
    assert validate_spec(jobkit.spec(SIZE, generator={"kind": "diffusion"}, models=TINY)).steps == 30
    assert validate_spec(jobkit.spec(SIZE, 200, generator={"kind": "diffusion"}, models=TINY)).steps == 200


def test_a_preset_fills_the_diffusion_settings_the_spec_leaves_unset():
    spec = validate_spec(jobkit.spec(SIZE, generator={"kind": "diffusion"}, models=TINY, preset="watercolour"))
    spec.guides.append(validate_spec(jobkit.spec(SIZE, guides=[{"kind": "text", "prompt": "a fox"}])).guides[0])
    resolved = apply_preset(spec)
    assert resolved.generator.sampler == "dpmpp_2m" and resolved.generator.cfg == 6.5 and resolved.steps == 30
    assert any(g.kind == "text" and "watercolour painting of a fox" in g.prompt for g in resolved.guides)
    own = validate_spec(jobkit.spec(SIZE, 12, generator={"kind": "diffusion", "cfg": 9.0}, models=TINY, preset="ink"))
    assert apply_preset(own).generator.cfg == 9.0 and apply_preset(own).steps == 12


@pytest.mark.slow
def test_the_cli_and_a_storyboard_run_the_diffusion_generator(tmp_path, capsys):
    from engine.cli import main

    folder = folder_with_images(tmp_path / "job")
    spec = diffusion_spec(
        4, regions=[{"name": "left", "mask": "left.png", "guides": [{"kind": "text", "prompt": "a"}]}]
    )
    spec_path = jobkit.write_spec(folder, spec)
    assert main(["run", str(spec_path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "result.png").read_bytes() == png_bytes(run(folder, spec))
    board = {
        "width": SIZE, "height": SIZE, "steps": 3, "generator": {"kind": "diffusion"}, "models": TINY,
        "style": {"prompt": "an ink drawing of {prompt}", "palette": ["#101010", "#f0f0f0"]},
        "shots": [{"name": "One", "frame_start": 1, "frame_end": 2, "description": "a harbour"},
                  {"name": "Two", "frame_start": 3, "frame_end": 4, "description": "a tower"}],
    }  # fmt: skip
    (folder / "board.json").write_text(json.dumps(board))
    assert main(["storyboard", str(folder / "board.json"), "--out", str(tmp_path / "board"), "--quiet"]) == 0
    report = json.loads((tmp_path / "board" / "storyboard.json").read_text())
    assert [shot["status"] for shot in report["shots"]] == ["done", "done"]
    capsys.readouterr()


@pytest.mark.slow
def test_the_server_gives_the_clis_bytes(tmp_path):
    import serverkit

    folder = folder_with_images(tmp_path / "job")
    regions = [{"name": "left", "mask": "left.png", "guides": [{"kind": "text", "prompt": "a kite"},
                                                              {"kind": "palette", "colors": ["#00ff00"]}]}]  # fmt: skip
    spec = diffusion_spec(5, init={"image": "init.png"}, regions=regions)
    expected = png_bytes(run(folder, spec))
    missing, broken = tmp_path / "gone.safetensors", tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    with serverkit.serving(tmp_path / "data", f"--diffusion={missing}", f"--diffusion={broken}") as server:
        client = server.client()
        refs = {name: serverkit.upload(client, (folder / f"{name}.png").read_bytes()) for name in ("init", "left")}
        spec["init"]["image"], spec["regions"][0]["mask"] = refs["init"], refs["left"]
        job = serverkit.submit(client, spec)
        assert serverkit.wait_final(client, job["id"], timeout=120)["state"] == "done"
        assert serverkit.result_bytes(client, job["id"]) == expected
        health = client.get("/health").json()
        assert health["diffusion_models"] == {"present": [], "missing": [str(missing), str(broken)]}
        spec["models"]["diffusion"]["weights"] = str(tmp_path / "model.safetensors")
        error = serverkit.check_errors(client.post("/jobs", json=spec), 422, "models.diffusion.weights")[0]
        assert "--diffusion" in error["message"]  # a path the server was not started with: never looked at
        spec["models"]["diffusion"]["weights"] = str(broken)
        error = serverkit.check_errors(client.post("/jobs", json=spec), 422, "models.diffusion.weights")[0]
        assert str(broken) in error["message"], error
        spec["models"]["diffusion"]["weights"] = str(missing)
        error = serverkit.check_errors(client.post("/jobs", json=spec), 422, "models.diffusion.weights")[0]
        assert "there is no file" in error["message"] and "gone.safetensors" in error["message"], error
