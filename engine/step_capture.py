"""How the optimiser's step runs: eagerly (`--capture off`, the default), or captured once and replayed (`graph`,
`compile`). A machine setting, not part of the job: the spec never names it.

Why: on a GPU a step at 512² is bound by kernel launches, not arithmetic (issue 16: a bare CLIP ViT-B-32 forward and
backward on 32 cutouts takes 15.9 ms eager, 4.8 ms as one CUDA graph). Captured, a step costs one launch.

- off: the step as it always ran (engine/optimize.py's loop body, `EagerStep`): the same bytes as before.
- graph (CUDA only): step 0 runs eagerly (it fixes the loss scales, the style supports and the optimiser's state);
  steps 1 and 2 run the static step (below) eagerly on a side stream, to warm up cuBLAS, autocast and the allocator;
  step 3 is captured into one torch.cuda.CUDAGraph (zero grads, render, every guide loss, backward, the optimiser's
  update) and every step from then on replays it.
- compile: render and guide losses through torch.compile (static shapes; "reduce-overhead" on CUDA, which replays
  the forward and backward as CUDA graphs; the default mode elsewhere), then backward and the eager update. Step 0
  runs eagerly, so the compiled function sees the loss scales already fixed. torch.compile is imported only here and
  only for this mode: an eager job never imports torch._dynamo (tests/test_stepper.py).

One graph serves every step because the step's randomness never enters it as a Python number. Each step draws it
on the host exactly as the eager step does (the jitter from the job's generator; the cutout boxes and augmentations
from the CLIP bank's), then copies it with the optimiser's per-step numbers (Stepper.scalars) into one float32
buffer on the device, in one copy; the static step reads them there as tensors: the jitter by index arithmetic
(features.rolled: torch.roll's bytes), the boxes through roi_align (CUDA: its sample grid is worked out in the
kernel), the augmentations' matrices, the update's learning rate and bias corrections (Stepper.step_with). The
augmentations' noise is drawn from its seed into a buffer before each replay: drawn inside a graph, it would repeat.

Results: the static step, run eagerly on the CPU, gives off's bytes with adam and adamw, and sgd within float
rounding (tests/test_step_capture.py); replays repeat the same kernels on the same inputs, so a mode is as
repeatable as the eager step on its device. On CUDA the eager update uses torch's foreach kernels, which round in
another order than Stepper.step_with, and roi_align's backward adds overlapping boxes' gradients atomically (eager
CUDA runs with CLIP differ in the last bits already), so graph should match off within float rounding, not bit for
bit: unmeasured, this task had no GPU. compile reorders float arithmetic: on the CPU the test job ends within 1e-5
of off (README: Step capture).

When capture is impossible (graph on a device that is not CUDA; a guide kind not audited for capture, see
CAPTURABLE_KINDS; capture or the first compiled step raising), the job says so in one log line and carries on
eagerly with the same draws: the same results as off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .capture_option import MODES
from .job import PreparedJob
from .losses import GuideLosses
from .stepper import Stepper

if TYPE_CHECKING:  # the cutouts import torchvision's ops, which import torch._dynamo: only CLIP jobs load them
    from .cutouts import DrawnCutouts

# Term kinds whose raw() only runs device ops on the step's tensors (no host reads, no host randomness): a new kind
# is added here once checked, else a graph capture falls back to eager.
CAPTURABLE_KINDS = frozenset(
    {"style", "content", "palette", "scribble", "outline", "embolden", "tv", "saturation", "symmetry", "clip"}
)
WARMUP_STEPS = 3  # graph: step 0 eager, 1 and 2 static but eager, then the capture
# Steps before the steady state, per mode, for benchmarks: step 0; graph's warm-up and capture; compile's compile,
# and reduce-overhead's own warm-up and recording of its CUDA graphs.
STEADY_FROM = {"off": 1, "graph": WARMUP_STEPS + 1, "compile": 4}
COMPILE_BACKEND = "inductor"  # tests trace with "aot_eager": inductor's C++ builds take minutes on two cores
log = logging.getLogger(__name__)

Step = Callable[[], torch.Tensor]  # one optimisation step -> its row [total, term...] on the device
Jitter = Callable[[], tuple[int, int]]  # the next step's jitter, drawn on the host

_default_mode = "off"


def set_default_mode(mode: str) -> None:
    """The mode of jobs run without one: `demo`, `storyboard` and `serve` set it from --capture for the process."""
    global _default_mode
    if mode not in MODES:
        raise ValueError(f"capture mode must be one of {', '.join(MODES)}, got {mode!r}")
    _default_mode = mode


def default_mode() -> str:
    return _default_mode


@dataclass
class Draws:
    """One step's randomness, on the host: the jitter, and the CLIP bank's cutout choices (None without CLIP)."""

    shift: tuple[int, int]
    cutouts: DrawnCutouts | None


class EagerStep:
    """The step as optimize.run always ran it."""

    def __init__(self, job: PreparedJob, guide_losses: GuideLosses, optimizer: Stepper, jitter: Jitter):
        self.job, self.guide_losses, self.optimizer, self.jitter = job, guide_losses, optimizer, jitter

    def __call__(self) -> torch.Tensor:
        self.optimizer.zero_grad()
        image = self.job.render()
        total, values = self.guide_losses(image, self.jitter())
        return self.finish(total, values)

    def finish(self, total: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Backward, the eager update and the next learning rate; the step's row."""
        total.backward()
        self.optimizer.step()
        self.optimizer.next_lr()
        return torch.cat([total.detach()[None], values.detach()])


