"""Engine server: status latency under load, and the server's wall time for a job against the CLI's.

What is measured
- Latency: a real `python -m engine serve` subprocess runs a long style job (256x256 by default,
  so that the optimiser keeps the CPU busy the whole time), and one client polls GET /jobs/{id}
  back to back, then GET /health, a few hundred times each. Every poll must answer 200 with the
  job `running`. Table: p50, p90, p99 and max in ms. Target: p99 < 50 ms (a UI polling the server
  never stalls while a job runs).
- Server against CLI: the same job (128x128, 60 steps, an init and two feathered style regions)
  submitted to the server and run by `python -m engine run`, alternately, `--rounds` times each
  (after one warm-up run of the job on the server, printed apart: a server pays its first-job
  costs once, the CLI in every process). Three rows:
  - end to end: POST /jobs to the first status that says `done` (polled every 50 ms, as the
    add-on does; blobs uploaded beforehand, as the add-on uploads them once) against the CLI
    process's wall time;
  - job: the same server time against the CLI's wall time minus its start-up (the median of
    runs of a process that only imports what `engine run` imports);
  - engine run: the status's `finished - started` against the CLI's own run, from its
    spec.resolved.json (written once the job is prepared) to its result.png (written after the
    last step). This row carries the target: the server runs a job at most 5% slower than the
    CLI (<= 1.05x). Its server figure may include preparing the job, which only favours the CLI.
- Both the server and the CLI run with the same environment: `--threads N` sets OMP_NUM_THREADS
  and MKL_NUM_THREADS for both (default 1: the figures are stable on a shared 2-core machine).

Run: `.venv/bin/python bench/server_latency.py [--polls 300] [--rounds 3] [--threads 1]`
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import jobkit
import serverkit
from step_time import cpu_model  # same machine line as the step benchmark

REPO = serverkit.REPO

LATENCY_SIZE = 256
COMPARE_SIZE, COMPARE_STEPS = 128, 60
P99_TARGET_MS, RATIO_TARGET = 50.0, 1.05
POLL_INTERVAL = 0.05
CLI_IMPORTS = "import engine.cli, engine.device, engine.job, engine.optimize, engine.outputs, engine.refs, engine.spec"


def machine_line(health: dict[str, Any], threads: int) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {health.get('torch')}, server device "
        f"{health.get('device')}, OMP/MKL threads {threads}, python {platform.python_version()}, load average {load}"
    )


# ---- the job --------------------------------------------------------------------------------


def images(size: int) -> dict[str, np.ndarray]:
    return {
        "init": jobkit.astronaut(size),
        "left": jobkit.rect_mask(size, 0, 0, size, size // 2),
        "right": jobkit.rect_mask(size, 0, size // 2, size, size),
        "brick": jobkit.brick_texture(96),
        "grass": jobkit.grass_texture(96),
    }


def job_spec(refs: dict[str, str], size: int, steps: int) -> dict[str, Any]:
    """An init and two feathered style regions, as in the tests."""

    def region(name: str, style: str) -> dict[str, Any]:
        return {"name": name, "mask": refs[name], "feather": 4, "guides": [{"kind": "style", "image": refs[style]}]}

    regions = [region("left", "brick"), region("right", "grass")]
    return jobkit.spec(size, steps, init={"image": refs["init"]}, regions=regions, losses={"tv": 0.1})


def upload_all(client: httpx.Client, pictures: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: serverkit.upload_png(client, pixels) for name, pixels in pictures.items()}


# ---- latency --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed_polls(client: httpx.Client, path: str, count: int, check) -> list[float]:
    """Milliseconds per GET, back to back."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text)
        check(response.json())
    return times


def measure_latency(server: serverkit.Server, polls: int) -> dict[str, list[float]]:
    client = server.client()
    refs = upload_all(client, images(LATENCY_SIZE))
    job_id = serverkit.submit(client, job_spec(refs, LATENCY_SIZE, 100_000))["id"]
    serverkit.wait_running(client, job_id, min_step=2, timeout=120)

    def running(status: dict[str, Any]) -> None:
        assert status["state"] == "running", status

    try:
        return {
            "GET /jobs/{id}": timed_polls(client, f"/jobs/{job_id}", polls, running),
            "GET /health": timed_polls(client, "/health", polls, lambda health: None),
            "GET /jobs/{id} (again)": timed_polls(client, f"/jobs/{job_id}", polls, running),
        }
    finally:
        client.post(f"/jobs/{job_id}/cancel")
        serverkit.wait_final(client, job_id, timeout=60)


