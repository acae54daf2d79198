"""What Install Engine will do, decided from facts about this machine, with no bpy and no side effects (but for
detect_machine, which asks nvidia-smi and looks for ROCm): the engine's pinned requirements, the PyTorch build that
fits the GPU, the disk space it needs, and the pip command lines.

The requirements have ONE source, pyproject.toml's [project].dependencies. The extension zip carries no
pyproject.toml, so `make requirements` writes them to engine_requirements.txt beside this file (a test checks that
the two agree) and the installer reads that file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIREMENTS_FILE = Path(__file__).with_name("engine_requirements.txt")
REQUIREMENTS_HEADER = (
    "# The engine's pinned requirements, written by `make requirements` from pyproject.toml's\n"
    "# [project].dependencies (edit those, not this file). Install Engine reads it.\n"
)
TORCH_PACKAGES = frozenset({"torch", "torchvision", "torchaudio"})  # installed first, from the PyTorch index
PYTORCH_INDEX = "https://download.pytorch.org/whl"
PIP_RAW_PROGRESS = (24, 1)  # the first pip with `--progress-bar raw` ("Progress N of M" lines)
GB = 1_000_000_000

# PyTorch builds, newest first: (the oldest driver CUDA / ROCm version it runs with, its index's name).
CUDA_BUILDS = (((13, 0), "cu130"), ((12, 8), "cu128"), ((12, 6), "cu126"))
ROCM_BUILDS = (((6, 4), "rocm6.4"), ((6, 3), "rocm6.3"))
# Free space to ask for, download and installed files together, with room to spare (GB).
SPACE_GB = {"cuda": 12.0, "rocm": 20.0, "mps": 4.0, "cpu": 4.0}


# ---- the requirements ------------------------------------------------------------------------------------------


def requirement_name(line: str) -> str:
    """The distribution name of a requirement line ('torch==2.14.1' -> 'torch'), normalised as PEP 503 does."""
    name = re.split(r"[\s\[<>=!~;@]", line.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_requirements(pyproject: Path) -> list[str]:
    """[project].dependencies of a pyproject.toml."""
    import tomllib

    return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])


def requirements_text(requirements: Sequence[str]) -> str:
    """engine_requirements.txt's content for these requirements."""
    return REQUIREMENTS_HEADER + "".join(f"{line}\n" for line in requirements)


def read_requirements(path: Path = REQUIREMENTS_FILE) -> list[str]:
    """The requirement lines of a requirements file, without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def install_hint(python: str, path: Path = REQUIREMENTS_FILE) -> str:
    """The command that installs the engine's requirements into `python`, for people with a terminal."""
    return f"`{python} -m pip install -r {path}`"


# ---- the machine and its PyTorch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """What decides the PyTorch build: `system` is sys.platform ('linux', 'win32', 'darwin'), `arch` is
    platform.machine(), `cuda` the newest CUDA the NVIDIA driver runs ('12.8', from nvidia-smi) and `rocm` the
    installed ROCm version, each None when absent."""

    system: str
    arch: str
    cuda: str | None = None
    rocm: str | None = None
    gpu: str = ""


@dataclass(frozen=True)
class TorchChoice:
    """The PyTorch build to install: `kind` is cuda, rocm, mps or cpu; `index_url` None means the main index
    (PyPI's torch: MPS on a Mac); `note` says why a GPU is not used, for the artist."""

    kind: str
    index_url: str | None
    label: str
    note: str = ""


def _version(text: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text or "")[:2])


def torch_choice(machine: Machine) -> TorchChoice:
    """The PyTorch build for this machine: NVIDIA (CUDA, the newest build the driver runs), AMD (ROCm, Linux only),
    Apple silicon (MPS, PyPI's build), else the CPU build."""
    system = machine.system
    if system == "darwin":
        if machine.arch in ("arm64", "aarch64"):
            return TorchChoice("mps", None, "Apple Silicon (Metal)")
        return TorchChoice("cpu", None, "CPU", "PyTorch has no GPU build for Intel Macs")
    cpu = TorchChoice("cpu", f"{PYTORCH_INDEX}/cpu", "CPU")
    if machine.cuda and system in ("linux", "win32"):
        driver = _version(machine.cuda)
        for oldest, name in CUDA_BUILDS:
            if driver >= oldest:
                return TorchChoice("cuda", f"{PYTORCH_INDEX}/{name}", f"NVIDIA CUDA {'.'.join(map(str, oldest))}")
        oldest_cuda = ".".join(map(str, CUDA_BUILDS[-1][0]))
        note = f"the NVIDIA driver runs CUDA {machine.cuda}, older than {oldest_cuda}: update it to use the GPU"
        return TorchChoice("cpu", cpu.index_url, "CPU", note)
    if machine.rocm and system == "linux":
        installed = _version(machine.rocm)
        name = next((name for oldest, name in ROCM_BUILDS if installed >= oldest), ROCM_BUILDS[-1][1])
        return TorchChoice("rocm", f"{PYTORCH_INDEX}/{name}", f"AMD ROCm {name.removeprefix('rocm')}")
    if machine.rocm:
        return TorchChoice("cpu", cpu.index_url, "CPU", "PyTorch's ROCm builds are for Linux only")
    return cpu


