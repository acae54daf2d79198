"""Choosing where the optimisation runs: CUDA, then MPS, then CPU."""

from __future__ import annotations

import torch

from .errors import SpecError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError(
            "device",
            "CUDA was asked for but torch sees no CUDA GPU",
            value=name,
            allowed="auto, cpu" + (", mps" if torch.backends.mps.is_available() else ""),
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise SpecError("device", "MPS was asked for but is not available", value=name, allowed="auto, cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise SpecError("device", "unknown device", value=name, allowed="auto, cpu, cuda, mps")
    return torch.device(name)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
