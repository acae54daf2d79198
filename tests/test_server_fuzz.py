"""Schemathesis against the live server's own OpenAPI document: no 5xx, no crash, contract-shaped errors.

Every operation the server publishes gets a bounded number of generated requests, valid and invalid
ones, answered by a real server subprocess. It runs with small limits, so that the jobs the fuzzer
manages to submit stay tiny; they are cancelled afterwards.

Checks: schemathesis's defaults (no 5xx; status codes, content types and bodies as the served document
describes them; invalid requests refused) plus the contract's error shape, except
- positive_data_acceptance: the document's JobSpec schema cannot say that a blob must have been uploaded
  or that paths are refused over HTTP, so schema-valid specs are rightly refused with 422;
- allow_header_conformance: `Allow` on 405 answers is outside the contract (see the report on /jobs).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import schemathesis
import serverkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance

pytestmark = pytest.mark.slow  # engine server processes

EXAMPLES = 50  # per operation and phase: well under a minute for the whole API on two cores


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory) -> serverkit.Server:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    with serverkit.serving(data_dir, "--max-side", 64, "--max-regions", 4, "--max-blob-mb", 1) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(fuzz_server: serverkit.Server):
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json", timeout=30)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis 4.32's lazy schemas read `request.node._nodeid`, which pytest 9 no longer has; give it one."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def contract_error_shape(ctx, response, case) -> bool | None:
    """docs/server-api.md: every 4xx has {"errors": [{field, message, value, allowed}]}; no answer has a traceback."""
    assert "Traceback" not in response.text, response.text[:500]
    if 400 <= response.status_code < 500 and case.method.upper() != "HEAD":
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], body
        for error in body["errors"]:
            assert set(serverkit.ERROR_KEYS) <= set(error), error
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_api_answers_without_server_errors(case, fuzz_server):
    case.call_and_validate(
        additional_checks=[contract_error_shape],
        excluded_checks=[positive_data_acceptance, allow_header_conformance],
        timeout=30,
    )


def test_server_survived_the_fuzzing(fuzz_server):
    client = fuzz_server.client()
    serverkit.cancel_all(client, timeout=60)  # whatever the fuzzer managed to queue
    response = client.get("/health")
    assert response.status_code == 200, response.text
    assert fuzz_server.alive()
    assert "Traceback" not in fuzz_server.output()


# ---- blob uploads: the served document cannot say "64 hex digits that hash the body", so fuzz them here ----

PNG = serverkit.png(np.arange(12 * 16 * 3, dtype=np.uint8).reshape(12, 16, 3))


def chunks_whole(data: bytes) -> bool:
    """Every chunk's CRC right and IEND the last thing in the file: what Pillow does not check."""
    offset = len(serverkit.PNG_SIGNATURE)
    kind = b""
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        end = offset + 8 + length
        if end + 4 > len(data) or zlib.crc32(data[offset + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            return False
        kind, offset = data[offset + 4 : offset + 8], end + 4
    return kind == b"IEND" and offset == len(data)


def decodes_as_png(data: bytes) -> bool:
    """Pillow decodes it and no chunk is cut or damaged (a PNG without its end is refused, though Pillow reads it)."""
    try:
        serverkit.decode_png(data)
    except (AssertionError, OSError, SyntaxError, ValueError):
        return False
    return chunks_whole(data)


damaged_pngs = st.one_of(
    st.integers(1, 80).map(lambda cut: PNG[:cut]),  # cut in the signature or the first chunks (IHDR)
    st.integers(1, len(PNG) - 1).map(lambda cut: PNG[:cut]),
    st.tuples(st.integers(0, len(PNG) - 1), st.integers(1, 255)).map(
        lambda flip: PNG[: flip[0]] + bytes([PNG[flip[0]] ^ flip[1]]) + PNG[flip[0] + 1 :]
    ),
    st.binary(max_size=2048),
    st.binary(max_size=64).map(lambda tail: serverkit.PNG_SIGNATURE + tail),
)


@given(data=damaged_pngs, own_name=st.booleans())
@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_blob_uploads_store_only_complete_pngs(fuzz_server, data, own_name):
    """Under its own sha256 a blob is stored iff it is a complete PNG (else 415); under another name it is 400."""
    client = fuzz_server.client()
    name = serverkit.sha256(data) if own_name else serverkit.sha256(data + b"other")
    response = client.put(f"/blobs/{name}", content=data)
    assert response.status_code < 500 and "Traceback" not in response.text, (data[:40], response.text)
    if not own_name:
        assert response.status_code in (400, 415), response.text  # both are true of a non-PNG under a wrong name
        assert response.status_code == 400 or not decodes_as_png(data), response.text
    elif decodes_as_png(data):
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 415, response.text
    stored = client.head(f"/blobs/{name}").status_code
    assert stored == (200 if response.status_code in (200, 201) else 404)
    client.close()
