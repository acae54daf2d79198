"""Decompression bombs against the engine server: its peak memory, this tree against another checkout, side by side.

What is measured, for each engine source tree given (`--baseline DIR` adds one, e.g. a `git worktree` of the commit
before the hardening), round robin:
- a fresh `python -m engine serve` on an empty data dir, started from that tree; its peak RSS (VmHWM) once it
  listens: the idle figure;
- 8 uploads of ~120-byte PNGs that claim 11585x11585 RGB (each a different size, so a different blob);
- a job whose style image is one of them (if the server stored it), else one naming a whole 17 KB 1-bit 11585x11585
  PNG planted in the blob store (as a run with larger limits would have left it);
- the peak RSS again once that job has ended, and what the server answered.
Table: idle and after peak RSS in MB, the growth, and the answers.

Run: `.venv/bin/python bench/bomb_memory.py --baseline /tmp/regia-before [--rounds 2]`
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import pngkit
import serverkit
from step_time import cpu_model

BOMBS = 8
SIDE = 11585


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def one_round(root: Path, work: Path) -> dict[str, object]:
    data_dir = work / "data"
    serverkit.REPO = root  # serverkit starts `python -m engine` from this tree
    server = serverkit.start_server(data_dir)
    try:
        client = server.client(timeout=600)
        time.sleep(1.0)
        idle = peak_mb(server.proc.pid)
        answers = []
        stored = None
        for index in range(BOMBS):
            bomb = pngkit.header_only_bomb(SIDE - index, SIDE)
            name = hashlib.sha256(bomb).hexdigest()
            response = client.put(f"/blobs/{name}", content=bomb, headers={"content-type": "image/png"})
            answers.append(response.status_code)
            if response.status_code in (200, 201):
                stored = name
        if stored is None:  # refused at upload: plant a whole bomb, as an earlier run with larger limits left it
            bomb = pngkit.complete_bomb()
            stored = hashlib.sha256(bomb).hexdigest()
            (data_dir / "blobs" / f"{stored}.png").write_bytes(bomb)
        refs = {n: serverkit.upload_png(client, p) for n, p in serverkit.IMAGES.items()}
        spec = serverkit.job_spec(refs, steps=3)
        spec["regions"][0]["guides"][0]["image"] = f"blob:{stored}"
        response = client.post("/jobs", json=spec)
        if response.status_code == 202:
            final = serverkit.wait_final(client, response.json()["id"], timeout=600)
            job = final["state"] + (f": {final['error'][:60]}" if final["error"] else "")
        else:
            job = f"HTTP {response.status_code}"
        after = peak_mb(server.proc.pid)
        return {"idle": idle, "after": after, "uploads": sorted(set(answers)), "job": job}
    finally:
        if server.alive():
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="append", default=[], help="another engine source tree to compare")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trees = {
        "this tree": serverkit.REPO,
        **{f"baseline {i + 1}": Path(p).resolve() for i, p in enumerate(args.baseline)},
    }
    rows: dict[str, list[dict[str, object]]] = {label: [] for label in trees}
    for _ in range(args.rounds):
        for label, root in trees.items():
            with tempfile.TemporaryDirectory() as work:
                rows[label].append(one_round(root, Path(work)))
    print(f"machine: {cpu_model()}; {args.rounds} rounds, medians; peak RSS is VmHWM of the server process")
    print("| tree | idle peak MB | after bombs + job MB | growth MB | uploads answered | job |")
    print("|---|---:|---:|---:|---|---|")
    for label, results in rows.items():
        idle = statistics.median(r["idle"] for r in results)
        after = statistics.median(r["after"] for r in results)
        print(
            f"| {label} ({trees[label]}) | {idle:.0f} | {after:.0f} | {after - idle:.0f} | "
            f"{results[-1]['uploads']} | {results[-1]['job']} |"
        )


if __name__ == "__main__":
    main()
