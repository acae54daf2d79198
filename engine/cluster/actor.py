"""The engine in a Ray worker process: a plain class that engine/cluster/pool.py makes a Ray actor. It keeps what
the engine caches per process (the feature net, CLIP and diffusion models, style statistics) warm between the
shots and jobs it runs. Two calls may run at once (the pool asks for max_concurrency=2): one renders, the other
reads its progress or cancels it."""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .sources import BytesSource, Files

if TYPE_CHECKING:
    from ..images import ImageLimits


class EngineActor:
    def __init__(self, device: str = "cpu", threads: int = 0, capture: str = "off") -> None:
        import torch

        from ..device import pick_device
        from ..step_capture import set_default_mode

        if threads > 0:  # the same thread count as a single-process run gives the same bytes
            torch.set_num_threads(threads)
        set_default_mode(capture)  # every job and shot of this actor runs its steps so
        self.device = pick_device(device)
        self._lock = threading.Lock()
        self._cancel: Any = None
        self._progress: dict[str, Any] = {}

    def ready(self) -> dict[str, Any]:
        """Who this actor is: its process, device, threads, capture mode, and whether Ray restarted it after a
        crash."""
        import ray
        import torch

        from ..step_capture import default_mode

        return {
            "pid": os.getpid(),
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "capture": default_mode(),
            "restarted": ray.get_runtime_context().was_current_actor_reconstructed,
        }

    def run_shot(self, board_json: str, index: int, files: Files) -> tuple[dict[str, Any], Any, dict]:
        """Shot `index` of a storyboard: (its report, its pixels (uint8 H x W x 3) or None, ready()). A shot's own
        failure is in the report; a cancel raises JobCancelled to the caller."""
        from ..storyboard import ShotJobs, parse_storyboard_json
        from ..storyboard.render import render_shot

        jobs = ShotJobs(parse_storyboard_json(board_json))
        token = self._start()
        try:
            report, image = render_shot(jobs, index, BytesSource(files), self.device, self._on_progress, token)
        finally:
            self._finish()
        return asdict(report), image, self.ready()

    def run_job(self, spec_json: str, files: Files, limits: ImageLimits) -> tuple[bytes, list[dict]]:
        """One job spec (the server's queue): (the result PNG, the loss history). Errors are raised as they are
        on a single engine (SpecErrors, JobCancelled, out of memory), for the caller to report."""
        import json

        from ..execute import execute
        from ..images import png_bytes
        from ..spec import validate_spec

        spec = validate_spec(json.loads(spec_json))
        source = BytesSource(files, limits)
        token = self._start()
        try:
            result = execute(spec, source, self.device, on_progress=self._on_progress, cancel=token)
        finally:
            self._finish(clear_progress=True)  # a poll before the next job starts must not read this one's
        return png_bytes(result.image), [dict(losses) for losses in result.history]

    def progress(self) -> dict[str, Any]:
        """The running task's latest step: step, steps, total, losses, eta, and a preview PNG when one is new."""
        with self._lock:
            progress, self._progress = self._progress, {k: v for k, v in self._progress.items() if k != "preview"}
        return progress

    def cancel(self) -> bool:
        """Stop the running task at its next step; False when nothing runs."""
        with self._lock:
            if self._cancel is None:
                return False
            self._cancel.cancel()
            return True

    def _start(self) -> Any:
        from ..progress import CancelToken

        with self._lock:
            self._cancel, self._progress = CancelToken(), {}
            return self._cancel

    def _finish(self, clear_progress: bool = False) -> None:
        with self._lock:
            self._cancel = None
            if clear_progress:
                self._progress = {}

    def _on_progress(self, progress: Any) -> None:
        from ..images import png_bytes

        update = {
            "step": progress.step, "steps": progress.steps, "total": progress.total,
            "losses": dict(progress.losses), "eta": progress.eta,
        }  # fmt: skip
        if progress.preview is not None:
            update["preview"] = png_bytes(progress.preview)
        with self._lock:
            self._progress = {**self._progress, **update}
