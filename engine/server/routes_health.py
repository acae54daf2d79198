"""GET /health (version, device, models present or missing, limits, queue) and GET /docs (a page, no scripts)."""

from __future__ import annotations

import sys

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ..process import offline
from .admission import configured_models
from .config import ServerConfig, split_model_arg
from .docs_page import docs_html
from .schemas import Health

router = APIRouter()


def models_report(config: ServerConfig) -> dict[str, list[str]]:
    """The configured models and those loaded in this process, each present or missing: a cache lookup and a
    file check each, no loading and no network."""
    pairs = configured_models(config)
    if "engine.models" in sys.modules:  # loaded ones exist only once a CLIP job has imported it
        from ..models import loaded_models

        pairs += [split_model_arg(label) for label in loaded_models()]
    report: dict[str, list[str]] = {"present": [], "missing": []}
    if not pairs:
        return report
    from ..models import check_clip_available

    for name, weights in dict.fromkeys(pairs):
        available = check_clip_available(name, weights, allow_download=False) is None
        report["present" if available else "missing"].append(f"{name}:{weights}")
    return report


def diffusion_report(config: ServerConfig) -> dict[str, list[str]]:
    """Each --diffusion model present or missing: a file or folder check, no loading."""
    report: dict[str, list[str]] = {"present": [], "missing": []}
    if config.diffusion:
        from ..diffusion.weights import check_diffusion_available

        for weights in config.diffusion:
            report["present" if check_diffusion_available(weights) is None else "missing"].append(weights)
    return report


@router.get("/health", response_model=None, responses={200: {"model": Health}})
async def health(request: Request) -> JSONResponse:
    state = request.app.state
    return JSONResponse(
        {
            **state.about,
            "offline": offline(),
            "downloads": state.config.allow_downloads,
            "models": models_report(state.config),
            "diffusion_models": diffusion_report(state.config),
            "queue": state.jobs.counts(),
        }
    )


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(
        docs_html(request.app.openapi()),
        headers={"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )
