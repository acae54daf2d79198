"""addon/engine_process.py: the managed local engine starts the real server, answers with its token, never blocks
the caller, explains an interpreter it cannot use, and leaves no process behind (stop, stop_all, exit, crash).

Also `python -m engine serve` under an interpreter without torch: one line with the fix, at once (engine/cli.py).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from importrules import imported_modules
from regia_package import addon_module

pytestmark = pytest.mark.slow  # engine server processes

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "addon" / "engine_process.py"
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # a loaded 2-core machine: one intra-op thread
READY_TIMEOUT = 120.0  # importing torch on a busy machine
POLL_BUDGET = 0.05  # seconds: poll() runs on Blender's main thread, from a timer (it takes well under 1 ms)


engine_process = addon_module("engine_process")
engine_client = addon_module("engine_client")
ManagedEngine = engine_process.ManagedEngine
EngineStartError = engine_process.EngineStartError


def pid_alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a zombie has ended; only its exit status is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {timeout}s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def python_without_torch(tmp_path_factory) -> str:
    """A bare venv of this Python: the standard library only, so no torch, fastapi or uvicorn."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True, timeout=60)
    assert probe.returncode != 0, "the bare venv should not see torch"
    return str(python)


def managed(tmp_path: Path, python: str = sys.executable, **kwargs) -> ManagedEngine:
    return ManagedEngine(python, REPO, tmp_path / "data", device="cpu", env=THREADS, **kwargs)


# ---- the real engine ----------------------------------------------------------------------------------------


def poll_until_ready(engine) -> tuple[list[str], object, float]:
    """Poll as a Blender timer would, timing every call (a garbage collection is not poll's): (states, last state,
    the slowest call in seconds)."""
    states, slowest = [], 0.0
    while True:
        gc.disable()
        before = time.perf_counter()
        state = engine.poll()
        slowest = max(slowest, time.perf_counter() - before)
        gc.enable()
        states.append(state.state)
        if state.state != "starting":
            return states, state, slowest
        assert len(states) < READY_TIMEOUT / 0.02, "not ready in time"
        time.sleep(0.02)


@pytest.mark.perf
def test_start_and_poll_never_keep_blenders_main_thread_waiting(tmp_path):
    engine = managed(tmp_path)
    started = time.perf_counter()
    engine.start()
    try:
        assert time.perf_counter() - started < 0.5, "start() must not wait for the engine"
        _, state, slowest = poll_until_ready(engine)
        assert state.state == "ready" and slowest < POLL_BUDGET, f"poll() took {slowest * 1000:.1f} ms"
    finally:
        engine.stop()


def test_start_poll_ready_token_and_stop_all(tmp_path):
    engine = managed(tmp_path)
    engine.start()
    try:
        assert engine.running and engine.pid
        states, state, _ = poll_until_ready(engine)
        assert states[0] == "starting" and state.state == "ready", (states[-3:], state)
        assert state.base_url == engine.base_url and state.base_url.startswith("http://127.0.0.1:")
        assert engine.wait_ready(1.0) == state.base_url

        assert len(engine.token) >= 32
        health = engine.client(timeout=10).health()
        assert health["device"] == "cpu"
        with pytest.raises(engine_client.EngineError) as caught:
            engine_client.EngineClient(engine.base_url, timeout=10).health()
        assert caught.value.status == 401
        assert engine.log_path.parent == tmp_path / "data" and engine.log_path.exists()
        assert engine in engine_process.running_engines()
    finally:
        pid = engine.pid
        engine_process.stop_all_engines()
    assert not pid_alive(pid), "the engine outlived stop_all_engines()"
    assert not engine.running and engine.poll().state == "stopped"
    assert not engine.port_file.exists() and engine not in engine_process.running_engines()
    assert engine.stop() == engine.poll().returncode == 0, "a second stop() is harmless"


def test_stop_and_poll_before_start_are_harmless(tmp_path):
    engine = managed(tmp_path)
    assert engine.stop() is None and engine.poll().state == "stopped" and not engine.running
    with pytest.raises(EngineStartError, match="not ready"):
        engine.client()
    with pytest.raises(EngineStartError, match="start"):
        engine.wait_ready(0.1)


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from regia_package import addon_module
    engine_process = addon_module("engine_process")
    engine = engine_process.ManagedEngine(sys.executable, sys.argv[2], sys.argv[3], device="cpu",
                                          env={"OMP_NUM_THREADS": "1"})
    engine.start()
    engine.wait_ready(120)
    print(engine.pid, flush=True)
    if sys.argv[4] == "exit":
        sys.exit(0)  # no stop(): atexit must do it
    time.sleep(300)  # the test kills this process
    """
)


def run_child(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    """A process that starts an engine, prints its pid, then exits (`exit`) or waits to be killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(REPO / "tests"), str(REPO), str(tmp_path / "data"), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()  # blocks until the engine is ready (the child waits up to 120 s)
    assert line.strip().isdigit(), f"the child printed {line!r} (exit code {child.poll()})"
    return child, int(line)


