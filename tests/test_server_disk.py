"""A full disk, for real: the server's data dir on a 24 MB tmpfs that the test fills. Uploads and submissions answer
507 "no space left on device" and leave nothing half-made; a running job fails saying so, and the reason is still
there after a restart; once space is freed everything works again. Needs root to mount (CI runs as root)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import jobkit
import pytest
import serverkit
from serverkit import check_errors, submit, upload_png, wait_final, wait_running

pytestmark = pytest.mark.slow  # engine server processes


@pytest.fixture
def small_disk(tmp_path) -> Path:
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_reported_and_nothing_is_half_made(small_disk):
    data_dir = small_disk  # the data dir is the whole small disk; the port file and output live outside it
    server = serverkit.start_server(data_dir)
    try:
        client = server.client()
        refs = {name: upload_png(client, pixels) for name, pixels in serverkit.IMAGES.items()}
        job = submit(client, serverkit.job_spec(refs, steps=serverkit.LONG, preview_every=1))
        wait_running(client, job["id"], min_step=2)
        filler = fill(data_dir)

        failed = wait_final(client, job["id"])  # its next preview cannot be written
        assert failed["state"] == "failed" and "no space left on device" in failed["error"], failed
        on_disk = json.loads((data_dir / "jobs" / job["id"] / "status.json").read_text())
        assert on_disk["state"] == "failed" and on_disk["error"] == failed["error"], on_disk

        data = serverkit.png(jobkit.coffee(200))
        digest = serverkit.sha256(data)
        response = client.put(f"/blobs/{digest}", content=data, headers={"content-type": "image/png"})
        error = check_errors(response, 507)[0]
        assert "no space left on device" in error["message"] and error["allowed"], error
        assert client.head(f"/blobs/{digest}").status_code == 404

        before = sorted(p.name for p in (data_dir / "jobs").iterdir())
        check_errors(client.post("/jobs", json=serverkit.job_spec(refs, steps=2)), 507)
        assert sorted(p.name for p in (data_dir / "jobs").iterdir()) == before  # no folder without status.json
        for folder in (data_dir / "jobs").iterdir():
            assert (folder / "status.json").is_file(), folder
        assert not [p for p in data_dir.rglob("*.tmp")], list(data_dir.rglob("*.tmp"))
        assert server.alive() and client.get("/health").status_code == 200
    finally:
        server.stop()

    again = serverkit.start_server(data_dir)  # the disk is still full: the reason survived the restart
    try:
        client = again.client()
        status = serverkit.status_of(client, job["id"])
        assert status["state"] == "failed" and "no space left on device" in status["error"], status
        filler.unlink()  # space again: the same upload and a new job work
        assert client.put(f"/blobs/{digest}", content=data, headers={"content-type": "image/png"}).status_code == 201
        assert wait_final(client, submit(client, serverkit.job_spec(refs, steps=2))["id"])["state"] == "done"
    finally:
        again.stop()
