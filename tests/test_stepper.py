"""engine/stepper.py drives torch's own update functions without torch.optim's classes (whose first step imports
torch._dynamo, a third of the engine's start-up): the same parameters, step for step, as torch.optim.Adam, AdamW
and SGD with LambdaLR; and no torch._dynamo import in a job's process."""

from __future__ import annotations

import json
import subprocess
import sys

import jobkit
import pytest
import torch

from engine.spec_models import Optimizer
from engine.stepper import Stepper, lr_factor

CLASSES = {
    "adam": lambda p, c: torch.optim.Adam(p, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda p, c: torch.optim.AdamW(p, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay),
}


@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_the_same_parameters_as_torch_optim_step_for_step(kind: str, schedule: str):
    config = Optimizer(kind=kind, lr=0.05, weight_decay=0.01, schedule=schedule, warmup=0.2)
    steps = 12
    start = [torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    stepper = Stepper(config, ours, steps)
    optimizer = CLASSES[kind](theirs, config)
    schedule_ = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps))
    target = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(9))
    for step in range(steps):
        for params, zero in ((ours, stepper.zero_grad), (theirs, optimizer.zero_grad)):
            zero()
            loss = sum(((p - target) ** 2).sum() for p in params[: 1 + step % 2])  # the second param not always
            loss.backward()
        assert stepper.lr == optimizer.param_groups[0]["lr"]
        stepper.step()
        optimizer.step()
        stepper.next_lr()
        schedule_.step()
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True)), (kind, schedule, step)


def test_a_job_never_imports_torch_dynamo(tmp_path):
    jobkit.save(tmp_path / "init.png", jobkit.astronaut(32))
    jobkit.save(tmp_path / "brick.png", jobkit.brick_texture(32))
    spec = {"version": 1, "width": 32, "height": 32, "steps": 3, "init": {"image": "init.png"},
            "guides": [{"kind": "style", "image": "brick.png"}], "losses": {"tv": 0.1}}  # fmt: skip
    (tmp_path / "job.json").write_text(json.dumps(spec))
    code = (
        "import sys; from engine.cli import main; "
        f"code = main(['run', {str(tmp_path / 'job.json')!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet']); "
        "print('torch._dynamo' in sys.modules); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=jobkit.REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
