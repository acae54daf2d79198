"""Install Engine: make a private Python environment and install the engine's requirements into it, in the
background, with progress, Cancel, a log, Repair and Remove. No bpy: the add-on polls it from a timer.

Every step is a child process (`python -m venv`, then pip) in its own process group, read line by line by the
installer's thread: Blender's main thread only calls start(), poll() and cancel(), which never wait. A marker file
in the environment says whether it is complete; a cancelled or failed install leaves it marked incomplete, and the
next Install goes on from there (pip skips what is installed; its download cache keeps finished downloads).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from .install_plan import PIP_RAW_PROGRESS, InstallPlan, disk_space_problem, requirement_name, venv_python
from .install_progress import PipProgress, error_message

MARKER_NAME = "regia-install.json"
IDLE, RUNNING, DONE, FAILED, CANCELLED = "idle", "running", "done", "failed", "cancelled"
MISSING, INCOMPLETE, OUTDATED, READY = "missing", "incomplete", "outdated", "ready"
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL on Cancel
TAIL_LINES = 40


class InstallError(Exception):
    """Install cannot start (no space, one runs already, a folder that is not an environment); str() says why."""


# ---- the environment's state -----------------------------------------------------------------------------------


def requirements_digest(requirements: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]


def read_marker(venv: Path) -> dict[str, object]:
    try:
        data = json.loads((venv / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_marker(venv: Path, **fields: object) -> None:
    venv.mkdir(parents=True, exist_ok=True)
    tmp = venv / f"{MARKER_NAME}.tmp"
    tmp.write_text(json.dumps(fields, indent=1), encoding="utf-8")
    tmp.replace(venv / MARKER_NAME)


def environment_state(venv: Path, requirements: Sequence[str]) -> str:
    """missing (nothing there), incomplete (cancelled, failed, or its Python is gone), outdated (complete, for
    other pins: Repair updates it) or ready."""
    marker = read_marker(venv)
    if not marker and not venv_python(venv).exists():
        return MISSING
    if not marker.get("complete") or not venv_python(venv).exists():
        return INCOMPLETE
    return READY if marker.get("requirements") == requirements_digest(requirements) else OUTDATED


def installed_python(venv: Path) -> Path | None:
    """The environment's Python when an install completed there (outdated pins included: it still runs)."""
    python = venv_python(venv)
    return python if read_marker(venv).get("complete") and python.exists() else None


def remove_environment(venv: Path) -> None:
    """Delete the environment; refuses a folder that is not one (no marker, no pyvenv.cfg)."""
    if not venv.exists():
        return
    if not any(venv.iterdir()):
        venv.rmdir()
        return
    if not (venv / MARKER_NAME).exists() and not (venv / "pyvenv.cfg").exists():
        raise InstallError(f"{venv} is not an engine environment made by Regia: it was left as it is")
    try:
        shutil.rmtree(venv)
    except OSError as error:
        raise InstallError(
            f"Could not remove {venv} completely ({error.strerror or error}): stop the engine, then press Remove again"
        ) from None


# ---- the run ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallStatus:
    """What poll() saw. `state`: idle, running, done, failed or cancelled; `step` in words; `detail` pip's progress
    ('torch (3 of 15), 120 of 800 MB'); `message` the outcome (for failed: what went wrong and the log)."""

    state: str
    step: str = ""
    detail: str = ""
    message: str = ""
    package_index: int = 0
    package_count: int = 0
    bytes_done: int = 0  # downloaded by this step so far
    file_done: int = 0  # of the file under way
    bytes_total: int = 0  # the file under way's size


class _Cancelled(Exception):
    pass


