"""Segment into Regions, the add-on's pure side (addon/segmentation.py): a region per part with its key colour and a
free name, and a request that fails says why instead of dying on its thread."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from regia.addon.engine_client import EngineClient
from regia.addon.segmentation import METHODS, SegmentTask, part_regions

from engine.segment import METHODS as ENGINE_METHODS


def test_a_region_per_part_largest_first_with_its_key_colour_and_a_free_name():
    parts = [
        {"index": 1, "color": "#ff8040", "pixels": 900, "box": [0, 0, 30, 30]},
        {"index": 2, "color": "#0040bf", "pixels": 100, "box": [30, 0, 40, 10]},
    ]
    regions = part_regions(parts, taken={"Part 2", "sky"})
    assert [r.name for r in regions] == ["Part 1", "Part 2.2"]
    assert regions[0].key_color == (1.0, 128 / 255, 64 / 255) and regions[1].pixels == 100


def test_the_methods_are_the_engines():
    assert [identifier for identifier, _label, tooltip in METHODS if tooltip] == list(ENGINE_METHODS)


def test_a_request_to_an_engine_that_is_not_there_fails_with_the_reason():
    task = SegmentTask(EngineClient("http://127.0.0.1:9", timeout=2), np.zeros((8, 8, 4), np.float32), "slic", 4)
    task.start().wait(10)
    assert task.state == "FAILED" and "127.0.0.1:9" in task.error and task.region_map == b""


class _SlowEngine(BaseHTTPRequestHandler):
    """An engine that takes longer to segment than the client's main-thread timeout, as a busy machine does."""

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._answer(404)

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(201, b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.5)
        answer = {"width": 8, "height": 8, "map": "blob:" + "0" * 64, "parts": []}
        self._answer(200, json.dumps(answer).encode())

    def do_GET(self) -> None:
        time.sleep(0.5)
        self._answer(200, b"\x89PNG map", "image/png")


def test_a_slow_engine_is_waited_for_off_the_main_thread():
    """The main thread's client gives up after 0.1 s; the task's requests, on its own thread, wait for the engine."""
    engine = ThreadingHTTPServer(("127.0.0.1", 0), _SlowEngine)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        client = EngineClient(f"http://127.0.0.1:{engine.server_port}")
        assert client.timeout <= 0.1
        task = SegmentTask(client, np.zeros((8, 8, 4), np.float32), "slic", 4)
        task.start().wait(30)
        assert (task.state, task.error) == ("DONE", "") and task.region_map == b"\x89PNG map"
    finally:
        engine.shutdown()
        engine.server_close()
