"""Install Engine for real, then Generate (issue 13's first run): a fresh Blender user folder with no Python set,
the engine's pinned packages installed into the extension's user folder, and a job run by that environment.

Opt-in (`make test-install`, marker `install`): it writes about 6 GB (PyTorch and its CUDA libraries) and takes
minutes. PyTorch comes from PyPI here (REGIA_TORCH_INDEX_URL): PyTorch's own index is out of this machine's reach.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpykit
import pytest

pytestmark = [pytest.mark.install, pytest.mark.bpy, pytest.mark.slow]


def test_install_engine_then_generate_with_no_terminal(tmp_path: Path) -> None:
    bpykit.require_bpy()
    zip_path = bpykit.build_extension(tmp_path / "dist")
    torch_index = os.environ.get("REGIA_TEST_TORCH_INDEX", "https://pypi.org/simple")
    env = bpykit.bpy_env(tmp_path / "home", REGIA_TORCH_INDEX_URL=torch_index)
    env.pop("REGIA_PYTHON", None)
    script = (Path(__file__).parent / "bpy_scripts" / "install_real.py").read_text()
    run = {item["phase"]: item for item in bpykit.results(bpykit.run_bpy(script, tmp_path, str(zip_path),
                                                                         timeout=2400, env=env))}  # fmt: skip
    install = run["install"]
    assert install["status"] == "done" and install["state"] == "ready", install
    assert install["python"].startswith(str(tmp_path / "home")), "the environment is in the extension's user folder"
    generate = run["generate"]
    assert generate["state"] == "DONE" and generate["result"] == "photo.regia.001", generate
    assert generate["engine_python"] == install["python"]  # the job ran on the installed environment
    print(f"installed in {install['seconds']:.0f} s")
