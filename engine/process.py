"""Process-wide settings of an engine process (never imported by the add-on): the allocator, threads, downloads."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_allocator() -> bool:
    """Keep large tensors in the heap instead of mmap/munmap on every allocation.

    By default glibc maps each tensor above 128 KiB-32 MiB freshly and unmaps it on free, so
    every CPU step pays page faults for its feature maps: at 512x512 that was a quarter of the
    step's time. Returns whether the settings took (False off glibc, e.g. macOS or musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(
        mallopt(param, value) == 1
        for param, value in ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 256 << 20))
    )


# ---- downloads -------------------------------------------------------------------------------------------------

OFFLINE_VARS = ("REGIA_OFFLINE", "HF_HUB_OFFLINE")


def offline() -> bool:
    """REGIA_OFFLINE (set by `--offline`, and by `serve` unless --allow-downloads) or the hub's own
    HF_HUB_OFFLINE: no network at all."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARS)


def go_offline() -> None:
    """No downloads in this process: the engine's switch, and the Hugging Face hub's (read when it is imported)."""
    os.environ["REGIA_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"


# ---- threads ---------------------------------------------------------------------------------------------------

MAX_DEFAULT_THREADS = 8  # past this a CPU step gains little and the machine's other work loses much


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def default_threads() -> int:
    """OMP_NUM_THREADS when it is set; else one core left for Blender (the engine runs beside it), at most 8.
    torch's own default takes every core, and on a busy 2-core machine its threads then wait on each other (a
    5-shot storyboard took 10x longer)."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, min(available_cpus() - 1, MAX_DEFAULT_THREADS))


def set_threads(count: int | None) -> int:
    """torch's intra-op threads for this process (default_threads() when None); returns the count set. Results are
    identical for the same device and the same count."""
    import torch

    count = count or default_threads()
    torch.set_num_threads(count)
    with contextlib.suppress(RuntimeError):  # only allowed before the first parallel work
        torch.set_num_interop_threads(1)
    return count
