"""`python -m engine serve`: its options, the token (never needed on the command line), and a check that this
interpreter has the server's packages before any of them is imported."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .capture_option import add_capture
from .errors import SpecError

EXIT_USAGE = 2
TOKEN_HELP = "require 'Authorization: Bearer TOKEN' on every request (`ps` shows it to every user: prefer "


# What `serve` imports, as import names: pip names differ only for Pillow.
SERVER_MODULES = ("torch", "numpy", "PIL", "scipy", "pydantic", "fastapi", "uvicorn", "tqdm")
PIP_NAMES = {"PIL": "pillow"}


def missing_server_modules() -> list[str]:
    """The server's packages this interpreter lacks, found without importing any (torch alone takes seconds)."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def missing_modules_message(missing: list[str]) -> str:
    """One line naming this interpreter, what it lacks and the command that fixes it."""
    python = sys.executable
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():  # a source checkout; the extension zip carries no pyproject
        fix = f"`{python} -m pip install -e {root}`"
    else:
        fix = f"`{python} -m pip install {' '.join(PIP_NAMES.get(name, name) for name in missing)}`"
    others = f" (nor {', '.join(missing[1:])})" if len(missing) > 1 else ""
    venv = root / ".venv" / "bin" / "python"
    such_as = f", such as {venv}" if venv.is_file() else ""
    return (
        f"{python} has no module named {missing[0]}{others}: install the engine's requirements into it with {fix} "
        f"or run the engine with a Python that has them{such_as}"
    )


TOKEN_ENV = "REGIA_ENGINE_TOKEN"
TOKEN_FILE_LIMIT = 4096


def server_token(args: argparse.Namespace) -> str | None:
    """The token from --token-file (a private file), else REGIA_ENGINE_TOKEN, else --token (which `ps` shows every
    user of the machine: the other two do not)."""
    if args.token_file:
        from .input_files import read_input_file

        path = Path(args.token_file)
        text = read_input_file(path, "--token-file", TOKEN_FILE_LIMIT).decode("utf-8", errors="replace").strip()
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise SpecError(
                "--token-file",
                f"{path} can be read by other users of this machine",
                value=str(path),
                allowed="a file only you can read (chmod 600)",
            )
        return text
    return os.environ.get(TOKEN_ENV) or args.token


def cmd_serve(args: argparse.Namespace) -> int:
    missing = missing_server_modules()
    if missing:  # fail at once with the fix, not after a traceback from deep inside an import
        print(f"error: {missing_modules_message(missing)}", file=sys.stderr)
        return EXIT_USAGE
    from .server.config import ServerConfig  # fastapi, uvicorn and torch load only for `serve`
    from .server.serve import serve
    from .step_capture import set_default_mode

    set_default_mode(args.capture)  # the worker threads run jobs through execute with the process's default
    return serve(
        ServerConfig(
            data_dir=Path(args.data_dir),
            host=args.host,
            port=args.port,
            port_file=Path(args.port_file) if args.port_file else None,
            token=server_token(args),
            max_side=args.max_side,
            max_regions=args.max_regions,
            max_blob_mb=args.max_blob_mb,
            max_image_mp=args.max_image_mp,
            device=args.device,
            clip=tuple(args.clip),
            diffusion=tuple(args.diffusion),
            allow_downloads=args.allow_downloads,
            max_connections=args.max_connections,
            header_timeout=args.header_timeout,
            allow_origins=tuple(args.allow_origin),
            keep_jobs=args.keep_jobs,
            keep_days=args.keep_days,
            threads=args.threads,
            ray=args.ray,
            ray_actors=args.ray_actors,
            capture=args.capture,
        )
    )


def _connection_options(serve_p: argparse.ArgumentParser) -> None:
    serve_p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve_p.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    serve_p.add_argument("--port-file", help="write the port here once the server accepts connections")
    serve_p.add_argument("--token", help=TOKEN_HELP + f"--token-file or {TOKEN_ENV})")
    serve_p.add_argument("--token-file", help="read the token from this file (readable by you alone)")
    serve_p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin (scheme://host:port) allowed to call the API from a browser (repeatable; none by default)",
    )
    serve_p.add_argument(
        "--max-connections", type=int, default=64, help="open connections; past it idle ones are closed (default 64)"
    )
    serve_p.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds for a request's headers to arrive (default 10)"
    )


def _limit_options(serve_p: argparse.ArgumentParser) -> None:
    serve_p.add_argument("--max-side", type=int, default=2048, help="largest width or height (default 2048)")
    serve_p.add_argument("--max-regions", type=int, default=32, help="most regions per job (default 32)")
    serve_p.add_argument("--max-blob-mb", type=int, default=64, help="largest PNG upload in MiB (default 64)")
    serve_p.add_argument(
        "--max-image-mp",
        type=int,
        default=25,
        help="largest image of any kind in megapixels, read from its header before decoding (default 25); "
        "reference images may also be up to 4x --max-side a side",
    )
    serve_p.add_argument("--keep-jobs", type=int, default=500, help="finished jobs kept, newest first (default 500)")
    serve_p.add_argument(
        "--keep-days", type=float, default=30.0, help="finished jobs older than this are removed (default 30; 0: never)"
    )


def add_serve_command(sub: argparse._SubParsersAction, add_threads: Callable[[argparse.ArgumentParser], None]) -> None:
    serve_p = sub.add_parser("serve", help="run the engine as a local HTTP server (docs/server-api.md)")
    _connection_options(serve_p)
    _limit_options(serve_p)
    serve_p.add_argument("--data-dir", default="regia-data", help="blobs, jobs and server.log (default ./regia-data)")
    serve_p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    serve_p.add_argument(
        "--clip",
        action="append",
        default=[],
        metavar="NAME:WEIGHTS",
        help="a CLIP model /health reports as present or missing (repeatable), e.g. ViT-B-32:laion2b_s34b_b79k",
    )
    serve_p.add_argument(
        "--diffusion",
        action="append",
        default=[],
        metavar="WEIGHTS",
        help="a diffusion model (a diffusers folder or a .safetensors/.ckpt file) /health reports on; jobs over HTTP "
        "may name only these paths (repeatable)",
    )
    serve_p.add_argument(
        "--offline", action="store_true", help="no downloads (the default for serve; kept for older scripts)"
    )
    serve_p.add_argument(
        "--allow-downloads",
        action="store_true",
        help="let jobs download CLIP weights that are not in the cache (off by default: use fetch-models)",
    )
    _cluster_options(serve_p)
    add_capture(serve_p)
    add_threads(serve_p)
    serve_p.set_defaults(func=cmd_serve)


def _cluster_options(serve_p: argparse.ArgumentParser) -> None:
    serve_p.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="run jobs on engine actors of a Ray cluster, several at once: ADDRESS is auto, host:port or "
        "ray://head:10001; local (or no ADDRESS) starts a Ray here (needs regia-engine[cluster])",
    )  # fmt: skip
    serve_p.add_argument(
        "--ray-actors", type=int, default=0, metavar="N",
        help="jobs run at once with --ray (default 0: one per GPU, or one per --threads CPUs of the cluster)",
    )  # fmt: skip
