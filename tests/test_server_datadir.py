"""One server per data dir (a lock naming its PID), each Blender's managed engine in a data dir of its own, secrets
out of argv, a private data dir, and nothing half-made left from a crash."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import jobkit
import pytest
import serverkit
from serverkit import check_errors, submit, upload_png, wait_running
from test_engine_process import engine_process, pid_alive

pytestmark = pytest.mark.slow  # engine server processes

DASH_TOKEN = "-x" + "a" * 30  # secrets.token_urlsafe gives one like it in 1 of 64 starts


def run_serve(*args, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        serverkit.engine_command("serve", "--port", 0, *args),
        cwd=jobkit.REPO,
        env={**serverkit.engine_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_second_server_on_a_data_dir_in_use_exits_2_naming_the_pid(tmp_path):
    data_dir = tmp_path / "data"
    first = serverkit.start_server(data_dir)
    try:
        client = first.client()
        refs = {name: upload_png(client, pixels) for name, pixels in serverkit.IMAGES.items()}
        job = submit(client, serverkit.job_spec(refs, steps=serverkit.LONG))
        wait_running(client, job["id"])
        started = time.monotonic()
        second = run_serve("--data-dir", data_dir)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"PID {first.proc.pid}" in lines[0] and "engine.pid" in lines[0], lines
        assert time.monotonic() - started < 30  # refused before the slow imports
        status = serverkit.status_of(client, job["id"])
        assert status["state"] == "running" and first.alive(), status  # the first one's job goes on
        assert (data_dir / "engine.pid").read_text().strip() == str(first.proc.pid)
    finally:
        first.kill()  # a crash: the lock goes with the process, the PID stays written in the file
    again = serverkit.start_server(data_dir)
    try:
        assert serverkit.status_of(again.client(), job["id"])["state"] == "interrupted"
    finally:
        again.stop()


def test_each_blender_gets_its_own_managed_engine_and_no_secret_is_in_argv(tmp_path, monkeypatch):
    base = tmp_path / "engine-data"
    env = {"OMP_NUM_THREADS": "1"}
    first = engine_process.ManagedEngine(sys.executable, jobkit.REPO, base, device="cpu", env=env)
    second = engine_process.ManagedEngine(sys.executable, jobkit.REPO, base, device="cpu", env=env)
    try:
        first.start().wait_ready(serverkit.START_TIMEOUT)
        monkeypatch.setattr(engine_process.secrets, "token_urlsafe", lambda _: DASH_TOKEN)
        second.start().wait_ready(serverkit.START_TIMEOUT)
        assert first.data_dir == base and second.data_dir == base.with_name("engine-data-2")
        assert second.token == DASH_TOKEN
        assert second.client(timeout=30).health()["device"] == "cpu"  # the token that looks like an option works
        for engine in (first, second):
            argv = Path(f"/proc/{engine.pid}/cmdline").read_bytes().split(b"\0")
            assert not any(engine.token.encode() in arg for arg in argv), argv
            options = [arg for arg in argv if arg.startswith(b"--")]
            assert options and all(b"=" in arg for arg in options), options
            environ = Path(f"/proc/{engine.pid}/environ").read_bytes().split(b"\0")
            assert f"REGIA_ENGINE_TOKEN={engine.token}".encode() in environ
    finally:
        pids = [first.pid, second.pid]
        engine_process.stop_all_engines()
    assert not any(pid and pid_alive(pid) for pid in pids)
    third = engine_process.ManagedEngine(sys.executable, jobkit.REPO, base, device="cpu")
    assert engine_process.free_data_dir(third.base_data_dir) == base  # both stopped: the first slot is free again


def test_a_token_file_readable_by_others_is_refused(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    token_file.chmod(0o644)
    refused = run_serve("--data-dir", tmp_path / "data", "--token-file", token_file, timeout=60)
    assert refused.returncode == 2 and "--token-file" in refused.stderr and "chmod 600" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_loose_data_dir_is_made_private_and_crash_leftovers_are_removed(tmp_path):
    data_dir = tmp_path / "data"
    job_dir = data_dir / "jobs" / "j20261126T140102-3fa9c1d2"
    job_dir.mkdir(parents=True)
    (job_dir / "spec.json").write_text(json.dumps(jobkit.spec(16, 1)))
    leftovers = [job_dir / ".status.json.k2j3.tmp", data_dir / "jobs" / ".new-j20261126T140103-00000000"]
    leftovers[1].mkdir()
    (leftovers[1] / "spec.json").write_text("{}")
    (data_dir / "blobs").mkdir()
    leftovers.append(data_dir / "blobs" / f".{'0' * 64}.png.x1y2.tmp")
    for path in leftovers[::2]:
        path.write_bytes(b"half")
    os.chmod(data_dir, 0o755)
    os.chmod(job_dir / "spec.json", 0o644)
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    token_file.chmod(0o600)
    with serverkit.serving(data_dir, "--token-file", token_file) as server:
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(job_dir / "spec.json").st_mode) == 0o600
        assert not any(path.exists() for path in leftovers), [p for p in leftovers if p.exists()]
        assert "readable by others: now 0700" in server.output() and "half-made" in server.output()
        check_errors(server.client(auth=False).get("/health"), 401, "Authorization")
        server.token = "file-token"
        assert server.client().get("/health").status_code == 200
    with serverkit.serving(
        tmp_path / "data2", env={**serverkit.engine_env(), "REGIA_ENGINE_TOKEN": "env-token"}
    ) as srv:
        check_errors(srv.client(auth=False).get("/health"), 401, "Authorization")
        srv.token = "env-token"
        assert srv.client().get("/health").status_code == 200


def test_sigterm_keeps_the_lock_file_but_lets_go_of_the_lock(tmp_path):
    data_dir = tmp_path / "data"
    server = serverkit.start_server(data_dir)
    assert server.stop(signal.SIGTERM) == 0
    assert (data_dir / "engine.pid").exists() and not engine_process.data_dir_in_use(data_dir)


@pytest.mark.parametrize("value", ["-starts-with-a-dash", "--data-dir=/elsewhere"])
def test_option_values_are_never_read_as_options(tmp_path, value):
    engine = engine_process.ManagedEngine(sys.executable, jobkit.REPO, tmp_path / value, device="cpu")
    options = engine.command()[engine.command().index("serve") + 1 :]
    assert f"--data-dir={engine.data_dir}" in options
    assert all(arg.startswith("--") and "=" in arg for arg in options), options
