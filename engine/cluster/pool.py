"""Warm engine actors on Ray, fed from a queue.

Faults are Ray's own business where Ray does them well: an actor whose process or node dies is restarted (on any
node with room) up to MAX_RESTARTS times, and the call it was running is retried on it up to MAX_TASK_RETRIES
times. A call that fails for its own reason (a bad image, a bad spec) raises an application error, which Ray never
retries, so it fails alone. Cancel reaches a running actor through a second concurrent call (max_concurrency=2).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RegiaError
from .actor import EngineActor

MAX_RESTARTS = 3  # an actor's process may die this often before its work fails
MAX_TASK_RETRIES = 2  # a call interrupted by its actor's death runs again this often
POLL_SECONDS = 0.2


class ClusterError(RegiaError):
    """Ray is missing, or its cluster cannot be reached: a setup problem, said with the fix."""


def ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--ray needs Ray, an optional part of the engine: pip install 'regia-engine[cluster]' (or ray==2.60.0)"
        ) from None
    return ray


def connect(address: str | None, cpus: int | None = None) -> Any:
    """Ray, connected: to the cluster at `address` ("auto" finds a running one), else a local one started here."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address or 'a new local instance'}: {exc}") from None
    return ray


@dataclass
class PoolSettings:
    actors: int = 0  # 0: one per GPU (device cuda) or per `threads` CPUs of the cluster
    device: str = "cpu"
    threads: int = 1  # torch threads per actor: CPUs each actor asks Ray for
    capture: str = "off"  # how each actor runs the optimiser's steps (--capture, engine/step_capture.py)

    def count(self, ray: Any) -> int:
        if self.actors > 0:
            return self.actors
        resources = ray.cluster_resources()
        if self.device == "cuda":
            return max(1, int(resources.get("GPU", 0)))
        return max(1, int(resources.get("CPU", os.cpu_count() or 1)) // max(1, self.threads))


@dataclass
class Task:
    key: Any
    method: str  # an EngineActor method: run_shot or run_job
    args: tuple[Any, ...]
    on_progress: Callable[[dict[str, Any]], None] | None = None
    started: float = field(default=0.0)


class EnginePool:
    """Actors that run tasks from a queue; results come back as each finishes (any order)."""

    def __init__(self, ray: Any, settings: PoolSettings) -> None:
        self.ray = ray
        self.settings = settings
        gpus = 1 if settings.device == "cuda" else 0
        self._remote = ray.remote(
            num_cpus=settings.threads, num_gpus=gpus, max_concurrency=2,
            max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
        )(EngineActor)  # fmt: skip
        self.actors = [self._new_actor() for _ in range(settings.count(ray))]
        self._cancelled = threading.Event()

    def _new_actor(self) -> Any:
        return self._remote.remote(self.settings.device, self.settings.threads, self.settings.capture)

    def replace(self, actor: Any) -> Any:
        """A new actor in place of one Ray could not bring back, so that a long-lived pool (the server's) keeps
        its size."""
        with contextlib.suppress(Exception):  # already gone, as a rule
            self.ray.kill(actor, no_restart=True)
        new = self._new_actor()
        self.actors[self.actors.index(actor)] = new
        return new

    def ready(self) -> list[dict[str, Any]]:
        """Wait until every actor has started (torch imported): what each says of itself."""
        return self.ray.get([actor.ready.remote() for actor in self.actors])

    def cancel(self) -> None:
        """Start no more tasks and stop the running ones at their next step."""
        self._cancelled.set()

    def run(self, tasks: list[Task], on_result: Callable[[Task, Any, BaseException | None], None]) -> list[Task]:
        """Run every task on the first idle actor; `on_result(task, value, error)` once per task, as each ends
        (error: the task's own exception, or Ray's when its actor could not be brought back). Returns the tasks
        never started because of a cancel."""
        queue, idle = deque(tasks), list(self.actors)
        running: dict[Any, tuple[Any, Task]] = {}  # object ref -> (actor, task)
        while queue or running:
            if self._cancelled.is_set():
                for actor, _ in running.values():
                    actor.cancel.remote()
                queue.clear()
            while idle and queue:
                actor, task = idle.pop(0), queue.popleft()
                task.started = time.monotonic()
                running[getattr(actor, task.method).remote(*task.args)] = (actor, task)
            if not running:
                break
            done, _ = self.ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                actor, task = running.pop(ref)
                try:
                    value, error = self.ray.get(ref), None
                except Exception as exc:  # the task's own error, or its actor gone for good
                    value, error = None, task_error(exc)
                on_result(task, value, error)
                if not actor_lost(error):
                    idle.append(actor)
            self._report_progress(running)
        return list(queue) if self._cancelled.is_set() else []

    def _report_progress(self, running: dict[Any, tuple[Any, Task]]) -> None:
        """Ask every running actor at once and wait one poll for all of them together (not one after another,
        which would hold the dispatch loop while a restarting actor keeps its answer)."""
        asks = {actor.progress.remote(): task for actor, task in running.values() if task.on_progress is not None}
        if not asks:
            return
        answered, _ = self.ray.wait(list(asks), num_returns=len(asks), timeout=POLL_SECONDS)
        for ref in answered:
            try:
                asks[ref].on_progress(self.ray.get(ref))
            except Exception:  # its actor died meanwhile: its progress comes after the restart
                continue

    def shutdown(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


def task_error(exc: BaseException) -> BaseException:
    """The task's own exception out of Ray's wrapper (RayTaskError), so callers see SpecErrors, JobCancelled..."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def actor_lost(error: BaseException | None) -> bool:
    if error is None:
        return False
    try:
        from ray.exceptions import RayActorError
    except ImportError:  # pragma: no cover - Ray is there whenever a pool exists
        return False
    return isinstance(error, RayActorError)