def detect_machine(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> Machine:
    """This machine's facts: nvidia-smi's 'CUDA Version' (a second at most), ROCm's version file."""
    import platform

    cuda, gpu = None, ""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = run([smi], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        found = re.search(r"CUDA Version:\s*([\d.]+)", out)
        cuda = found.group(1) if found else None
        name = re.search(r"\|\s+\d+\s+(NVIDIA[^|]*?)\s{2,}", out)
        gpu = name.group(1).strip() if name else ""
    return Machine(sys.platform, platform.machine(), cuda, _rocm_version(), gpu)


def _rocm_version() -> str | None:
    root = Path(os.environ.get("ROCM_PATH", "/opt/rocm"))
    try:
        return (root / ".info" / "version").read_text().strip() or None
    except OSError:
        return None


# ---- disk space ------------------------------------------------------------------------------------------------


def space_needed(choice: TorchChoice) -> int:
    return int(SPACE_GB[choice.kind] * GB)


def disk_space_problem(folder: Path, needed: int, usage: Callable[[Path], Any] = shutil.disk_usage) -> str | None:
    """None when the drive holding `folder` (made or not yet) has `needed` bytes free, else what to do."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = usage(probe).free
    if free >= needed:
        return None
    return (
        f"Installing the engine needs about {needed / GB:.1f} GB free on the drive holding {folder}, "
        f"and it has {free / GB:.1f} GB: free some space, then press Install Engine again"
    )


# ---- the plan and its commands ---------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


@dataclass(frozen=True)
class InstallPlan:
    """One Install (or Repair) run.

    `venv`: the environment to make or complete; `base_python`: the Python that makes it (Blender's own, or the
    user's choice; 3.11 like the engine); `index_url`: an index that replaces PyPI (a studio's mirror, a test's
    loopback index), also used for PyTorch unless `torch_index_url` is given; `isolated`: pip ignores the user's
    pip configuration and PIP_* variables; `repair`: empty the environment and install every package again (pip's
    --force-reinstall would take PyTorch again from the main index, as a dependency of the other packages).
    """

    venv: Path
    base_python: str
    requirements: tuple[str, ...]
    torch: TorchChoice
    log_path: Path
    cache_dir: Path
    needed_bytes: int
    index_url: str | None = None
    torch_index_url: str | None = None
    repair: bool = False
    isolated: bool = False
    upgrade_pip: bool = True
    python_version: tuple[int, int] = (3, 11)
    extra_pip_args: tuple[str, ...] = field(default=())

    @property
    def python(self) -> Path:
        return venv_python(self.venv)

    @property
    def torch_requirements(self) -> list[str]:
        return [line for line in self.requirements if requirement_name(line) in TORCH_PACKAGES]

    def pip_install(self, requirements: Sequence[str], *, torch: bool = False, raw_progress: bool = False) -> list[str]:
        """`python -m pip install ...` in the environment: PyTorch from its index, the rest from the main one."""
        args = [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        args += ["--prefer-binary", "--cache-dir", str(self.cache_dir)]
        if self.isolated:
            args.append("--isolated")
        if raw_progress:
            args += ["--progress-bar", "raw"]
        index = (self.torch_index_url or self.index_url or self.torch.index_url) if torch else self.index_url
        if index:
            args += ["--index-url", index]
        return [*args, *self.extra_pip_args, *requirements]

    def pip_upgrade(self) -> list[str]:
        """A pip new enough to report download progress line by line (tried, not required)."""
        args = [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--upgrade"]
        args += ["--cache-dir", str(self.cache_dir), *(["--isolated"] if self.isolated else [])]
        args += ["--index-url", self.index_url] if self.index_url else []
        return [*args, f"pip>={'.'.join(map(str, PIP_RAW_PROGRESS))}"]

    def make_venv(self) -> list[str]:
        """`python -m venv`; on Repair with --clear: the same folder, emptied, its Python this one again (Blender
        moved or updated)."""
        return [self.base_python, "-m", "venv", *(["--clear"] if self.repair else []), str(self.venv)]


def make_plan(
    user_dir: Path,
    base_python: str,
    machine: Machine,
    *,
    requirements: Sequence[str] | None = None,
    index_url: str | None = None,
    torch_index_url: str | None = None,
    repair: bool = False,
    isolated: bool = False,
    needed_bytes: int | None = None,
    upgrade_pip: bool = True,
) -> InstallPlan:
    """The plan for Install Engine in `user_dir` (the extension's user folder): the environment in engine-env/,
    pip's downloads cached in pip-cache/ (so a cancelled install resumes; removed once it succeeds), the log in
    engine-install.log."""
    choice = torch_choice(machine)
    return InstallPlan(
        venv=user_dir / "engine-env",
        base_python=base_python,
        requirements=tuple(read_requirements() if requirements is None else requirements),
        torch=choice,
        log_path=user_dir / "engine-install.log",
        cache_dir=user_dir / "pip-cache",
        needed_bytes=space_needed(choice) if needed_bytes is None else needed_bytes,
        index_url=index_url,
        torch_index_url=torch_index_url,
        repair=repair,
        isolated=isolated,
        upgrade_pip=upgrade_pip,
    )


if __name__ == "__main__":  # `make requirements`: python addon/install_plan.py pyproject.toml
    REQUIREMENTS_FILE.write_text(requirements_text(pyproject_requirements(Path(sys.argv[1]))), encoding="utf-8")
    print(f"wrote {REQUIREMENTS_FILE}")
