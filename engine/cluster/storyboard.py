"""A storyboard's shots on Ray actors (`python -m engine storyboard FILE --ray [ADDRESS]`): a runner for
engine/storyboard/render.py, which still writes every file, each once, in this process, so the shot PNGs, the
contact sheet and storyboard.json are those of a single-process run (the PNGs byte for byte on the same device
and thread count)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import JobCancelled
from ..storyboard.render import Deliver, ShotReport, ShotRunner, _used_refs
from .pool import EnginePool, PoolSettings, Task, connect
from .sources import ReadableSource, gather

if TYPE_CHECKING:
    from ..storyboard import ShotJobs


class Progress:
    """Steps done over all the shots being rendered: each finished shot's steps plus each running one's step."""

    def __init__(self, total: int, show: Callable[[int, int], None] | None) -> None:
        self.total, self.show = total, show
        self.finished = 0
        self.running: dict[int, int] = {}

    def step(self, index: int, step: int) -> None:
        self.running[index] = step
        self._show()

    def finish(self, index: int, steps: int) -> None:
        self.running.pop(index, None)
        self.finished += steps
        self._show()

    def _show(self) -> None:
        if self.show is not None:
            self.show(self.finished + sum(self.running.values()), self.total)


def ray_runner(
    source: ReadableSource,
    address: str | None,
    settings: PoolSettings,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_ready: Callable[[list[dict[str, Any]]], None] | None = None,
    on_worker: Callable[[int, dict[str, Any]], None] | None = None,
) -> ShotRunner:
    """Render shots on a pool of warm actors. `cancel` (set from any thread) stops the rest: running shots end at
    their next step, queued ones never start; `on_progress(steps done, steps)` aggregates every actor's progress;
    `on_ready(actors)` says who the actors are once all have started, `on_worker(index, actor)` who rendered a
    shot (its process, and whether Ray had restarted it)."""

    def run(jobs: ShotJobs, indices: list[int], deliver: Deliver) -> None:
        ray = connect(address, cpus=None)
        pool = EnginePool(ray, settings)
        stop = threading.Event()
        watcher = _watch(cancel, pool, stop) if cancel is not None else None
        try:
            actors = pool.ready()
            if on_ready is not None:
                on_ready(actors)
            board_json = jobs.board.model_dump_json()
            files = ray.put(gather(source, _used_refs(jobs)))  # once in the object store, for every actor
            steps = jobs.board.steps
            progress = Progress(steps * len(indices), on_progress)
            tasks = [
                Task(index, "run_shot", (board_json, index, files), _step_reporter(progress, index))
                for index in indices
            ]

            def on_result(task: Task, value: Any, error: BaseException | None) -> None:
                index = task.key
                progress.finish(index, steps)
                if isinstance(error, JobCancelled):
                    return  # reported as cancelled by render_storyboard
                if error is not None:  # its actor died more often than Ray retries
                    report = _lost(jobs, index, error)
                    deliver(index, report, None)
                    return
                data, image, who = value
                if on_worker is not None:
                    on_worker(index, who)
                deliver(index, ShotReport(**data), image)

            pool.run(tasks, on_result)
        finally:
            stop.set()
            if watcher is not None:
                watcher.join()
            pool.shutdown()

    return run


def _step_reporter(progress: Progress, index: int) -> Callable[[dict[str, Any]], None]:
    return lambda update: progress.step(index, int(update.get("step", 0)))


def _watch(cancel: threading.Event, pool: EnginePool, stop: threading.Event) -> threading.Thread:
    """Pass a cancel from any thread on to the pool."""

    def wait() -> None:
        while not stop.is_set():
            if cancel.wait(0.1):
                pool.cancel()
                return

    thread = threading.Thread(target=wait, name="regia-ray-cancel", daemon=True)
    thread.start()
    return thread


def _lost(jobs: ShotJobs, index: int, error: BaseException) -> ShotReport:
    from ..storyboard.render import _report

    report = _report(jobs, index)
    report.status = "failed"
    report.error = f"its engine worker died and was not brought back ({type(error).__name__}): see Ray's logs"
    return report
