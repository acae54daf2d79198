"""`python -m engine serve`: check the options, lock the data dir, bind, run uvicorn, write the port file, stop
cleanly."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import uvicorn

from ..images import atomic_write_bytes, private_files
from ..process import go_offline, set_threads, tune_allocator
from .config import ServerConfig
from .datadir import DataDirError, DataDirLock
from .protocol import ConnectionRules, connection_cap, guarded_protocol, loop_exception_handler

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
KEEP_ALIVE = 5.0  # seconds an idle keep-alive connection stays open (uvicorn's default)


class _Server(uvicorn.Server):
    """uvicorn's server, announcing its port only once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_listening, rules: ConnectionRules):
        super().__init__(config)
        self.on_listening = on_listening
        self.rules = rules

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(loop_exception_handler(self.rules.throttle))
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self.on_listening(self.servers[0].sockets[0].getsockname()[1])


def bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(settings: ServerConfig) -> int:
    problems = settings.problems()
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return EXIT_USAGE
    private_files()  # the data dir and everything in it: 0700 folders, 0600 files
    try:
        lock = DataDirLock(settings.data_dir).acquire()  # before anything slow: a second server fails at once
    except DataDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _serve_locked(settings, lock)
    finally:
        lock.release()


def _serve_locked(settings: ServerConfig, lock: DataDirLock) -> int:
    if not settings.allow_downloads:
        go_offline()  # a client's spec never makes this machine download (fetch-models does, or --allow-downloads)
    tune_allocator()
    set_threads(settings.threads)
    if settings.ray is not None:  # before binding: a cluster that cannot be reached is a usage error
        from ..cluster.pool import ClusterError
        from .ray_worker import connect_cluster

        try:
            connect_cluster(settings.ray)  # the worker finds Ray connected
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    from .app import create_app  # torch and the app load only once the options are known to be good

    try:
        sock = bind(settings.bind_host, settings.port)
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        app = create_app(settings, lock=lock)
    except DataDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log = app.state.log
    cap, lowered = connection_cap(settings.max_connections)
    if lowered:
        log.write("limits", message=lowered)
    rules = ConnectionRules(cap, settings.header_timeout, log)

    failed: list[str] = []

    def on_listening(port: int) -> None:
        if settings.port_file is not None:
            try:
                atomic_write_bytes(settings.port_file, f"{port}\n".encode())
            except OSError as exc:  # a client waiting for the file would wait forever: stop instead
                failed.append(f"error: cannot write --port-file {settings.port_file}: {exc.strerror or exc}")
                server.should_exit = True
                return
        log.write("listening", url=f"http://{settings.url_host}:{port}", device=app.state.worker.device.type)

    config = uvicorn.Config(
        app,
        http=guarded_protocol(rules),
        log_level="warning",  # our own JSON lines say what happens
        access_log=False,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config, on_listening, rules)
    # uvicorn re-raises the signal it caught once it has shut down; with these handlers in place that
    # re-raise does nothing, so SIGTERM and Ctrl-C end in exit code 0 after a clean stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        log.write("stopped")
        log.close()
    for line in failed:
        print(line, file=sys.stderr)
    return EXIT_OK if server.started and not failed else EXIT_FAILED