class _StepFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineInstaller:
    """One Install or Repair run of `plan`: start() returns at once; poll() says how far it is; cancel() stops it."""

    def __init__(self, plan: InstallPlan, env: dict[str, str] | None = None) -> None:
        self.plan = plan
        self.extra_env = dict(env or {})
        self._lock = threading.Lock()
        self._status = InstallStatus(IDLE)
        self._progress: PipProgress | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._log: IO[str] | None = None

    @property
    def log_path(self) -> Path:
        return self.plan.log_path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EngineInstaller:
        """Check the disk, then run in a thread. Raises InstallError when it cannot begin."""
        if self.running:
            raise InstallError("The engine is being installed already")
        problem = disk_space_problem(self.plan.venv, self.plan.needed_bytes)
        if problem:
            raise InstallError(problem)
        self._cancel.clear()
        self._set(InstallStatus(RUNNING, "Starting"))
        self._thread = threading.Thread(target=self._run, name="regia-engine-install", daemon=True)
        self._thread.start()
        return self

    def poll(self) -> InstallStatus:
        """The state now, with pip's progress; never waits."""
        with self._lock:
            status, progress = self._status, self._progress
        if status.state == RUNNING and progress is not None:
            status = replace(
                status,
                detail=progress.line(),
                package_index=progress.index,
                package_count=progress.count,
                bytes_done=progress.bytes_done,
                file_done=progress.file_done,
                bytes_total=progress.file_total,
            )
        return status

    def cancel(self) -> None:
        """Stop the install: its process group gets SIGTERM now (SIGKILL later, from the installer's thread)."""
        self._cancel.set()
        self._signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> InstallStatus:
        """Block until the run ends (scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.poll()

    # -- the installer's thread --

    def _set(self, status: InstallStatus) -> None:
        with self._lock:
            self._status = status

    def _run(self) -> None:
        plan = self.plan
        try:
            plan.log_path.parent.mkdir(parents=True, exist_ok=True)
            with plan.log_path.open("a", encoding="utf-8") as self._log:
                self._write(f"\n=== {'Repair' if plan.repair else 'Install'} {time.strftime('%Y-%m-%d %H:%M:%S')}")
                self._write(f"PyTorch: {plan.torch.label} ({plan.torch.index_url or 'the main index'})")
                try:
                    self._steps()
                except _Cancelled:
                    self._write("=== cancelled")
                    self._set(InstallStatus(CANCELLED, message="Install cancelled: Install Engine goes on from here"))
                except _StepFailed as failed:
                    self._write(f"=== failed: {failed.message}")
                    self._set(InstallStatus(FAILED, message=failed.message))
                else:
                    self._write("=== done")
                    note = f" ({plan.torch.note})" if plan.torch.note else ""
                    self._set(InstallStatus(DONE, message=f"The engine is installed, for {plan.torch.label}{note}"))
        except OSError as error:  # the log or the environment's folder cannot be written
            message = f"Cannot write {error.filename or plan.log_path}: {error.strerror or error}"
            self._set(InstallStatus(FAILED, message=message))
        finally:
            self._log = None
            with self._lock:
                self._progress = None

    def _steps(self) -> None:
        plan = self.plan
        digest = requirements_digest(plan.requirements)
        self._step("Checking the Python that makes the environment")
        self._check_base_python()
        if plan.repair or not plan.python.exists() or not read_marker(plan.venv):  # venv ran to its end once
            self._step("Creating the environment")
            plan.venv.parent.mkdir(parents=True, exist_ok=True)
            self._call(plan.make_venv(), "Could not create the environment")
        write_marker(plan.venv, complete=False, requirements=digest, torch=plan.torch.kind)
        raw = self._pip_version() >= PIP_RAW_PROGRESS
        if plan.upgrade_pip and not raw:
            self._step("Updating pip")
            if self._call(plan.pip_upgrade(), "", required=False) == 0:
                raw = self._pip_version() >= PIP_RAW_PROGRESS
        torch = plan.torch_requirements
        if torch:
            self._step(f"Installing PyTorch for {plan.torch.label}")
            self._pip(plan.pip_install(torch, torch=True, raw_progress=raw), len(torch))
        self._step("Installing the engine's packages")
        self._pip(plan.pip_install(plan.requirements, raw_progress=raw), len(plan.requirements))
        self._step("Checking the installed packages")
        self._verify()
        done = {"torch": plan.torch.kind, "torch_label": plan.torch.label, "python": str(plan.python)}
        write_marker(plan.venv, complete=True, requirements=digest, **done)
        shutil.rmtree(plan.cache_dir, ignore_errors=True)  # finished downloads only matter to a resumed install

    def _step(self, words: str) -> None:
        if self._cancel.is_set():
            raise _Cancelled
        self._write(f"--- {words}")
        with self._lock:
            self._status, self._progress = InstallStatus(RUNNING, words), None

    def _check_base_python(self) -> None:
        want = self.plan.python_version
        code = "import sys, venv; print('%d.%d' % sys.version_info[:2])"
        out = self._output([self.plan.base_python, "-c", code])
        if out is None:
            raise _StepFailed(
                f"{self.plan.base_python} cannot make the engine's environment (see the log: {self.plan.log_path}):"
                " choose another Python for the install, or leave it empty to use Blender's own"
            )
        out = out.splitlines()[-1] if out else ""
        if tuple(int(n) for n in re.findall(r"\d+", out)) != want:
            raise _StepFailed(
                f"{self.plan.base_python} is Python {out}, and the engine needs Python {'.'.join(map(str, want))}: "
                "choose a Python 3.11 for the install, or leave it empty to use Blender's own"
            )

    def _pip_version(self) -> tuple[int, ...]:
        out = self._output([str(self.plan.python), "-m", "pip", "--version"]) or ""
        found = re.match(r"pip (\d+)\.(\d+)", out)
        return (int(found.group(1)), int(found.group(2))) if found else (0,)

    def _verify(self) -> None:
        """Every pinned distribution is installed at its version (what pip reports, without importing torch)."""
        names = json.dumps([requirement_name(line) for line in self.plan.requirements])
        code = (
            "import json, sys\nfrom importlib import metadata\nmissing = []\n"
            f"for name in json.loads({names!r}):\n"
            "    try:\n        metadata.version(name)\n    except metadata.PackageNotFoundError:\n"
            "        missing.append(name)\nprint(' '.join(missing))\nsys.exit(1 if missing else 0)\n"
        )
        out = self._output([str(self.plan.python), "-c", code])
        if out is None or out:
            raise _StepFailed(
                f"The install finished, yet {out or 'some packages'} cannot be found in the environment: press "
                f"Repair. The log: {self.plan.log_path}"
            )

    def _pip(self, args: list[str], count: int) -> None:
        progress = PipProgress(count=count)
        with self._lock:
            self._progress = progress
        tail: list[str] = []
        if self._call(args, "", required=False, progress=progress, tail=tail) != 0:
            raise _StepFailed(error_message(progress.errors, "\n".join(tail), self._index(args), self.log_path))

    @staticmethod
    def _index(args: list[str]) -> str | None:
        return args[args.index("--index-url") + 1] if "--index-url" in args else None

    def _output(self, args: list[str]) -> str | None:
        """A short command's stripped output, or None when it failed."""
        lines: list[str] = []
        code = self._call(args, "", required=False, tail=lines)
        return "\n".join(lines).strip() if code == 0 else None

    def _call(
        self,
        args: list[str],
        failure: str,
        *,
        required: bool = True,
        progress: PipProgress | None = None,
        tail: list[str] | None = None,
    ) -> int:
        """Run one child to its end, each line to the log (and the progress); raises _Cancelled on Cancel and
        _StepFailed(failure) when a required step fails."""
        if self._cancel.is_set():
            raise _Cancelled
        self._write("$ " + subprocess.list2cmdline(args))
        try:
            proc = self._popen(args)
        except OSError as error:
            if not required:
                self._write(f"cannot run it: {error}")
                return -1
            raise _StepFailed(f"{failure}: cannot run {args[0]} ({error.strerror or error})") from None
        with self._lock:
            self._proc = proc
        if self._cancel.is_set():  # Cancel came between the check above and the process existing
            self._signal(signal.SIGTERM)
        killer = threading.Thread(target=self._kill_later, args=(proc,), daemon=True)
        killer.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("Progress "):  # thousands of raw progress lines say nothing in the log
                self._write(line.rstrip("\n"))
            if progress is not None:
                progress.feed(line)
            if tail is not None:
                tail.append(line.rstrip("\n"))
                del tail[:-TAIL_LINES]
        code = proc.wait()
        with self._lock:
            self._proc = None
        if self._cancel.is_set():
            raise _Cancelled
        if code != 0 and required:
            raise _StepFailed(f"{failure} (exit code {code}). The log: {self.log_path}")
        return code

    def _popen(self, args: list[str]) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
        env.update(PYTHONUNBUFFERED="1", PYTHONNOUSERSITE="1", PYTHONIOENCODING="utf-8", **self.extra_env)
        group = {"start_new_session": True} if os.name == "posix" else {"creationflags": 0x00000200}
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            **group,  # its own process group: Cancel ends pip and whatever it started
        )

    def _signal(self, sig: int) -> None:
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            if os.name == "posix":
                os.killpg(proc.pid, sig)
            else:  # pragma: no cover - Windows has no process groups to signal
                proc.kill()

    def _kill_later(self, proc: subprocess.Popen[str]) -> None:
        """After Cancel, SIGKILL the group if SIGTERM did not end it in KILL_GRACE seconds."""
        while proc.poll() is None:
            if self._cancel.wait(0.2):
                try:
                    proc.wait(KILL_GRACE)
                except subprocess.TimeoutExpired:
                    self._signal(getattr(signal, "SIGKILL", signal.SIGTERM))  # Windows has no SIGKILL
                return

    def _write(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()


def default_base_python() -> str:
    """The Python running this code: Blender's own inside Blender."""
    return sys.executable