def latency_table(samples: dict[str, list[float]]) -> str:
    lines = [
        f"### Latency while a {LATENCY_SIZE}x{LATENCY_SIZE} style job runs (target p99 < {P99_TARGET_MS:.0f} ms)",
        "",
        "| endpoint | polls | p50 ms | p90 ms | p99 ms | max ms | p99 target |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, times in samples.items():
        p99 = percentile(times, 99)
        lines.append(
            f"| {name} | {len(times)} | {percentile(times, 50):.1f} | {percentile(times, 90):.1f} | {p99:.1f} "
            f"| {max(times):.1f} | {'ok' if p99 < P99_TARGET_MS else 'MISSED'} |"
        )
    return "\n".join(lines)


# ---- server against CLI ---------------------------------------------------------------------


def iso_seconds(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def server_times(client: httpx.Client, spec: dict[str, Any]) -> tuple[float, float]:
    """(POST /jobs to the first `done` status, the status's finished - started)."""
    start = time.perf_counter()
    job_id = serverkit.submit(client, spec)["id"]
    while True:
        status = serverkit.status_of(client, job_id)
        if status["state"] in serverkit.FINAL_STATES:
            break
        time.sleep(POLL_INTERVAL)
    wall = time.perf_counter() - start
    assert status["state"] == "done", status
    return wall, iso_seconds(status["finished"]) - iso_seconds(status["started"])


def process_wall(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    return elapsed


def cli_run_seconds(out: Path) -> float:
    """The CLI writes spec.resolved.json after preparing the job and result.png after its last step."""
    return (out / "result.png").stat().st_mtime_ns / 1e9 - (out / "spec.resolved.json").stat().st_mtime_ns / 1e9


def compare(server: serverkit.Server, folder: Path, rounds: int, env: dict[str, str]) -> dict[str, list[float]]:
    pictures = images(COMPARE_SIZE)
    files = {name: f"{name}.png" for name in pictures}
    for name, pixels in pictures.items():
        jobkit.save(folder / files[name], pixels)
    spec_path = jobkit.write_spec(folder, job_spec(files, COMPARE_SIZE, COMPARE_STEPS))
    client = server.client()
    spec = job_spec(upload_all(client, pictures), COMPARE_SIZE, COMPARE_STEPS)
    times: dict[str, list[float]] = {key: [] for key in ("server wall", "server run", "cli wall", "cli run", "imports")}
    times["server first job"] = list(server_times(client, spec))  # warm-up: a server pays first-job costs once
    for index in range(rounds):
        wall, run = server_times(client, spec)
        times["server wall"].append(wall)
        times["server run"].append(run)
        out = folder / f"out{index}"
        times["cli wall"].append(process_wall(serverkit.engine_command("run", spec_path, "--out", out, "--quiet"), env))
        times["cli run"].append(cli_run_seconds(out))
        times["imports"].append(process_wall([sys.executable, "-c", CLI_IMPORTS], env))
    return times


def compare_table(times: dict[str, list[float]], rounds: int) -> str:
    med = {key: statistics.median(values) for key, values in times.items()}
    runs = {key: "/".join(f"{t:.2f}" for t in values) for key, values in times.items()}
    rows = [
        # (measure, server key or value, CLI key or value, what the CLI figure is)
        ("end to end", "server wall", "cli wall", "process wall, start-up included"),
        ("job", "server wall", None, "process wall - imports (median)"),
        ("engine run", "server run", "cli run", "spec.resolved.json to result.png"),
    ]
    lines = [
        f"### Server against CLI: {COMPARE_SIZE}x{COMPARE_SIZE}, {COMPARE_STEPS} steps, two style regions, "
        f"{rounds} alternating rounds (target: server <= {RATIO_TARGET}x CLI on the engine run)",
        "",
        "| measure | server s (median; runs) | CLI s (median; runs) | CLI figure | server / CLI |",
        "|---|---:|---:|---|---:|",
    ]
    for measure, server_key, cli_key, what in rows:
        server = med[server_key]
        cli = med[cli_key] if cli_key else med["cli wall"] - med["imports"]
        cli_runs = runs[cli_key] if cli_key else f"imports {runs['imports']}"
        server_label = "POST to `done`" if server_key == "server wall" else "status finished - started"
        verdict = f" ({'ok' if server / cli <= RATIO_TARGET else 'MISSED'})" if measure == "engine run" else ""
        lines.append(
            f"| {measure} | {server:.2f}; {runs[server_key]} ({server_label}) | {cli:.2f}; {cli_runs} | {what} "
            f"| {server / cli:.3f}x{verdict} |"
        )
    warm_up_wall, warm_up_run = times["server first job"]
    lines += ["", f"server warm-up run (not in the table): {warm_up_wall:.2f} s to done, {warm_up_run:.2f} s run"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=300, help="GETs per endpoint in the latency table")
    parser.add_argument("--rounds", type=int, default=3, help="server and CLI runs each, alternating")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads for the server and the CLI")
    args = parser.parse_args()
    threads = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env = {**os.environ, **threads}  # the same for the server and the CLI

    with (
        tempfile.TemporaryDirectory(prefix="regia-bench-") as tmp,
        serverkit.serving(Path(tmp) / "data", env=env) as server,
    ):
        health = server.client().get("/health").json()
        print(machine_line(health, args.threads), flush=True)
        print()
        print(latency_table(measure_latency(server, args.polls)), flush=True)
        print()
        print(compare_table(compare(server, Path(tmp) / "cli", args.rounds, env), args.rounds), flush=True)


if __name__ == "__main__":
    main()
