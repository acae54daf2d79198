"""Install Engine (addon/install_plan.py, install_progress.py, engine_install.py): one requirements source, the
PyTorch build per machine, the disk check, pip's output as progress, and real installs into a fresh environment
from a package index served on loopback (tiny wheels this file builds; no network): progress, cancel mid-download,
a package missing from the index, resume after cancel, Repair and Remove.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from regia_package import addon_module

REPO = Path(__file__).resolve().parent.parent
install_plan = addon_module("install_plan")
install_progress = addon_module("install_progress")
engine_install = addon_module("engine_install")
Machine = install_plan.Machine

# A newer pip from this machine's disk lets the tests see byte progress (`--progress-bar raw`); skipped without it.
PIP_WHEELS = sorted(Path("/opt/pypi/files").glob("pip-2[5-9]*.whl"))


# ---- one requirements source -----------------------------------------------------------------------------------


def test_the_shipped_requirements_are_pyprojects() -> None:
    pins = install_plan.pyproject_requirements(REPO / "pyproject.toml")
    shipped = install_plan.REQUIREMENTS_FILE
    assert shipped.read_text() == install_plan.requirements_text(pins), "run `make requirements`"
    assert install_plan.read_requirements() == pins
    names = {install_plan.requirement_name(line) for line in pins}
    assert {"torch", "torchvision", "kornia", "open-clip-torch", "scikit-image", "diffusers"} <= names
    assert all("==" in line for line in pins), "the engine's requirements are pinned"


def test_the_zip_carries_the_requirements_file() -> None:
    """The manifest's build excludes must not drop it (the zip has no pyproject.toml to read instead)."""
    import tomllib

    excludes = tomllib.loads((REPO / "blender_manifest.toml").read_text())["build"]["paths_exclude_pattern"]
    relative = install_plan.REQUIREMENTS_FILE.relative_to(REPO).as_posix()
    for pattern in excludes:
        assert not (pattern.startswith("/") and relative.startswith(pattern.strip("/"))), pattern
        assert not (pattern.startswith("*") and relative.endswith(pattern[1:])), pattern


def test_the_missing_modules_hint_installs_the_whole_requirements_file() -> None:
    engine_process = addon_module("engine_process")
    message = engine_process.missing_modules_message("/opt/py/bin/python", Path("/nowhere"), ["torch"])
    assert f"/opt/py/bin/python -m pip install -r {install_plan.REQUIREMENTS_FILE}" in message
    assert "Install Engine" in message


# ---- the PyTorch build per machine ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "kind", "index"),
    [
        (Machine("linux", "x86_64", cuda="12.9"), "cuda", "cu128"),
        (Machine("linux", "x86_64", cuda="13.1"), "cuda", "cu130"),
        (Machine("win32", "AMD64", cuda="12.6"), "cuda", "cu126"),
        (Machine("linux", "x86_64", cuda="11.8"), "cpu", "/cpu"),
        (Machine("linux", "x86_64", rocm="6.4.1"), "rocm", "rocm6.4"),
        (Machine("linux", "x86_64", rocm="6.0"), "rocm", "rocm6.3"),
        (Machine("win32", "AMD64", rocm="6.4"), "cpu", "/cpu"),
        (Machine("darwin", "arm64"), "mps", None),
        (Machine("darwin", "x86_64"), "cpu", None),
        (Machine("linux", "aarch64"), "cpu", "/cpu"),
        (Machine("win32", "AMD64"), "cpu", "/cpu"),
    ],
)
def test_torch_choice(machine: object, kind: str, index: str | None) -> None:
    choice = install_plan.torch_choice(machine)
    assert choice.kind == kind
    if index is None:
        assert choice.index_url is None
    else:
        assert choice.index_url.startswith(install_plan.PYTORCH_INDEX) and choice.index_url.endswith(index)
    if machine.cuda == "11.8":
        assert "update" in choice.note and "11.8" in choice.note


