"""The engine server under hostile input and hostile neighbours: decompression bombs, a web page on the same machine,
slow and idle clients, running out of file descriptors, odd JSON, a damaged blob, links in the data dir, paging and
retention. A real `python -m engine serve` process, over real HTTP (docs/server-api.md is the contract)."""

from __future__ import annotations

import hashlib
import os
import resource
import socket
import subprocess
import time
from pathlib import Path

import httpx
import jobkit
import pngkit
import pytest
import serverkit
from serverkit import check_errors, submit, upload, upload_png, wait_final

pytestmark = pytest.mark.slow  # engine server processes

HEADER_TIMEOUT = 2  # seconds: short, so that the slow-client test is quick (the default, 10 s, is checked too)
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> serverkit.Server:
    data_dir = tmp_path_factory.mktemp("hardening") / "data"
    options = ("--header-timeout", HEADER_TIMEOUT, "--max-connections", MAX_CONNECTIONS, "--keep-jobs", 3)
    with serverkit.serving(data_dir, *options) as srv:
        yield srv


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (the peak) of a process, from /proc, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- 1. decompression bombs never decode ---------------------------------------------------------


def test_bombs_are_refused_at_upload_and_at_load_and_memory_stays_flat(server):
    client = server.client()
    idle = memory_mb(server.proc.pid)["VmHWM"]
    for index in range(8):  # 8 different bombs: a header that claims 11585x11585 in ~120 bytes
        bomb = pngkit.header_only_bomb(11585 - index, 11585)
        response = client.put(f"/blobs/{sha(bomb)}", content=bomb, headers={"content-type": "image/png"})
        error = check_errors(response, 413, "sha256")[0]
        assert error["value"] == repr(f"{11585 - index}x11585") and "megapixels" in error["allowed"], error
        assert client.head(f"/blobs/{sha(bomb)}").status_code == 404
    # A whole bomb (17 KB, valid) stored under larger limits earlier: planted in the store as that run left it.
    bomb = pngkit.complete_bomb()
    planted = server.data_dir / "blobs" / f"{sha(bomb)}.png"
    planted.write_bytes(bomb)
    planted.chmod(0o600)
    refs = {name: upload_png(client, pixels) for name, pixels in serverkit.IMAGES.items()}
    spec = serverkit.job_spec(refs, steps=3)
    spec["regions"][0]["guides"][0]["image"] = f"blob:{sha(bomb)}"
    job = submit(client, spec)  # a style image may be any size: refused when the job loads it
    failed = wait_final(client, job["id"])
    assert failed["state"] == "failed", failed
    assert failed["error"].startswith("regions[0].guides[0].image: ") and "11585x11585" in failed["error"], failed
    spec = serverkit.job_spec(refs, steps=3, init={"image": f"blob:{sha(bomb)}"})
    error = check_errors(client.post("/jobs", json=spec), 422, "init.image")[0]  # canvas-sized: by its header
    assert "11585x11585" in error["message"] and "48x48" in error["allowed"], error
    peak = memory_mb(server.proc.pid)["VmHWM"]
    assert peak - idle < 200, f"peak memory grew {peak - idle:.0f} MB (idle peak {idle:.0f} MB)"
    assert client.get("/health").status_code == 200


def test_cut_pngs_and_pngs_without_their_end_are_refused(server):
    client = server.client()
    for data in (pngkit.rgb_png(24, 24, rows=12), pngkit.rgb_png(24, 24, with_end=False)):
        response = client.put(f"/blobs/{sha(data)}", content=data, headers={"content-type": "image/png"})
        error = check_errors(response, 415, "sha256")[0]
        assert "corrupt or truncated" in error["message"], error
    whole = pngkit.rgb_png(24, 24)
    assert client.put(f"/blobs/{sha(whole)}", content=whole, headers={"content-type": "image/png"}).status_code == 201


def test_the_cli_and_validate_refuse_a_bomb_by_its_size(tmp_path):
    (tmp_path / "bomb.png").write_bytes(pngkit.complete_bomb())
    jobkit.save(tmp_path / "mask.png", jobkit.rect_mask(32, 0, 0, 32, 16))
    spec = jobkit.spec(
        32, 2, regions=[{"name": "a", "mask": "mask.png", "guides": [{"kind": "style", "image": "bomb.png"}]}]
    )
    path = jobkit.write_spec(tmp_path, spec)
    for command in (["validate", path], ["run", path, "--out", tmp_path / "out", "--quiet"]):
        proc = subprocess.Popen(
            serverkit.engine_command(*command),
            cwd=jobkit.REPO,
            env=serverkit.engine_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert "regions[0].guides[0].image" in err and "11585x11585" in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "result.png").exists()


# ---- 2. a web page cannot drive the engine -------------------------------------------------------


