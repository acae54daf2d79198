"""What a source file imports, read with `ast` (never executed): for the project's import rules."""

from __future__ import annotations

import ast
from pathlib import Path


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every absolute import in a file, including imports inside functions."""
    names: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def relative_imports(path: Path) -> set[str]:
    """Modules named by relative imports (`from .x import y` gives "x"; `from . import y` gives "")."""
    return {n.module or "" for n in ast.walk(_tree(path)) if isinstance(n, ast.ImportFrom) and n.level > 0}
