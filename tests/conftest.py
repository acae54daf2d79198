"""Shared by every test: the extension's root as the package `regia`, and the test markers.

tests/ and the repository root are on sys.path through pyproject.toml (`pythonpath`), so helpers (jobkit, serverkit,
pngkit, bpykit, ...) import by name and `engine` imports as the engine process sees it.

Markers (pyproject.toml lists them): `slow` (starts engine processes or runs many steps), `bpy` (runs Blender's bpy
in a child process), `perf` (asserts a duration: out of the default run, since a loaded machine makes it flaky).
"""

from __future__ import annotations

import socket

import pytest
import regia_package

regia_package.install()


@pytest.fixture
def no_network(monkeypatch) -> list[object]:
    """Any socket connection fails the test; the attempts are recorded."""
    attempts: list[object] = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise AssertionError(f"network used: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts
