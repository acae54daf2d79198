"""How long a diffusion model takes to load, from a diffusers folder and from one .safetensors file, with weights
made on the meta device (accelerate installed, as the engine's requirements now have it) against drawn at random
first and then overwritten (accelerate hidden, as before).

What is measured
- SD 1.5's architecture (860M-parameter UNet, VAE, text encoder) with fixed-seed random weights, written once as a
  diffusers folder (save_pretrained) and as one original-layout .safetensors file (about 4.3 GB each, in a
  temporary folder); the values do not matter to the load.
- Each load in a fresh child process (`load_diffusion(path, cpu)`), timed around the call alone, after `import
  torch` and the engine's diffusion modules; rounds alternate the variants, the table gives medians. The file's
  pages are in the page cache after the first round, as on an artist's machine after the first job.
- "accelerate hidden": `None` in sys.modules for accelerate before diffusers imports, so diffusers' from_pretrained
  falls back to building the model with random weights and then loading.

Run: `.venv/bin/python bench/model_load.py [--rounds 3] [--config sd1]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

CHILD = r"""
import sys, time
if sys.argv[2] == "hidden":
    sys.modules["accelerate"] = None
import torch
torch.set_num_threads(2)
from engine.diffusion.loading import load_diffusion
start = time.perf_counter()
load_diffusion(sys.argv[1], torch.device("cpu"))
print(time.perf_counter() - start)
"""


def write_models(config: str, folder: Path) -> dict[str, Path]:
    """The config's random weights as a diffusers folder and as one original-layout .safetensors file."""
    import ldm_layout
    import torch
    from safetensors.torch import save_file

    from engine.diffusion.loading import load_diffusion

    bundle = load_diffusion(f"random:{config}", torch.device("cpu"))
    root = ldm_layout.save_diffusers_folder(
        folder / "folder",
        config,
        bundle.unet,
        bundle.vae,
        bundle.text_encoders,
        bundle.tokenizers,
        bundle.scheduler_config,
    )
    state = ldm_layout.checkpoint(bundle.family, bundle.unet, bundle.vae, bundle.text_encoders)
    single = folder / "model.safetensors"
    save_file({key: value.contiguous() for key, value in state.items()}, str(single))
    return {"diffusers folder": root, "one .safetensors file": single}


def load_once(path: Path, variant: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "REGIA_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), variant], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"the child failed:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--config", default="sd1", help="a shipped random config: sd1, sd2, sdxl, tiny-sd, ...")
    args = parser.parse_args()
    variants = ("meta (accelerate)", "hidden")
    with tempfile.TemporaryDirectory(prefix="regia-model-load-") as tmp:
        os.environ["REGIA_MODEL_CACHE"] = str(Path(tmp) / "cache")  # the tokenizer files, written once
        paths = write_models(args.config, Path(tmp))
        times: dict[tuple[str, str], list[float]] = {(form, v): [] for form in paths for v in variants}
        for round_ in range(args.rounds):
            for form, path in paths.items():
                for variant in variants if round_ % 2 == 0 else reversed(variants):
                    times[(form, variant)].append(load_once(path, "hidden" if variant == "hidden" else "meta"))
    print(f"# load_diffusion of random:{args.config}'s weights, CPU, {args.rounds} rounds, {os.cpu_count()} cores")
    print()
    print("| form | weights made on the meta device (s) | drawn at random first (s) | ratio |")
    print("|---|---:|---:|---:|")
    for form in paths:
        meta = statistics.median(times[(form, variants[0])])
        drawn = statistics.median(times[(form, variants[1])])
        print(f"| {form} | {meta:.2f} | {drawn:.2f} | {meta / drawn:.2f} |")


if __name__ == "__main__":
    main()
