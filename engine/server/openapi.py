"""The OpenAPI document: FastAPI's, plus the job spec's schema (with this server's limits) and the token scheme."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..spec import JobSpec
from .config import ServerConfig


def openapi_document(app: FastAPI, config: ServerConfig) -> dict[str, Any]:
    """FastAPI's document, plus the job spec's schema (with this server's limits) and the token scheme."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    spec_schema = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in spec_schema.pop("$defs", {}).items():
        if name in components and components[name] != definition:  # pragma: no cover - a naming slip
            raise RuntimeError(f"OpenAPI schema name clash: {name}")
        components[name] = definition
    properties = spec_schema["properties"]
    for side in ("width", "height"):
        properties[side]["maximum"] = min(properties[side].get("maximum", config.max_side), config.max_side)
    properties["regions"]["maxItems"] = min(
        properties["regions"].get("maxItems", config.max_regions), config.max_regions
    )
    components["JobSpec"] = spec_schema
    paths = schema["paths"]
    paths["/jobs"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
    }
    paths["/blobs/{sha256}"]["put"]["requestBody"] = {
        "required": True,
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    }
    if config.token:
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema
