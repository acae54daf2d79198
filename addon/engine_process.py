"""The managed local engine: `python -m engine serve` started, watched and stopped by the add-on, with no bpy.

start() and poll() never block, so Blender's main thread can start the engine and watch it from a timer; wait_ready()
blocks, for scripts and tests. The engine picks a free port and writes it to a port file in the data dir once it
accepts connections; its stdout and stderr go to a log file there (a pipe nobody reads would fill up and stall it).

Secrets stay out of argv (`ps` shows it to every user): the token travels in the REGIA_ENGINE_TOKEN environment
variable, which only this user can read, and every option is passed as `--name=value`, so no value (a token, a path,
a model name) can be taken for an option. Each Blender gets its own data dir: the first free one of `engine-data`,
`engine-data-2`, ... (the engine allows one server per data dir, and the port file lives there too).

No orphans: stop() ends the process, every engine still running is stopped at interpreter exit (atexit) and by
stop_all_engines() (the add-on's unregister); on Linux the engine also gets SIGTERM when Blender dies without
clean-up (a crash), through PR_SET_PDEATHSIG set by a two-line bootstrap before `engine` runs as with `-m`.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .engine_client import EngineClient
from .install_plan import install_hint

STARTING, READY, EXITED, STOPPED = "starting", "ready", "exited", "stopped"
HOST = "127.0.0.1"
LOG_NAME = "engine.log"
PORT_FILE_NAME = "engine.port"
LOCK_FILE_NAME = "engine.pid"  # held by the engine server (engine/server/datadir.py) for as long as it runs
TOKEN_ENV = "REGIA_ENGINE_TOKEN"
DATA_DIR_SLOTS = 9  # Blender instances at once, each with its own managed engine
TAIL_BYTES = 16_384  # enough of the log for the last traceback

# Runs `engine` as `python -m engine` would, after asking Linux to SIGTERM it when its parent dies (even by SIGKILL).
# argv[1] is the parent's pid, or 0 to skip: the signal follows the *thread* that started the process, so it is set
# only when that thread is the main one, which lives as long as Blender.
BOOTSTRAP = """\
import os, runpy, sys
parent = int(sys.argv.pop(1))
if parent and sys.platform.startswith("linux"):
    import ctypes, signal
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(1)
runpy.run_module("engine", run_name="__main__", alter_sys=True)
"""


class EngineStartError(Exception):
    """The engine cannot start (bad interpreter, unwritable data dir) or ended before it was ready; str() says why
    and what to do."""


@dataclass(frozen=True)
class EngineState:
    """What poll() saw: `state` is starting, ready, exited (on its own; `message` says why) or stopped (by us, or
    never started)."""

    state: str
    base_url: str | None = None
    message: str = ""
    returncode: int | None = None


# ---- interpreter and diagnosis ---------------------------------------------------------------------------------


def interpreter_problem(python: str | os.PathLike[str]) -> str | None:
    """Why `python` cannot run the engine, or None when it is an executable file."""
    path = Path(python).expanduser()
    allowed = "set it to the path of a Python 3.11 executable that has the engine's requirements"
    if not str(python).strip():
        return f"no Python interpreter is set for the engine: {allowed}"
    if path.is_dir():
        inside = next((p for p in (path / "bin" / "python", path / "Scripts" / "python.exe") if p.is_file()), None)
        hint = f" (such as {inside})" if inside else ""
        return f"the engine's Python interpreter {path} is a folder, not an executable: {allowed}{hint}"
    if not path.exists():
        return f"the engine's Python interpreter {path} does not exist: {allowed}"
    if not os.access(path, os.X_OK):
        return f"the engine's Python interpreter {path} is not executable: {allowed}"
    return None


def missing_modules_message(python: str, root: Path, missing: list[str]) -> str:
    """The fix for an interpreter without the engine's packages: Install Engine, or install them (the pinned list
    shipped in the extension, install_plan.REQUIREMENTS_FILE), or use a Python that has them."""
    source = (root / "pyproject.toml").is_file()  # a source checkout; the extension zip carries no pyproject
    fix = f"`{python} -m pip install -e {root}`" if source else install_hint(python)
    others = f" (nor {', '.join(missing[1:])})" if len(missing) > 1 else ""
    venv = root / ".venv" / "bin" / "python"
    such_as = f", such as {venv}" if venv.is_file() else ""
    return (
        f"{python} has no module named {missing[0]}{others}: in Regia's preferences, press Install Engine (it makes "
        f"an environment of its own; Repair mends one it made), or install the engine's requirements into that "
        f"Python with {fix}, or point Regia at a Python that has them{such_as}"
    )


def _missing_modules(log_tail: str) -> list[str]:
    """Modules the engine could not find: from its own check's line (cli.py), else from an ImportError traceback."""
    checked = re.findall(r"has no module named (\w+)(?: \(nor ([\w, ]+)\))?", log_tail)
    if checked:
        first, others = checked[-1]
        return [first, *(name for name in others.split(", ") if name)]
    raised = re.findall(r"No module named '([\w.]+)'", log_tail)
    return [raised[-1].split(".")[0]] if raised else []


def diagnose(log_tail: str, python: str, root: Path, returncode: int | None) -> str:
    """Why the engine ended, from the end of its output: a missing module named with the fix, else the engine's own
    one-line error if it printed one, else the last line it wrote."""
    missing = _missing_modules(log_tail)
    if missing:  # worded for the add-on: the user fixes it in Regia's preferences
        return f"the engine did not start: {missing_modules_message(python, root, missing)}"
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    where = f"exit code {returncode}"
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:  # the engine's own message for the user (cli.py): it already says what to do
        return f"the engine did not start: {errors[-1][len('error: ') :]} ({where})"
    last = lines[-1] if lines else "it printed nothing"
    return f"the engine ended: {last} ({where})"


def _read_tail(path: Path, size: int = TAIL_BYTES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _read_port(path: Path) -> int | None:
    """The port the engine wrote (atomically, "N\\n") once it accepts connections; None before that."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return int(text) if re.fullmatch(r"\d+\n", text) else None


# ---- data dirs -------------------------------------------------------------------------------------------------


def data_dir_in_use(folder: Path) -> bool:
    """Whether an engine server holds this data dir now: it keeps an OS lock on engine.pid while it runs (released
    by the kernel however it ends), so a probe that takes the lock and lets it go at once tells. The lock is the
    engine's (engine/server/datadir.py); this side repeats its few lines because the add-on never imports the
    engine."""
    try:
        fd = os.open(folder / LOCK_FILE_NAME, os.O_RDWR)
    except OSError:
        return False
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows: the engine locks one byte at 1 MiB
            import msvcrt

            os.lseek(fd, 1 << 20, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:
                return True
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            return False
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)


def free_data_dir(base: Path, slots: int = DATA_DIR_SLOTS) -> Path:
    """The first of base, base-2, base-3, ... that no running engine holds (another Blender's managed engine)."""
    for index in range(1, slots + 1):
        folder = base if index == 1 else base.with_name(f"{base.name}-{index}")
        if not data_dir_in_use(folder):
            return folder
    raise EngineStartError(
        f"{slots} Regia engines already run on this machine (in {base} and the folders beside it): "
        "stop one, or use Remote mode to share one engine"
    )


# ---- the engine ------------------------------------------------------------------------------------------------


class ManagedEngine:
    """One engine server on loopback, owned by this process.

    `python`: the interpreter to run it with; `root`: the folder holding `engine/` (the extension's root);
    `data_dir`: the server's blobs, jobs, logs and port file; `device`: auto, cpu, cuda or mps;
    `env`: extra environment variables for the engine (thread counts, say).
    """

    def __init__(
        self,
        python: str | os.PathLike[str],
        root: str | os.PathLike[str],
        data_dir: str | os.PathLike[str],
        device: str = "auto",
        env: dict[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.python = str(Path(python).expanduser()) if str(python).strip() else ""  # Path("") would be "."
        self.root = Path(root).resolve()
        self.base_data_dir = Path(data_dir).expanduser().resolve()
        self.data_dir = self.base_data_dir  # the free slot found at start (free_data_dir)
        self.device = device
        self.extra_env = dict(env or {})
        self.extra_args = list(extra_args)  # more `serve` options, e.g. ["--clip", "ViT-B-32:laion2b_s34b_b79k"]
        self.token = ""
        self.base_url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def port_file(self) -> Path:
        return self.data_dir / PORT_FILE_NAME

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        """The process is alive (starting or ready)."""
        return self._proc is not None and self._proc.poll() is None

    def command(self, parent_pid: int = 0) -> list[str]:
        """The engine's argv: no secret in it, and every value joined to its option (`--name=value`), so a value
        that starts with '-' is never read as an option."""
        options = {"port": "0", "port-file": str(self.port_file), "data-dir": str(self.data_dir), "device": self.device}
        args = ["serve", *(f"--{name}={value}" for name, value in options.items()), *self.extra_args]
        return [self.python, "-c", BOOTSTRAP, str(parent_pid), *args]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
        # Blender's own PYTHONHOME/PYTHONPATH belong to its Python, not the engine's; the root makes `engine` found.
        env.update(PYTHONPATH=str(self.root), PYTHONUNBUFFERED="1", **self.extra_env)
        env[TOKEN_ENV] = self.token  # readable by this user only (/proc/PID/environ), unlike argv
        return env

    def start(self) -> ManagedEngine:
        """Launch the engine and return at once; poll() says when it is ready. Raises EngineStartError when it
        cannot be launched. Starting an engine that runs already does nothing."""
        with self._lock:
            if self.running:
                return self
            problem = interpreter_problem(self.python)
            if problem:
                raise EngineStartError(problem)
            if not (self.root / "engine" / "__main__.py").is_file():
                raise EngineStartError(f"{self.root} holds no engine/ package: set the extension's root folder")
            self.data_dir = free_data_dir(self.base_data_dir)
            self.token = secrets.token_urlsafe(24)
            self.base_url = None
            self._stopped = False
            self._proc = self._launch()
        _register(self)
        return self

    def _launch(self) -> subprocess.Popen[bytes]:
        on_main = threading.current_thread() is threading.main_thread()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.port_file.unlink(missing_ok=True)
            with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
                return subprocess.Popen(
                    self.command(os.getpid() if on_main else 0),
                    cwd=self.root,
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in Blender's terminal is for Blender, not the engine
                )
        except OSError as exc:
            raise EngineStartError(f"cannot start the engine with {self.python}: {exc.strerror or exc}") from None

    def poll(self) -> EngineState:
        """The engine's state now, without waiting: a process poll and at most one small file read."""
        proc = self._proc
        if proc is None or self._stopped:
            return EngineState(STOPPED, returncode=proc.returncode if proc else None)
        returncode = proc.poll()
        if returncode is not None:
            self.base_url = None
            message = diagnose(_read_tail(self.log_path), self.python, self.root, returncode)
            return EngineState(EXITED, message=message, returncode=returncode)
        if self.base_url is None:
            port = _read_port(self.port_file)
            if port is None:
                return EngineState(STARTING)
            self.base_url = f"http://{HOST}:{port}"
        return EngineState(READY, base_url=self.base_url)

    def wait_ready(self, timeout: float = 120.0, interval: float = 0.05) -> str:
        """Block until the engine accepts connections; returns its base URL. Raises EngineStartError when it ends
        first or is not ready in time (it is then left running: stop() it or wait again)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.poll()
            if state.state == READY and state.base_url:
                return state.base_url
            if state.state in (EXITED, STOPPED):
                raise EngineStartError(state.message or "the engine is not running: start() it first")
            if time.monotonic() >= deadline:
                raise EngineStartError(f"the engine was not ready after {timeout:.0f}s: see {self.log_path}")
            time.sleep(interval)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM (a running job is marked interrupted), then SIGKILL after `timeout`; returns the exit code.
        Safe to call twice, or on an engine never started."""
        with self._lock:
            proc = self._proc
            self._stopped = True
            self.base_url = None
            if proc is None:
                return None
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.port_file.unlink(missing_ok=True)
        _unregister(self)
        return proc.returncode

    def client(self, timeout: float | None = None) -> EngineClient:
        """A client for the ready engine, carrying its token (EngineClient's short default timeout unless given)."""
        base_url = self.base_url or self.poll().base_url
        if base_url is None:
            raise EngineStartError("the engine is not ready yet: poll() until it is")
        if timeout is None:
            return EngineClient(base_url, token=self.token)
        return EngineClient(base_url, token=self.token, timeout=timeout)

    def __repr__(self) -> str:
        return f"ManagedEngine(python={self.python!r}, pid={self.pid}, base_url={self.base_url!r})"


# ---- every engine this process started ------------------------------------------------------------------------

_ENGINES: set[ManagedEngine] = set()
_ENGINES_LOCK = threading.Lock()


def _register(engine: ManagedEngine) -> None:
    with _ENGINES_LOCK:
        _ENGINES.add(engine)


def _unregister(engine: ManagedEngine) -> None:
    with _ENGINES_LOCK:
        _ENGINES.discard(engine)


def running_engines() -> list[ManagedEngine]:
    with _ENGINES_LOCK:
        return [engine for engine in _ENGINES if engine.running]


def stop_all_engines(timeout: float = 5.0) -> None:
    """Stop every engine this process started: the add-on's unregister, and interpreter exit."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES)
    for engine in engines:
        engine.stop(timeout)


atexit.register(stop_all_engines)
