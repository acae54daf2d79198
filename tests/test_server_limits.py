"""A server started with limits and a token: oversize specs are refused by field, every endpoint checks the token."""

from __future__ import annotations

import httpx
import jobkit
import pytest
import serverkit
from serverkit import check_errors, submit, upload_png, wait_final

pytestmark = pytest.mark.slow  # engine server processes

TOKEN = "s3cret-token"
MISSING_SHA = "0" * 64


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> serverkit.Server:
    data_dir = tmp_path_factory.mktemp("limited") / "data"
    with serverkit.serving(data_dir, "--max-side", 64, "--max-regions", 2, token=TOKEN) as srv:
        yield srv


def test_canvas_over_the_server_limit(limited):
    client = limited.client()
    init = upload_png(client, jobkit.astronaut(128))
    spec = jobkit.spec(128, 5, init={"image": init})
    errors = check_errors(client.post("/jobs", json=spec), 422, "width")
    assert "64" in (errors[0]["allowed"] or ""), errors[0]
    tall = jobkit.spec(32, 5, height=100)
    errors = check_errors(client.post("/jobs", json=tall), 422, "height")
    assert "64" in (errors[0]["allowed"] or ""), errors[0]


def test_too_many_regions(limited):
    client = limited.client()
    masks = [upload_png(client, mask) for mask in jobkit.column_masks(32, 3)]
    spec = jobkit.spec(32, 5, regions=[{"name": f"r{i}", "mask": ref} for i, ref in enumerate(masks)])
    errors = check_errors(client.post("/jobs", json=spec), 422, "regions")
    assert "2" in (errors[0]["allowed"] or ""), errors[0]
    spec["regions"] = spec["regions"][:2]  # at the limit: accepted
    job = submit(client, spec)
    assert wait_final(client, job["id"])["state"] == "done"


ENDPOINTS = [
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", "/jobs/j20261126T140102-3fa9c1d2"),
    ("GET", "/jobs/j20261126T140102-3fa9c1d2/preview"),
    ("GET", "/jobs/j20261126T140102-3fa9c1d2/result"),
    ("POST", "/jobs/j20261126T140102-3fa9c1d2/cancel"),
    ("POST", "/jobs/j20261126T140102-3fa9c1d2/requeue"),
    ("PUT", f"/blobs/{MISSING_SHA}"),
    ("HEAD", f"/blobs/{MISSING_SHA}"),
]


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", TOKEN])
def test_token_is_checked_on_every_endpoint(limited, header):
    headers = {"Authorization": header} if header else {}
    with httpx.Client(base_url=limited.base_url, timeout=30, trust_env=False) as client:
        for method, path in ENDPOINTS:
            body = b"{}" if method in ("POST", "PUT") else None
            response = client.request(method, path, headers=headers, content=body)
            if method == "HEAD":  # no body to check
                assert response.status_code == 401, (method, path, response.status_code)
                continue
            assert response.status_code == 401, (method, path, response.status_code, response.text)
            check_errors(response, 401, "Authorization")
            assert TOKEN not in response.text


def test_the_right_token_works(limited):
    client = limited.client()
    for path in ("/health", "/openapi.json", "/jobs"):
        assert client.get(path).status_code == 200, path
    limits = client.get("/health").json()["limits"]
    assert limits["max_side"] == 64 and limits["max_regions"] == 2, limits
    assert client.head(f"/blobs/{MISSING_SHA}").status_code == 404
