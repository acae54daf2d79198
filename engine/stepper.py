"""The optimiser of the parameterised generators: torch's own Adam, AdamW and SGD update functions
(torch.optim.adam.adam, torch.optim.sgd.sgd), driven without the torch.optim.Optimizer class, and the learning rate
schedule (warm-up, then cosine, linear or constant).

Why not torch.optim.Adam itself: its class imports torch._dynamo on the first step (and on construction), to turn
compilation off around it, which costs 1.3 s of a 3.4 s engine start on a 2-core CPU (bench/startup.py) though
nothing here is compiled. The update functions are the ones the class calls, with the same state and settings, so
the bytes are the same (tests/test_stepper.py checks it against the classes, step by step).

A captured step (engine/step_capture.py) cannot read the learning rate or Adam's step count from the host: there
`scalars()` works out each step's numbers on the host as the update functions do, and `step_with` applies them from
a device tensor, op for op as torch's single-tensor update (the same bytes on the CPU: tests/test_step_capture.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

from .spec_models import Optimizer

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
EPS = 1e-8
MOMENTUM = 0.9


def lr_factor(config: Optimizer, steps: int) -> Callable[[int], float]:
    """The learning rate's factor at each step: a linear warm-up, then the schedule."""
    warmup = round(config.warmup * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        if config.schedule == "cosine":  # down to 10% of lr, so late steps still refine
            return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))
        if config.schedule == "linear":
            return 1.0 - 0.9 * progress
        return 1.0

    return factor


class Stepper:
    """zero_grad(), step() and next_lr(), as torch.optim's optimiser and LambdaLR scheduler do them."""

    def __init__(self, config: Optimizer, params: Iterable[torch.Tensor], steps: int) -> None:
        self.kind, self.weight_decay = config.kind, config.weight_decay
        self.params = list(params)
        self.factor = lr_factor(config, steps)
        self.base_lr, self.index = config.lr, 0
        self.lr = self.base_lr * self.factor(0)  # as LambdaLR sets it on construction
        self.state: dict[int, dict[str, torch.Tensor | None]] = {}  # per parameter, made on its first gradient

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    def next_lr(self) -> None:
        """The schedule's step: the learning rate of the next step."""
        self.index += 1
        self.lr = self.base_lr * self.factor(self.index)

    @torch.no_grad()
    def step(self) -> None:
        params = [p for p in self.params if p.grad is not None]
        grads = [p.grad for p in params]
        if self.kind == "sgd":
            buffers = [self._state(p).get("momentum") for p in params]
            sgd(
                params, grads, buffers, weight_decay=self.weight_decay, momentum=MOMENTUM, lr=self.lr, dampening=0,
                nesterov=False, maximize=False, foreach=None, fused=None, grad_scale=None, found_inf=None,
            )  # fmt: skip
            for param, buffer in zip(params, buffers, strict=True):  # sgd made them on the first step
                self._state(param)["momentum"] = buffer
            return
        states = [self._adam_state(p) for p in params]
        adam(
            params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
            [s["step"] for s in states], foreach=None, capturable=False, differentiable=False, fused=None,
            grad_scale=None, found_inf=None, has_complex=any(torch.is_complex(p) for p in params),
            decoupled_weight_decay=self.kind == "adamw", amsgrad=False, beta1=BETAS[0], beta2=BETAS[1], lr=self.lr,
            weight_decay=self.weight_decay, eps=EPS, maximize=False,
        )  # fmt: skip

    def captured_params(self) -> list[torch.Tensor]:
        """The parameters a captured update moves: those with state, i.e. updated by an eager step before."""
        return [p for p in self.params if self.state.get(id(p))]

    def scalars(self) -> list[float]:
        """This step's numbers for `step_with`, per captured parameter: -lr (sgd), or 1 - lr * weight decay, the
        square root of the second bias correction and -lr / the first (adam, adamw), for Adam's next step count."""
        values: list[float] = []
        for param in self.captured_params():
            if self.kind == "sgd":
                values.append(-self.lr)
                continue
            count = self.state[id(param)]["step"]
            assert count is not None
            step = (count + 1).item()  # the update functions' own arithmetic: a float32 count, read as a float
            correction1, correction2 = 1 - BETAS[0] ** step, 1 - BETAS[1] ** step
            values += [1 - self.lr * self.weight_decay, correction2**0.5, -(self.lr / correction1)]
        return values

    def count_step(self) -> None:
        """Adam's step counts (kept on the host) after a `step_with`, as the update functions count them."""
        if self.kind != "sgd":
            for param in self.captured_params():
                count = self.state[id(param)]["step"]
                assert count is not None
                count += 1

    @torch.no_grad()
    def step_with(self, values: torch.Tensor) -> None:
        """The update with `scalars()` in a tensor on the parameters' device: what a CUDA graph can replay."""
        for index, param in enumerate(self.captured_params()):
            state, grad = self.state[id(param)], param.grad
            assert grad is not None, "a captured parameter lost its gradient"
            if self.weight_decay != 0 and self.kind != "adamw":
                grad = grad.add(param, alpha=self.weight_decay)
            if self.kind == "sgd":
                momentum = state["momentum"]
                assert momentum is not None
                momentum.mul_(MOMENTUM).add_(grad, alpha=1)
                param.add_(momentum * values[index])  # not add_(alpha=-lr), whose fused multiply-add rounds once
                continue
            decay, correction2_sqrt, step_size = values[3 * index : 3 * index + 3]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            assert exp_avg is not None and exp_avg_sq is not None
            if self.weight_decay != 0 and self.kind == "adamw":
                param.mul_(decay)
            exp_avg.lerp_(grad, 1 - BETAS[0])
            exp_avg_sq.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
            denom = (exp_avg_sq.sqrt() / correction2_sqrt).add_(EPS)
            param.add_(exp_avg * step_size / denom)  # addcdiv_'s arithmetic: self + (value * t1) / t2

    def _state(self, param: torch.Tensor) -> dict[str, torch.Tensor | None]:
        return self.state.setdefault(id(param), {})

    def _adam_state(self, param: torch.Tensor) -> dict[str, torch.Tensor | None]:
        state = self._state(param)
        if not state:  # as torch.optim.Adam's _init_group: the step count on the CPU, moments like the parameter
            scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
            state["step"] = torch.tensor(0.0, dtype=scalar, device="cpu")
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state