def test_a_cross_site_post_from_a_page_is_refused(server):
    client = server.client()
    before = len(client.get("/jobs").json()["jobs"])
    page = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    body = '{"width": 16, "height": 16, "steps": 1}'
    response = client.post("/jobs", content=body, headers=page)
    assert response.status_code == 403, response.text
    check_errors(response, 403, "Origin")
    response = client.post("/jobs", content=body, headers={"Content-Type": "text/plain"})  # no Origin: still text
    check_errors(response, 415, "Content-Type")
    response = client.post("/jobs", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    check_errors(response, 415, "Content-Type")
    for site in ("cross-site", "same-site"):  # same-site: a page on another localhost port
        response = client.get("/jobs", headers={"Sec-Fetch-Site": site})
        check_errors(response, 403, "Sec-Fetch-Site")
    response = client.options(
        "/jobs", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in response.headers
    assert len(client.get("/jobs").json()["jobs"]) == before


def test_dns_rebinding_is_refused_by_the_host_header(server):
    client = server.client()
    for host in ("evil.example", f"evil.example:{server.port}", "192.168.0.10", "localhost.evil.example"):
        check_errors(client.get("/health", headers={"Host": host}), 403, "Host")
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "localhost"):
        assert client.get("/health", headers={"Host": host}).status_code == 200
    own = {"Origin": f"http://127.0.0.1:{server.port}"}  # the server's own origin (a page it served) is fine
    assert client.get("/health", headers=own).status_code == 200


def test_an_allowed_origin_gets_cors_answers(tmp_path):
    origin = "http://localhost:5173"
    with serverkit.serving(tmp_path / "data", "--allow-origin", origin) as srv:
        client = srv.client()
        preflight = client.options("/jobs", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
        assert client.get("/health", headers={"Origin": origin, "Sec-Fetch-Site": "same-site"}).status_code == 200
        check_errors(client.get("/health", headers={"Origin": "http://localhost:5174"}), 403, "Origin")


# ---- 3. slow and idle clients cannot lock others out ---------------------------------------------


def test_a_client_sending_a_byte_at_a_time_is_dropped(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(0.5)
        start = time.monotonic()
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
        closed_after = None
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - start
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - start
                break
        assert closed_after is not None and closed_after < HEADER_TIMEOUT + 1.5, closed_after
    assert server.client().get("/health").status_code == 200


def test_idle_connections_are_capped_and_others_still_get_in(server):
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5 * MAX_CONNECTIONS)]
    try:
        start = time.monotonic()
        with httpx.Client(base_url=server.base_url, timeout=5, trust_env=False) as client:
            assert client.get("/health").status_code == 200
        assert time.monotonic() - start < 2
        time.sleep(0.3)
        still_open = 0
        for sock in idle:
            sock.settimeout(0.05)
            try:
                still_open += sock.recv(1) != b""
            except TimeoutError:
                still_open += 1
            except OSError:
                pass
        assert still_open <= MAX_CONNECTIONS, still_open
    finally:
        for sock in idle:
            sock.close()


def test_the_defaults_drop_slow_headers_within_ten_seconds(server):
    limits = server.client().get("/health").json()["limits"]
    assert limits["header_timeout_seconds"] == HEADER_TIMEOUT and limits["max_connections"] == MAX_CONNECTIONS
    from engine.server.config import ServerConfig

    assert ServerConfig().header_timeout == 10 and ServerConfig().max_connections == 64


def _few_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (112, 112))


def test_running_out_of_descriptors_neither_floods_the_log_nor_locks_others_out(tmp_path):
    data_dir = tmp_path / "data"
    port_file = tmp_path / "port"
    log_path = tmp_path / "out.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            serverkit.engine_command("serve", "--port", 0, "--port-file", port_file, "--data-dir", data_dir),
            cwd=jobkit.REPO,
            env=serverkit.engine_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_few_descriptors,
        )
    try:
        port = serverkit.wait_for_port_file(port_file, proc, serverkit.START_TIMEOUT, log_path.read_text)
        sockets = []
        for _ in range(400):  # far more than the process may open
            try:
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(3)  # asyncio would retry accept() each second, logging a traceback each time
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False) as client:
            assert client.get("/health").status_code == 200
        for sock in sockets:
            sock.close()
        output = log_path.read_text()
        assert "Traceback" not in output and "out of system resource" not in output, output[-3000:]
        warnings = [line for line in output.splitlines() if '"warning"' in line]
        assert len(warnings) <= 3, warnings
        assert "lowered" in output  # the cap was fitted to the open-file limit, and said so once
    finally:
        proc.terminate()
        proc.wait(30)


# ---- 7. a damaged blob is repaired by uploading it again -----------------------------------------