def test_an_exiting_parent_stops_its_engine(tmp_path):
    child, pid = run_child(tmp_path, "exit")
    try:
        assert child.wait(30) == 0
        assert not pid_alive(pid), "the engine outlived the process that started it"
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_parent_does_not_leave_its_engine_running(tmp_path):
    """SIGKILL runs no atexit: Blender crashing must still not leave an engine holding the GPU."""
    child, pid = run_child(tmp_path, "wait")
    child.kill()
    child.wait()
    try:
        wait_until(lambda: not pid_alive(pid), 30.0, "the engine of a killed parent ends")
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)


# ---- interpreters it cannot use -----------------------------------------------------------------------------


def test_paths_that_are_not_an_interpreter_are_refused_by_name(tmp_path):
    not_executable = tmp_path / "python"
    not_executable.write_text("#!/bin/sh\n")
    folder = tmp_path / "venv"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").symlink_to(sys.executable)
    cases = {
        str(tmp_path / "missing" / "python3"): "does not exist",
        str(not_executable): "is not executable",
        str(folder): f"is a folder, not an executable: set it to the path of a Python 3.11 executable "
        f"that has the engine's requirements (such as {folder / 'bin' / 'python'})",
        "": "no Python interpreter is set",
    }
    for python, words in cases.items():
        engine = managed(tmp_path, python)
        with pytest.raises(EngineStartError) as caught:
            engine.start()
        message = str(caught.value)
        assert words in message and python in message, message
        assert "Python 3.11 executable that has the engine's requirements" in message, message
        assert engine.pid is None and engine.poll().state == "stopped"


def test_a_root_without_the_engine_is_refused(tmp_path):
    engine = ManagedEngine(sys.executable, tmp_path, tmp_path / "data")
    with pytest.raises(EngineStartError, match="holds no engine/ package"):
        engine.start()


def test_an_interpreter_without_torch_exits_at_once_saying_how_to_fix_it(tmp_path, python_without_torch):
    engine = managed(tmp_path, python_without_torch)
    engine.start()
    try:
        wait_until(lambda: engine.poll().state != "starting", 30.0, "the engine without torch ends")
        state = engine.poll()
    finally:
        engine.stop()
    assert state.state == "exited" and state.returncode == 2, state
    message = state.message
    assert f"{python_without_torch} has no module named torch" in message, message
    assert f"`{python_without_torch} -m pip install -e {REPO}`" in message, message
    assert "point Regia at a Python that has them" in message, message
    if (REPO / ".venv" / "bin" / "python").is_file():
        assert f"such as {REPO / '.venv' / 'bin' / 'python'}" in message, message
    assert "Traceback" not in message and "\n" not in message
    with pytest.raises(EngineStartError, match="no module named torch"):
        engine.start().wait_ready(30)
    engine.stop()


def test_serve_without_torch_fails_fast_with_one_line(tmp_path, python_without_torch):
    """engine/cli.py checks the server's packages before importing any: exit 2, one line, no traceback."""
    started = time.monotonic()
    done = subprocess.run(
        [python_without_torch, "-m", "engine", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 10, "the check must come before any slow import"
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert f"{python_without_torch} has no module named torch (nor numpy," in lines[0]
    assert "fastapi" in lines[0] and "uvicorn" in lines[0] and "-m pip install" in lines[0]
    assert not (tmp_path / "data").exists(), "nothing is created before the check"


def test_a_traceback_is_turned_into_the_missing_module_and_its_fix(tmp_path):
    root = tmp_path / "extension"  # an installed extension: no pyproject, so pip gets the shipped requirements file
    (root / "engine").mkdir(parents=True)
    tail = "Traceback (most recent call last):\n  File x.py, line 1\nModuleNotFoundError: No module named 'fastapi'\n"
    message = engine_process.diagnose(tail, "/opt/py/bin/python", root, 1)
    assert "/opt/py/bin/python has no module named fastapi: " in message, message
    assert "`/opt/py/bin/python -m pip install -r " in message and "such as" not in message
    assert "Install Engine" in message
    other = engine_process.diagnose("starting\nRuntimeError: CUDA driver too old\n", "py", root, 1)
    assert other == "the engine ended: RuntimeError: CUDA driver too old (exit code 1)"
    own = engine_process.diagnose('{"event": "x"}\nerror: cannot listen on 127.0.0.1:80: denied\n', "py", root, 1)
    assert own == "the engine did not start: cannot listen on 127.0.0.1:80: denied (exit code 1)"
    assert engine_process.diagnose("", "py", root, -9) == "the engine ended: it printed nothing (exit code -9)"


def test_the_module_imports_only_the_standard_library():
    names = imported_modules(MODULE)
    assert names <= set(sys.stdlib_module_names), names - set(sys.stdlib_module_names)
