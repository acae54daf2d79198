"""/docs: the API as one self-contained HTML page, built from the OpenAPI document.

FastAPI's own page loads Swagger UI's scripts and styles from a CDN, so opening it runs third-party code in a page
that can reach the engine. This page has no script at all and is served with a Content-Security-Policy that forbids
loading anything.
"""

from __future__ import annotations

from html import escape
from typing import Any

METHODS = ("get", "head", "put", "post", "delete")


def docs_html(openapi: dict[str, Any]) -> str:
    info = openapi.get("info", {})
    rows = []
    for path, operations in openapi.get("paths", {}).items():
        for method in METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            answers = ", ".join(sorted(operation.get("responses", {})))
            summary = operation.get("summary") or operation.get("description") or ""
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(summary)}</td><td>{escape(answers)}</td></tr>"
            )
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>{title}</h1><p>{escape(info.get('description', ''))}</p>"
        "<p>The full contract, with the job spec's schema: <a href='/openapi.json'>/openapi.json</a>.</p>"
        "<table><tr><th>method</th><th>path</th><th>what it does</th><th>answers</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
