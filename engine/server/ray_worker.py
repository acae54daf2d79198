"""The server's queue on Ray (`serve --ray ADDRESS`): one thread per engine actor takes the next job, sends the actor
its spec and the bytes of its images, polls the actor's progress into the job store (so GET /jobs/{id} and /preview
read as for a local job) and writes the outputs here, as the local worker does. N actors run N jobs at once, so the
add-on's storyboard shots, each its own job, render in parallel with nothing changed on its side.

Only this module (and engine/cluster/) imports Ray, and only for --ray."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..cluster.pool import POLL_SECONDS, ClusterError, EnginePool, PoolSettings, actor_lost, connect, task_error
from ..cluster.sources import gather
from ..errors import JobCancelled
from ..progress import CancelToken
from ..spec import JobSpec
from .blobs import BlobSource
from .config import LOCAL_RAY, ServerConfig
from .job_record import JobRecord
from .jobs import JobStore
from .logs import JsonLog
from .worker import STOP_WAIT, JobFailed, Worker

READY_WAIT = 1.0  # seconds between looks at whether a slot's actor has started (and whether the server stops)
PROGRESS_WAIT = 1.0  # seconds a progress poll waits for a busy or restarting actor before trying next time
REACH_TIMEOUT = 3.0  # seconds to find something listening at a cluster's host:port (ray.init would retry for minutes)


def connect_cluster(address: str) -> Any:
    """Ray, connected to the cluster at `address` ("local": a Ray started in this process). ClusterError, one line
    naming --ray and the fix, when Ray is missing or the cluster cannot be reached."""
    problem = _unreachable(address)
    if problem is None:
        try:
            return connect(None if address == LOCAL_RAY else address)
        except ClusterError as exc:
            if str(exc).startswith("--ray"):  # Ray is missing: the message says what to install
                raise
            problem = (str(exc).splitlines() or ["cannot reach the Ray cluster"])[0].rstrip(".")
    raise ClusterError(
        f"--ray {address}: {problem}; give the address of a running cluster (ray start --head prints it), or "
        f"--ray {LOCAL_RAY} for a Ray started by this server"
    )


def _unreachable(address: str) -> str | None:
    """Why nothing answers at a host:port address, found in seconds; None for other addresses (ray.init checks
    them at once)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT).close()
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or exc})"
    return None


def pool_settings(ray: Any, config: ServerConfig) -> PoolSettings:
    """The actors --device, --threads and --ray-actors ask for; `auto` is the cluster's GPUs when it has any."""
    device = config.device
    if device == "auto":
        device = "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    return PoolSettings(actors=config.ray_actors, device=device, threads=config.threads or 1, capture=config.capture)


class ActorCancel(CancelToken):
    """A job's cancel token that reaches the actor running it at once, not at the next poll."""

    def __init__(self, pool: EnginePool, slot: int) -> None:
        super().__init__()
        self.pool, self.slot = pool, slot

    def cancel(self) -> None:
        super().cancel()
        self.pool.actors[self.slot].cancel.remote()  # no wait: the job stops at its next step


class RayWorker(Worker):
    """Worker's queue, taking, finishing and stopping, with each slot's jobs run on its own engine actor."""

    def __init__(
        self,
        store: JobStore,
        source: BlobSource,
        config: ServerConfig,
        log: JsonLog | None = None,
        after_job: Callable[[], None] | None = None,
    ) -> None:
        assert config.ray is not None
        self.ray = connect_cluster(config.ray)
        self.address = config.ray
        settings = pool_settings(self.ray, config)
        self.pool = EnginePool(self.ray, settings)
        self.slots = len(self.pool.actors)
        self._stopping = threading.Event()
        super().__init__(store, source, torch.device(settings.device), log, after_job)
        self.blobs = source  # read as bytes here (gather); the actors decode them under its limits

    def about(self) -> dict[str, Any]:
        settings = self.pool.settings
        return {
            "cluster": {
                "address": self.address,
                "actors": self.slots,
                "device": settings.device,
                "threads": settings.threads,
            }
        }

    def stop(self, wait: float = STOP_WAIT) -> None:
        self._stopping.set()
        super().stop(wait)  # running jobs' actors are cancelled through their tokens; the jobs end interrupted
        self.pool.shutdown()
        self.ray.shutdown()  # a local Ray stops; a cluster is only let go

    def _loop(self, slot: int) -> None:
        if self._wait_ready(slot):
            super()._loop(slot)

    def _wait_ready(self, slot: int) -> bool:
        """Until the slot's actor has started (torch imported): a job is never `running` while its actor boots, nor
        while the cluster has no room for it. False when the server stops first."""
        while not self._stopping.is_set():
            try:
                self.ray.get(self.pool.actors[slot].ready.remote(), timeout=READY_WAIT)
                return True
            except Exception as exc:  # still starting; or dead, with Ray's own restarts spent
                if actor_lost(task_error(exc)):
                    self.pool.replace(self.pool.actors[slot])
        return False

    def _token(self, slot: int) -> CancelToken:
        return ActorCancel(self.pool, slot)

    def _execute(self, record: JobRecord, spec: JobSpec, token: CancelToken, slot: int) -> tuple[bytes, list]:
        files = gather(self.blobs, spec.image_refs())  # read here, decoded (under the same limits) by the actor
        if token.cancelled:
            raise JobCancelled("cancelled before it started")
        actor = self.pool.actors[slot]
        job = actor.run_job.remote(self.store.spec_text(record.id), files, self.blobs.store.limits)
        preview_path = self.store.folder(record.id) / "preview.png"
        while not self.ray.wait([job], timeout=POLL_SECONDS)[0]:
            if token.cancelled:  # again: a cancel sent before the actor started the job found nothing to stop
                actor.cancel.remote()
            self._poll(actor, record, preview_path)
        try:
            return self.ray.get(job)
        except Exception as exc:  # the job's own error (SpecErrors, JobCancelled...), or its actor gone for good
            error = task_error(exc)
        if not actor_lost(error):
            raise error
        self.pool.replace(actor)  # the server keeps its capacity
        raise JobFailed(
            f"its engine worker died and Ray could not bring it back ({type(error).__name__}): see Ray's logs, then "
            "requeue the job"
        )

    def _poll(self, actor: Any, record: JobRecord, preview_path: Path) -> None:
        try:
            update = self.ray.get(actor.progress.remote(), timeout=PROGRESS_WAIT)
        except Exception:  # a busy or restarting actor: its progress comes at the next poll
            return
        if "step" in update:  # none before the job's first step
            losses, total, eta = update["losses"], update["total"], update["eta"]
            self._report(record, preview_path, update["step"], losses, total, eta, update.get("preview"))