class CudaGraphs:
    """Warm-up on a side stream, then one torch.cuda.CUDAGraph of the step (PyTorch's whole-network recipe)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    @contextmanager
    def warmup(self) -> Iterator[None]:
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        try:
            with torch.cuda.stream(self.stream):
                yield
        finally:
            torch.cuda.current_stream(self.device).wait_stream(self.stream)

    def capture(self, step: Step) -> Step:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()

        def replay() -> torch.Tensor:
            graph.replay()
            return out

        return replay


def graph_backend(device: torch.device) -> CudaGraphs:
    """The capture machinery (tests put one that replays by running the step eagerly, to check it on the CPU)."""
    return CudaGraphs(device)


def graph_problem(job: PreparedJob) -> str | None:
    """Why this job's step cannot be one CUDA graph, or None."""
    if job.device.type != "cuda":
        return f"CUDA graphs need a CUDA device, this job runs on {job.device.type}"
    kinds = sorted({term.kind for term in job.terms} - CAPTURABLE_KINDS)
    if kinds:
        return f"guide kind(s) {', '.join(kinds)} not checked for capture"
    return None


def compile_forward(forward: Callable, device: torch.device) -> Callable:
    """torch.compile, imported on use: the eager path never loads torch._dynamo. Shapes never change within a job,
    so they stay static; `dynamic=None` (not False) lets a Python int that changes every step turn symbolic after one
    recompile, where False would recompile on every step (ClipBundle.encode_images keeps its call count out of
    compiled code for that reason)."""
    if device.type == "cpu":
        from .cutout_crops import run_cpu_crops_eagerly

        run_cpu_crops_eagerly()
    mode = "reduce-overhead" if device.type == "cuda" and COMPILE_BACKEND == "inductor" else None
    return torch.compile(forward, dynamic=None, mode=mode, backend=COMPILE_BACKEND)


