"""`--capture {off,graph,compile}` of run, demo, storyboard and serve: how the optimiser's steps run
(engine/step_capture.py). Here without torch, as the CLI's parser is built before torch is imported."""

from __future__ import annotations

import argparse

from .errors import SpecError, SpecErrors

MODES = ("off", "graph", "compile")
HELP = (
    "how optimisation steps run, for CUDA: off (the default: eagerly), graph (one CUDA graph per job, replayed "
    "every step) or compile (torch.compile; reduce-overhead on CUDA). Unmeasured until a GPU run; where capture is "
    "impossible the job says so once and runs eagerly. Diffusion jobs ignore it"
)


def add_capture(parser: argparse.ArgumentParser) -> None:
    # Checked by check_capture, not argparse's choices: a bad value is one `error: --capture: ...` line, exit 2.
    parser.add_argument("--capture", default="off", metavar="{off,graph,compile}", help=HELP)


def check_capture(value: str) -> None:
    if value not in MODES:
        raise SpecErrors([SpecError("--capture", "not a capture mode", value, ", ".join(MODES))])