def test_detect_machine_reads_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    smi = "| NVIDIA-SMI 570.86   Driver Version: 570.86   CUDA Version: 12.8 |\n|   0  NVIDIA H200    On  |"
    monkeypatch.setattr(install_plan.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    machine = install_plan.detect_machine(run=lambda *a, **k: SimpleNamespace(stdout=smi))
    assert machine.cuda == "12.8" and machine.gpu == "NVIDIA H200"
    assert install_plan.torch_choice(machine).index_url.endswith("cu128")


def test_the_plan_puts_torch_on_its_index_and_the_rest_on_the_main_one(tmp_path: Path) -> None:
    plan = install_plan.make_plan(tmp_path, sys.executable, Machine("linux", "x86_64", cuda="12.8"))
    assert plan.venv == tmp_path / "engine-env" and plan.log_path.parent == tmp_path
    assert plan.torch_requirements == ["torch==2.14.1", "torchvision==0.29.1"]
    torch = plan.pip_install(plan.torch_requirements, torch=True, raw_progress=True)
    assert torch[torch.index("--index-url") + 1].endswith("/cu128") and "raw" in torch
    rest = plan.pip_install(plan.requirements)
    assert "--index-url" not in rest  # PyPI, or the user's pip configuration
    mirror = install_plan.make_plan(tmp_path, "py", Machine("linux", "x86_64"), index_url="http://mirror/simple")
    torch = mirror.pip_install(mirror.torch_requirements, torch=True)
    assert torch[torch.index("--index-url") + 1] == "http://mirror/simple"  # a mirror serves PyTorch too
    repair = install_plan.make_plan(tmp_path, "py", Machine("linux", "x86_64"), repair=True)
    assert "--clear" in repair.make_venv() and "--clear" not in plan.make_venv()


def test_disk_space_is_checked_first(tmp_path: Path) -> None:
    usage = lambda path: SimpleNamespace(free=3_200_000_000)  # noqa: E731
    problem = install_plan.disk_space_problem(tmp_path / "a" / "b", 12_000_000_000, usage)
    assert "12.0 GB" in problem and "3.2 GB" in problem and str(tmp_path / "a" / "b") in problem
    assert install_plan.disk_space_problem(tmp_path / "a", 1_000_000_000, usage) is None
    plan = install_plan.make_plan(tmp_path, sys.executable, Machine("linux", "x86_64"), needed_bytes=10**18)
    with pytest.raises(engine_install.InstallError, match="GB free"):
        engine_install.EngineInstaller(plan).start()
    assert not plan.venv.exists()


# ---- pip's output ----------------------------------------------------------------------------------------------


def test_pip_output_as_progress() -> None:
    progress = install_progress.PipProgress(count=2)
    assert progress.line() == "Looking for packages"
    for line in (
        "Collecting torch==2.14.1",
        "  Downloading torch-2.14.1-cp311-none-any.whl.metadata (29 kB)",
        "  Downloading https://x/torch-2.14.1-cp311-none-any.whl (800.0 MB)",
        "Progress 0 of 800000000",
        "Progress 1000000 of 800000000",
        "Progress 120000000 of 800000000",
    ):
        progress.feed(line)
    assert (progress.index, progress.count, progress.package) == (1, 2, "torch")
    assert progress.line() == "torch (1 of 2), 120 of 800 MB; 120 MB so far"  # the metadata's 29 kB too
    for line in ("Collecting Sympy>=1.1 (from torch)", "  Downloading sympy-1.13-py3-none-any.whl (6.2 MB)"):
        progress.feed(line)
    assert progress.line() == "sympy (2 of 2), downloading 6 MB; 800 MB so far"  # no raw progress: its size
    progress.feed("Requirement already satisfied: numpy in ./env (1.26.4)")
    assert (progress.index, progress.count, progress.bytes_done) == (3, 3, 806_229_000)
    progress.feed("Installing collected packages: sympy, torch")
    assert progress.line() == "Unpacking 2 packages"
    progress.feed("Successfully installed sympy-1.13 torch-2.14.1")
    assert progress.finished and not progress.errors


def test_pip_errors_in_the_artists_words(tmp_path: Path) -> None:
    log = tmp_path / "engine-install.log"
    words = install_progress.error_message
    missing = words(["No matching distribution found for kornia==0.9.0"], "", "http://mirror/simple", log)
    assert "kornia==0.9.0 is not available" in missing and "http://mirror/simple" in missing and str(log) in missing
    offline = "WARNING: Retrying ... Failed to establish a new connection: [Errno 111] Connection refused"
    said = words(["No matching distribution found for torch==2.14.1"], offline, None, log)
    assert said.startswith("Cannot reach the package server") and "goes on where it stopped" in said
    assert words([], "OSError: [Errno 28] No space left on device", None, log).startswith("The disk is full")
    assert words(["Something odd"], "", None, log) == f"The install failed: Something odd. The log: {log}"


# ---- the environment's state -----------------------------------------------------------------------------------


def test_environment_state_and_remove(tmp_path: Path) -> None:
    venv, pins = tmp_path / "engine-env", ["a==1"]
    assert engine_install.environment_state(venv, pins) == engine_install.MISSING
    engine_install.write_marker(venv, complete=False, requirements=engine_install.requirements_digest(pins))
    assert engine_install.environment_state(venv, pins) == engine_install.INCOMPLETE
    python = install_plan.venv_python(venv)
    python.parent.mkdir(parents=True)
    python.write_text("")
    engine_install.write_marker(venv, complete=True, requirements=engine_install.requirements_digest(pins))
    assert engine_install.environment_state(venv, pins) == engine_install.READY
    assert engine_install.installed_python(venv) == python
    assert engine_install.environment_state(venv, ["a==2"]) == engine_install.OUTDATED
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("not Regia's")
    with pytest.raises(engine_install.InstallError, match="not an engine environment"):
        engine_install.remove_environment(other)
    engine_install.remove_environment(venv)
    assert not venv.exists() and other.exists()
    (tmp_path / "empty").mkdir()  # what a cancel before `venv` ran can leave
    engine_install.remove_environment(tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


# ---- real installs from a loopback index ---------------------------------------------------------------------


def build_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (), payload: int = 0) -> Path:
    """A minimal valid wheel: a module, and `payload` random bytes (incompressible, so the download is that big)."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        f"{name.replace('-', '_')}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist}.dist-info/METADATA": "\n".join(
            [
                "Metadata-Version: 2.1",
                f"Name: {name}",
                f"Version: {version}",
                *(f"Requires-Dist: {r}" for r in requires),
            ]
        ).encode()
        + b"\n",
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: regia-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    if payload:
        files[f"{name.replace('-', '_')}/payload.bin"] = os.urandom(payload)
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n").encode()
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name_in_zip, data in files.items():
            archive.writestr(name_in_zip, data)
    return path


def write_index(root: Path, wheels: list[Path]) -> None:
    """PEP 503: root/<project>/index.html links to ../../files/<wheel>."""
    root.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[Path]] = {}
    for wheel in wheels:
        projects.setdefault(install_plan.requirement_name(wheel.name.split("-")[0]), []).append(wheel)
    for project, files in projects.items():
        (root / project).mkdir()
        links = "".join(f'<a href="../../files/{w.name}">{w.name}</a>\n' for w in files)
        (root / project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    (root / "index.html").write_text("".join(f'<a href="{p}/">{p}</a>\n' for p in projects))


class Index:
    """The wheelhouse over HTTP on loopback; `delay` (seconds per 64 KB) throttles the big wheel, so that its
    download is seen under way (and can be cancelled midway)."""

    def __init__(self, folder: Path) -> None:
        self.delay = 0.0
        index = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args: object) -> None:
                pass

            def copyfile(self, source, outputfile) -> None:  # type: ignore[override]
                while chunk := source.read(64 * 1024):
                    outputfile.write(chunk)
                    if index.delay and self.path.endswith(".whl") and "big" in self.path:
                        time.sleep(index.delay)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    folder = tmp_path_factory.mktemp("wheelhouse")
    files = folder / "files"
    files.mkdir()
    torch = [build_wheel(files, "torch", "2.14.1")]
    rest = [
        build_wheel(files, "alpha", "1.0", requires=("gamma>=1",)),
        build_wheel(files, "gamma", "1.5"),
        build_wheel(files, "big-data", "3.0", payload=2_000_000),
        *(shutil.copy(wheel, files) and files / wheel.name for wheel in PIP_WHEELS[-1:]),
    ]
    write_index(folder / "torch", torch)
    write_index(folder / "simple", rest)
    served = Index(folder)
    yield served
    served.close()


REQUIREMENTS = ("torch==2.14.1", "alpha==1.0", "big-data==3.0")


def plan_for(tmp_path: Path, index: Index, *, requirements: tuple[str, ...] = REQUIREMENTS, repair: bool = False):
    return install_plan.make_plan(
        tmp_path,
        sys.executable,
        Machine("linux", "x86_64", cuda="12.8"),
        requirements=requirements,
        index_url=f"{index.url}/simple/",
        torch_index_url=f"{index.url}/torch/",
        isolated=True,
        needed_bytes=1,
        repair=repair,
    )


ISOLATED = {"PIP_CONFIG_FILE": os.devnull}  # this machine's pip.conf names other indexes


def run_to_end(installer, timeout: float = 240) -> tuple[object, list[object]]:
    seen = []
    deadline = time.monotonic() + timeout
    while installer.running:
        seen.append(installer.poll())
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.05)
    return installer.poll(), seen


def installed(plan, code: str) -> str:
    return subprocess.run([str(plan.python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_install_reports_progress_and_makes_a_ready_environment(tmp_path: Path, index: Index) -> None:
    plan = plan_for(tmp_path, index)
    installer = engine_install.EngineInstaller(plan, env=ISOLATED).start()
    index.delay = 0.05  # the 2 MB wheel takes ~1.5 s
    try:
        status, seen = run_to_end(installer)
    finally:
        index.delay = 0.0
    assert status.state == engine_install.DONE, (status, plan.log_path.read_text()[-3000:])
    assert "NVIDIA CUDA 12.8" in status.message
    steps = [s.step for s in seen]
    assert "Creating the environment" in steps and "Installing PyTorch for NVIDIA CUDA 12.8" in steps
    counts = {(s.package_index, s.package_count) for s in seen if s.step == "Installing the engine's packages"}
    assert any(count >= len(REQUIREMENTS) for _, count in counts), counts
    assert any(" of " in s.detail for s in seen), [s.detail for s in seen]
    if PIP_WHEELS:  # pip was updated from the index: byte progress of the 2 MB wheel
        assert "Successfully installed pip-" in plan.log_path.read_text()
        assert any(s.bytes_total >= 2_000_000 and 0 < s.bytes_done < s.bytes_total for s in seen), seen
        details = {s.detail for s in seen}
        assert any(d.startswith("big-data (3 of 3), ") and d.endswith(" of 2 MB") for d in details), details
    assert engine_install.environment_state(plan.venv, REQUIREMENTS) == engine_install.READY
    assert engine_install.installed_python(plan.venv) == plan.python
    assert installed(plan, "import alpha, gamma, torch; print(torch.VERSION, gamma.VERSION)") == "2.14.1 1.5"
    log = plan.log_path.read_text()
    assert "/torch/ torch==2.14.1" in log and "=== done" in log and "Progress " not in log
    assert not plan.cache_dir.exists()  # the downloads were only kept for a resumed install

    repair = engine_install.EngineInstaller(plan_for(tmp_path, index, repair=True), env=ISOLATED).start()
    status = run_to_end(repair)[0]
    assert status.state == engine_install.DONE, (status, plan.log_path.read_text()[-2000:])
    repaired = plan.log_path.read_text().split("=== Repair")[-1]
    assert "-m venv --clear" in repaired and "Successfully installed torch-2.14.1" in repaired
    engine_install.remove_environment(plan.venv)
    assert engine_install.environment_state(plan.venv, REQUIREMENTS) == engine_install.MISSING


@pytest.mark.slow
def test_a_package_missing_from_the_index_is_reported_with_the_log(tmp_path: Path, index: Index) -> None:
    plan = plan_for(tmp_path, index, requirements=("torch==2.14.1", "alpha==1.0", "kornia==0.9.0"))
    status, _ = run_to_end(engine_install.EngineInstaller(plan, env=ISOLATED).start())
    assert status.state == engine_install.FAILED
    assert status.message.startswith("The package kornia==0.9.0 is not available from the package server")
    assert f"{index.url}/simple/" in status.message and status.message.endswith(f"The log: {plan.log_path}")
    assert "No matching distribution found for kornia" in plan.log_path.read_text()
    assert engine_install.environment_state(plan.venv, plan.requirements) == engine_install.INCOMPLETE
    assert engine_install.installed_python(plan.venv) is None


def test_a_python_that_cannot_make_the_environment_is_named(tmp_path: Path) -> None:
    plan = install_plan.make_plan(tmp_path, "/nonexistent/python3", Machine("linux", "x86_64"), needed_bytes=1)
    status = engine_install.EngineInstaller(plan).start().wait(60)
    assert status.state == engine_install.FAILED
    assert status.message.startswith("/nonexistent/python3 cannot make the engine's environment")
    assert "Blender's own" in status.message and not plan.venv.exists()
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\necho 3.10\n")
    fake.chmod(0o755)
    plan = install_plan.make_plan(tmp_path, str(fake), Machine("linux", "x86_64"), needed_bytes=1)
    status = engine_install.EngineInstaller(plan).start().wait(60)
    assert "is Python 3.10, and the engine needs Python 3.11" in status.message


def test_cancel_at_once_leaves_nothing_running(tmp_path: Path) -> None:
    plan = install_plan.make_plan(tmp_path, sys.executable, Machine("linux", "x86_64"), needed_bytes=1)
    installer = engine_install.EngineInstaller(plan).start()
    installer.cancel()
    status = installer.wait(60)
    assert status.state == engine_install.CANCELLED and not installer.running
    assert engine_install.environment_state(plan.venv, plan.requirements) != engine_install.READY


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.slow
def test_cancel_mid_download_then_install_resumes(tmp_path: Path, index: Index) -> None:
    plan = plan_for(tmp_path, index)
    installer = engine_install.EngineInstaller(plan, env=ISOLATED).start()
    index.delay = 0.25  # the 2 MB wheel takes ~8 s
    try:
        deadline = time.monotonic() + 180
        while "big-data" not in installer.poll().detail:
            assert installer.running and time.monotonic() < deadline, (installer.poll(), plan.log_path.read_text())
            time.sleep(0.05)
        pid = installer._proc.pid
        started = time.monotonic()
        installer.cancel()
        status = installer.wait(30)
    finally:
        index.delay = 0.0
    assert status.state == engine_install.CANCELLED and time.monotonic() - started < 10
    assert "goes on from here" in status.message
    assert pid_gone(pid), "pip outlived Cancel"
    assert engine_install.environment_state(plan.venv, REQUIREMENTS) == engine_install.INCOMPLETE
    assert "=== cancelled" in plan.log_path.read_text()

    status, _ = run_to_end(engine_install.EngineInstaller(plan, env=ISOLATED).start())
    assert status.state == engine_install.DONE, plan.log_path.read_text()[-3000:]
    resumed = plan.log_path.read_text().split("=== Install")[-1]
    assert "Creating the environment" not in resumed  # the environment made before Cancel was kept
    assert "Requirement already satisfied: torch" in resumed
    assert engine_install.environment_state(plan.venv, REQUIREMENTS) == engine_install.READY


# ---- the add-on's side, in headless bpy --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pins_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """A dummy wheel for every pin of engine_requirements.txt: PyTorch's on /torch/, the rest on /simple/."""
    folder = tmp_path_factory.mktemp("pins")
    files = folder / "files"
    files.mkdir()
    torch, rest = [], [*(shutil.copy(wheel, files) and files / wheel.name for wheel in PIP_WHEELS[-1:])]
    for line in install_plan.read_requirements():
        name, version = line.split("==")
        wheel = build_wheel(files, install_plan.requirement_name(name), version)
        (torch if install_plan.requirement_name(name) in install_plan.TORCH_PACKAGES else rest).append(wheel)
    write_index(folder / "torch", torch)
    write_index(folder / "simple", rest)
    served = Index(folder)
    yield served
    served.close()


@pytest.mark.bpy
@pytest.mark.slow
def test_install_engine_from_the_preferences(tmp_path: Path, pins_index: Index) -> None:
    import bpykit

    bpykit.require_bpy()
    zip_path = bpykit.build_extension(tmp_path / "dist")
    env = bpykit.bpy_env(
        tmp_path / "home",
        REGIA_INDEX_URL=f"{pins_index.url}/simple/",
        REGIA_TORCH_INDEX_URL=f"{pins_index.url}/torch/",
        PIP_CONFIG_FILE=os.devnull,
    )
    env = {k: v for k, v in env.items() if not k.startswith("PIP_") or k == "PIP_CONFIG_FILE"}
    env.pop("REGIA_PYTHON", None)
    script = (Path(__file__).parent / "bpy_scripts" / "install_engine.py").read_text()
    result = bpykit.run_bpy(script, tmp_path, str(zip_path), timeout=600, env=env)
    run = {item["phase"]: item for item in bpykit.results(result)}

    fresh = run["fresh"]
    assert fresh["message"].startswith("The engine is not installed: press Install Engine")
    assert "op:regia.engine_install:IMPORT" in fresh["drawn"]
    assert not any(op in line for line in fresh["drawn"] for op in ("engine_start", "engine_stop", "engine_repair"))
    assert any(line.startswith("label:Not installed: Install Engine puts PyTorch") for line in fresh["drawn"])

    offline = run["offline"]
    assert "Allow Online Access" in offline["refused"] and offline["state"] == "missing"
    assert any("Allow Online Access" in line for line in offline["drawn"])

    cancelled = run["cancelled"]
    assert "op:regia.engine_install_cancel:CANCEL" in cancelled["running"]
    assert "op:regia.engine_install:IMPORT" not in cancelled["running"]
    assert cancelled["installing_message"].startswith("The engine is being installed")
    assert (cancelled["status"], cancelled["state"]) == ("cancelled", "incomplete")
    assert any(line.startswith("label:Not finished") for line in cancelled["drawn"])
    assert any(line.startswith("label:Log: ") for line in cancelled["drawn"])

    installed = run["installed"]
    assert installed["status"] == "done" and installed["state"] == "ready", installed
    assert installed["python"] == str(install_plan.venv_python(Path(installed["venv"])))
    assert installed["venv"].startswith(str(tmp_path / "home")), "the environment is in the extension's user folder"
    assert any(s.get("step") == "Installing the engine's packages" for s in installed["seen"])
    assert installed["engine"] == "stopped" and installed["engine_message"] == "Engine not started"
    drawn = installed["drawn"]
    assert "op:regia.engine_start:PLAY" in drawn and "op:regia.engine_install:IMPORT" not in drawn
    labels = " ".join(line.removeprefix("label:") for line in drawn if line.startswith("label:"))
    assert f"Installed in {installed['venv']}, with PyTorch for CPU" in labels, drawn
    assert "op:regia.engine_repair:TOOL_SETTINGS" in drawn and "op:regia.engine_remove:TRASH" in drawn
    assert "op:regia.engine_stop:QUIT" not in drawn

    removed = run["removed"]
    assert removed["state"] == "missing" and removed["python"] == ""
    assert not Path(installed["venv"]).exists()

    remote = run["remote"]["drawn"]
    assert "op:regia.engine_check:URL" in remote and "prop:remote_url" in remote
    assert not [line for line in remote if "engine_install" in line or "engine_start" in line]