class CapturedStep(EagerStep):
    """`graph` or `compile`: the static step, on buffers refilled every step (see the module's docstring)."""

    def __init__(self, job: PreparedJob, guide_losses: GuideLosses, optimizer: Stepper, jitter: Jitter, mode: str):
        super().__init__(job, guide_losses, optimizer, jitter)
        self.mode, self.index, self.eager_only = mode, 0, False
        self.replay: Step | None = None
        self.compiled: Callable | None = None
        self.backend: CudaGraphs | None = None
        self.sizes: list[int] = []
        self.templates: list[tuple[torch.Size, torch.dtype]] = []
        self.flat = self.noise = torch.empty(0)
        from .cutouts import PlannedCutouts  # here, not at the top: see the import of DrawnCutouts

        self.planned_cutouts = PlannedCutouts

    def __call__(self) -> torch.Tensor:
        draws = Draws(self.jitter(), self.job.clip_bank.draw() if self.job.clip_bank is not None else None)
        if self.index == 0 or self.eager_only:
            row = self.eager(draws)
        elif self.mode == "graph":
            row = self.graph_step(draws)
        else:
            row = self.compile_step(draws)
        self.index += 1
        return row

    def eager(self, draws: Draws) -> torch.Tensor:
        """EagerStep with this step's draws: the same ops, so the same bytes as off."""
        from .cutout_crops import upload
        from .cutouts import PlannedCutouts

        self.optimizer.zero_grad()
        image = self.job.render()
        planned = None
        if draws.cutouts is not None:
            planned = PlannedCutouts(upload(draws.cutouts.tensors, image.device), draws.cutouts.seed)
        total, values = self.guide_losses(image, draws.shift, planned)
        return self.finish(total, values)

    def fall_back(self, reason: str, draws: Draws) -> torch.Tensor:
        log.warning("regia: --capture %s: %s; running the step eagerly (the same results as off)", self.mode, reason)
        self.eager_only = True
        return self.eager(draws)

    # The static step: inputs from one flat buffer.

    def fill(self, draws: Draws, scalars: list[float] | None) -> None:
        """This step's draws (and the update's numbers, or zeros) into the device buffers: one copy."""
        from .cutout_augment import augment_noise

        cut = draws.cutouts.tensors if draws.cutouts is not None else []
        if not self.sizes:  # shapes are fixed for the job: the first fill lays the buffer out
            count = len(self.optimizer.scalars())
            self.templates = [(t.shape, t.dtype) for t in cut]
            self.sizes = [2, *(t.numel() for t in cut), count]
            self.flat = torch.zeros(sum(self.sizes), device=self.job.device)
            if draws.cutouts is not None and draws.cutouts.seed is not None:
                (n, _), side = cut[0].shape, self.job.clip_bank.cutouts.cut_size  # type: ignore[union-attr]
                self.noise = torch.empty(n, 3, side, side, device=self.job.device, dtype=self.flat.dtype)
        numbers = torch.tensor(scalars if scalars is not None else [0.0] * self.sizes[-1], dtype=torch.float32)
        host = torch.cat(
            [torch.tensor(draws.shift, dtype=torch.float32), *(t.reshape(-1).float() for t in cut), numbers]
        )
        if self.flat.device.type == "cuda":  # from pinned memory the copy does not wait for the device
            host = host.pin_memory()
        self.flat.copy_(host, non_blocking=True)
        if draws.cutouts is not None and draws.cutouts.seed is not None:
            augment_noise(self.noise, draws.cutouts.seed)

    def forward(self, flat: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Render and every guide loss, reading the step's randomness from `flat` and `noise`."""
        parts = flat.split(self.sizes)
        shift = parts[0].long()
        planned = None
        if self.templates:
            tensors = [p.view(shape).to(dtype) for p, (shape, dtype) in zip(parts[1:-1], self.templates, strict=True)]
            planned = self.planned_cutouts(tensors, None, noise if noise.numel() else None)
        return self.guide_losses(self.job.render(), shift, planned)

    def static_step(self) -> torch.Tensor:
        """The whole step on the buffers, the update included: what the graph holds."""
        self.optimizer.zero_grad()
        total, values = self.forward(self.flat, self.noise)
        total.backward()
        self.optimizer.step_with(self.flat[-self.sizes[-1] :] if self.sizes[-1] else self.flat[:0])
        return torch.cat([total.detach()[None], values.detach()])

    def graph_step(self, draws: Draws) -> torch.Tensor:
        if self.backend is None:
            self.backend = graph_backend(self.job.device)
        if self.replay is None and self.index < WARMUP_STEPS:  # the static forward, the eager update
            self.fill(draws, None)
            with self.backend.warmup():
                self.optimizer.zero_grad()
                return self.finish(*self.forward(self.flat, self.noise))
        self.fill(draws, self.optimizer.scalars())
        if self.replay is None:
            try:
                self.replay = self.backend.capture(self.static_step)
            except Exception as exc:  # any failure to capture: eager, as promised, not a failed job
                return self.fall_back(f"capture failed ({type(exc).__name__}: {exc})".splitlines()[0], draws)
        row = self.replay().clone()  # the next replay overwrites the graph's output
        self.optimizer.count_step()
        self.optimizer.next_lr()
        return row

    def compile_step(self, draws: Draws) -> torch.Tensor:
        self.fill(draws, None)
        cuda = self.job.device.type == "cuda"
        if self.compiled is None:
            try:
                self.compiled = compile_forward(self.forward, self.job.device)
                self.optimizer.zero_grad()
                total, values = self.compiled(self.flat, self.noise)
                total.backward()  # the compiled backward is built here: inside the fallback's reach
            except Exception as exc:
                return self.fall_back(f"compile failed ({type(exc).__name__}: {exc})".splitlines()[0], draws)
            self.optimizer.step()
            self.optimizer.next_lr()
            return torch.cat([total.detach()[None], values.detach()])
        if cuda:  # reduce-overhead: the previous step's graph outputs are done with
            torch.compiler.cudagraph_mark_step_begin()
        self.optimizer.zero_grad()
        return self.finish(*self.compiled(self.flat, self.noise))


def build_step(
    job: PreparedJob, guide_losses: GuideLosses, optimizer: Stepper, jitter: Jitter, mode: str | None = None
) -> Step:
    """The job's step in `mode` (None: the process's default, see set_default_mode)."""
    mode = default_mode() if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"capture mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off" or job.spec.steps <= 1:
        return EagerStep(job, guide_losses, optimizer, jitter)
    problem = graph_problem(job) if mode == "graph" else None
    if problem is not None:
        log.warning("regia: --capture graph: %s; running the step eagerly (the same results as off)", problem)
        return EagerStep(job, guide_losses, optimizer, jitter)
    return CapturedStep(job, guide_losses, optimizer, jitter, mode)
