#!/usr/bin/env bash
# The GPU figures the README leaves open, in one run on a CUDA machine with no network (issue 16's step capture;
# issue 12's diffusion step): each benchmark under its own time limit, its table written to $OUT (or ./gpu-out).
#
# The machine needs torch with CUDA; the engine's other packages come as Python wheels carried in .whl/
# (`make gpu-wheels` here downloads them for the machine's Python, 3.12 by default). Then, on that machine, from
# the repository root:  bash bench/gpu_check.sh
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/regia-site .whl/*.whl
    export PYTHONPATH="/tmp/regia-site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/device.txt"

run() {  # NAME SECONDS COMMAND...: one benchmark, its output kept even when it runs out of time
    local name=$1 seconds=$2
    shift 2
    echo "== $name"
    timeout "$seconds" "$@" 2>&1 | tee "$out/$name.txt"
}

# CLIP step at 512², 32 cutouts: eager against captured, it/s per mode (target: >= 150 it/s captured, bf16).
run clip_step 200 python3 bench/clip_step.py --device cuda --rounds 3 --steps 20 --capture off graph compile \
    --no-memory
# Style steps: three regions at 1024² against one style (target: <= 1.15x), eager against captured.
run step_time 150 python3 bench/step_time.py --device cuda --sizes 512 1024 --steps 10 --rounds 3 \
    --capture off graph compile --no-memory
# Diffusion: SD 1.5's architecture at 512², regions and guides against one prompt and diffusers' pipeline.
run diffusion_step 150 python3 bench/diffusion_step.py --config sd1 --size 512 --steps 8 --rounds 2 --device cuda