def test_a_damaged_blob_is_repaired_by_uploading_it_again(server):
    client = server.client()
    refs = {name: upload_png(client, pixels) for name, pixels in serverkit.IMAGES.items()}
    data = serverkit.png(jobkit.coffee(48))
    ref = upload(client, data)
    stored = server.data_dir / "blobs" / f"{sha(data)}.png"
    stored.write_bytes(data[: len(data) // 2])  # the disk damaged it after the upload
    response = client.put(f"/blobs/{sha(data)}", content=data, headers={"content-type": "image/png"})
    assert response.status_code == 201, response.text  # re-checked and rewritten, not "already there"
    assert stored.read_bytes() == data
    stored.write_bytes(data[:100])  # damaged again: a job finds it and says to upload it again
    job = submit(client, serverkit.job_spec(refs, steps=2, init={"image": ref}))
    failed = wait_final(client, job["id"])
    assert failed["state"] == "failed" and "upload the image again" in failed["error"], failed
    assert client.head(f"/blobs/{sha(data)}").status_code == 404  # so a client's HEAD-then-PUT repairs it
    upload(client, data)
    assert (
        wait_final(client, submit(client, serverkit.job_spec(refs, steps=2, init={"image": ref}))["id"])["state"]
        == "done"
    )


# ---- 8. files are never read through links -------------------------------------------------------


def test_links_in_the_data_dir_are_not_followed(server, tmp_path):
    client = server.client()
    refs = {name: upload_png(client, pixels) for name, pixels in serverkit.IMAGES.items()}
    job = submit(client, serverkit.job_spec(refs, steps=2))
    assert wait_final(client, job["id"])["state"] == "done"
    secret = tmp_path / "secret.png"
    secret.write_bytes(serverkit.png(jobkit.coffee(16)))
    result = server.data_dir / "jobs" / job["id"] / "result.png"
    result.unlink()
    result.symlink_to(secret)
    check_errors(client.get(f"/jobs/{job['id']}/result"), 404, "id")
    planted = sha(secret.read_bytes())
    (server.data_dir / "blobs" / f"{planted}.png").symlink_to(secret)  # right name, right bytes, but a link
    assert client.head(f"/blobs/{planted}").status_code == 404
    spec = serverkit.job_spec(refs, steps=2, init={"image": f"blob:{planted}"})
    check_errors(client.post("/jobs", json=spec), 422, "init.image")


# ---- 9. odd input --------------------------------------------------------------------------------


def test_duplicate_keys_in_a_body_are_refused_naming_the_key(server):
    client = server.client()
    body = '{"width": 16, "height": 16, "steps": 2, "steps": 200000}'
    error = check_errors(client.post("/jobs", content=body, headers={"content-type": "application/json"}), 400)[0]
    assert error["field"] == "(body)" and error["value"] == "'steps'" and "twice" in error["message"], error


def test_docs_load_nothing_from_elsewhere(server):
    response = server.client().get("/docs")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "<script" not in response.text.lower() and "cdn" not in response.text.lower()
    assert "/jobs/{id}/result" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_jobs_are_listed_page_by_page_and_finished_ones_are_pruned(server):
    client = server.client()
    serverkit.cancel_all(client)
    ids = [submit(client, jobkit.spec(16, 1))["id"] for _ in range(5)]
    # Jobs run first in first out: once the last is final, so are the others, and the oldest may be pruned already
    # (polling each in turn raced the pruning: a 404 for the first).
    wait_final(client, ids[-1])
    listed, cursor = [], None
    while True:
        page = client.get("/jobs", params={"limit": 2, **({"after": cursor} if cursor else {})}).json()
        assert len(page["jobs"]) <= 2
        listed += [job["id"] for job in page["jobs"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert listed == ids[-3:], listed  # --keep-jobs 3: the two oldest were removed with their folders
    assert not (server.data_dir / "jobs" / ids[0]).exists()
    check_errors(client.get(f"/jobs/{ids[0]}"), 404, "id")
    assert client.delete(f"/jobs/{ids[-1]}").status_code == 204
    assert not (server.data_dir / "jobs" / ids[-1]).exists()
    check_errors(client.get("/jobs", params={"limit": 0}), 422, "limit")
    check_errors(client.get("/jobs", params={"state": "lost"}), 422, "state")
    done = client.get("/jobs", params={"state": "done"}).json()["jobs"]
    assert [job["id"] for job in done] == ids[-3:-1]


def test_ipv6_loopback_works(tmp_path):
    probe = socket.socket(socket.AF_INET6)
    try:
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    finally:
        probe.close()
    for host in ("::1", "[::1]"):
        with serverkit.serving(tmp_path / host.strip("[]:") / "data", "--host", host) as srv:
            with httpx.Client(base_url=f"http://[::1]:{srv.port}", timeout=30, trust_env=False) as client:
                assert client.get("/health").status_code == 200
            assert '"url": "http://[::1]:' in srv.output()


def test_data_dir_and_files_are_private(server):
    assert os.stat(server.data_dir).st_mode & 0o777 == 0o700
    for path in [server.data_dir / "server.log", *server.data_dir.rglob("*.png"), *server.data_dir.rglob("*.json")]:
        if not path.is_symlink():
            assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
    for path in (server.data_dir / "blobs", server.data_dir / "jobs"):
        assert path.stat().st_mode & 0o777 == 0o700, path
