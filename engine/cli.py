"""Command line: `python -m engine run SPEC --out DIR`, `validate`, `schema`, `presets`, `demo`, `serve`,
`fetch-models`, `storyboard`, `segment`.

User mistakes end in one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .capture_option import add_capture, check_capture
from .cli_segment import add_segment_command
from .cli_serve import add_serve_command
from .errors import JobCancelled, RegiaError, SpecError, SpecErrors
from .process import default_threads, go_offline, tune_allocator

if TYPE_CHECKING:  # the optimiser pulls in torch: `schema` and `presets` start without it
    from collections.abc import Callable

    import torch

    from .progress import Progress, Result
    from .storyboard import Shot, ShotReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
OFFLINE_HELP = "no downloads: CLIP weights must already be in the model cache (sets REGIA_OFFLINE=1)"


def _losses_summary(losses: dict[str, float], limit: int = 4) -> str:
    top = sorted(losses.items(), key=lambda kv: -abs(kv[1]))[:limit]
    return " ".join(f"{k}={v:.3f}" for k, v in top)


def run_spec_file(
    spec_path: Path, out_dir: Path, device_name: str = "auto", quiet: bool = False, capture: str = "off"
) -> Result:
    """Validate, prepare and run one spec file, writing everything into out_dir; `capture`: see --capture."""
    from tqdm import tqdm  # imported here so that `serve` can report missing packages before any import fails

    from .device import pick_device
    from .execute import execute
    from .job import PreparedJob
    from .outputs import RunFolder
    from .progress import CancelToken
    from .refs import FolderSource
    from .spec import load_spec_file

    spec = load_spec_file(spec_path)
    source = FolderSource(spec_path.parent)
    device = pick_device(device_name)
    folder = RunFolder(out_dir)

    def on_prepared(job: PreparedJob) -> None:  # the job is whole: now the folder may be written
        folder.prepare([source.path_of(ref) for _, ref in spec.image_refs() if not ref.startswith("blob:")])
        folder.write_spec(job.spec)

    bar = tqdm(total=spec.steps, desc="regia", unit="step", disable=quiet, dynamic_ncols=True)

    def on_progress(progress: Progress) -> None:
        bar.update(progress.step - bar.n)
        if progress.losses:
            bar.set_postfix_str(f"total={progress.total:.3f} {_losses_summary(progress.losses)}", refresh=False)
        if progress.preview is not None:
            folder.write_preview(progress.step, progress.preview)

    try:
        result = execute(spec, source, device, on_progress, CancelToken(), on_prepared, capture)
    finally:
        bar.close()
    folder.write_result(result.image)
    folder.write_losses(result.history)
    return result


def _print_error(exc: BaseException) -> None:
    if isinstance(exc, SpecErrors):
        for error in exc.errors:
            print(f"error: {error.one_line()}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    result = run_spec_file(Path(args.spec), Path(args.out), args.device, args.quiet, args.capture)
    print(f"wrote {Path(args.out) / 'result.png'} in {result.elapsed:.1f}s")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import known_presets, load_preset

    for name in known_presets():
        preset = load_preset(name)
        print(f"{name:12s} {preset.description}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    import torch

    from .job import prepare_job
    from .refs import FolderSource
    from .spec import load_spec_file

    spec = load_spec_file(Path(args.spec))
    prepare_job(spec, FolderSource(Path(args.spec).parent), torch.device("cpu"))
    print(f"{args.spec}: ok")
    return EXIT_OK


def cmd_storyboard(args: argparse.Namespace) -> int:
    """Every shot of a storyboard in this one process; exit 1 when some shot failed, 2 for a bad storyboard."""
    from .storyboard import validate_storyboard_file

    path = Path(args.file)
    if args.validate:
        board = validate_storyboard_file(path)
        print(f"{path}: ok ({len(board.shots)} shots)")
        return EXIT_OK
    if args.out is None:
        print("error: --out: required to render (or pass --validate)", file=sys.stderr)
        return EXIT_USAGE
    if args.actors < 0:
        raise SpecErrors([SpecError("--actors", "must be 0 or more", args.actors, "0 (one per GPU or CPU slot) or N")])
    from .step_capture import set_default_mode

    set_default_mode(args.capture)  # the shots run through execute here, one after another (on Ray: the actors')
    return _render_storyboard(path, Path(args.out), args)


def _ray_runner(args: argparse.Namespace, source: Any) -> tuple[Any, torch.device]:
    """The shots on Ray actors (--ray), with one aggregated progress bar for all of them; and the actors' device
    (--device auto: the cluster's GPUs when it has any, not this machine's)."""
    import torch
    from tqdm import tqdm

    from .cluster.pool import PoolSettings, connect
    from .cluster.storyboard import ray_runner
    from .device import pick_device

    address = None if args.ray == LOCAL_RAY else args.ray
    if args.device == "auto":
        device = torch.device("cuda" if connect(address).cluster_resources().get("GPU", 0) > 0 else "cpu")
    else:
        device = pick_device(args.device)
    settings = PoolSettings(actors=args.actors, device=device.type, threads=args.threads or 1, capture=args.capture)
    bar: list[tqdm] = []

    def on_progress(done: int, total: int) -> None:
        if args.quiet:
            return
        if not bar:
            bar.append(tqdm(total=total, desc="shots on Ray", unit="step", dynamic_ncols=True))
        if done != bar[0].n:
            bar[0].update(done - bar[0].n)

    def on_ready(actors: list[dict[str, Any]]) -> None:
        if not args.quiet:
            print(f"{len(actors)} Ray actors ready ({actors[0]['device']}, {actors[0]['threads']} threads each)")

    return ray_runner(source, address, settings, on_progress=on_progress, on_ready=on_ready), device


def _render_storyboard(path: Path, out: Path, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .device import pick_device
    from .refs import FolderSource
    from .storyboard import load_storyboard_file, render_storyboard

    board = load_storyboard_file(path)
    only, quiet = args.only, args.quiet
    source = FolderSource(path.parent)
    runner, device = _ray_runner(args, source) if args.ray is not None else (None, pick_device(args.device))
    bars: list[tqdm] = []

    def progress_for(index: int, shot: Shot) -> Callable[[Progress], None] | None:
        if quiet or runner is not None:
            return None
        bar = tqdm(total=board.steps, desc=f"{index + 1:03d} {shot.name}", unit="step", dynamic_ncols=True)
        bars.append(bar)
        return lambda progress: bar.update(progress.step - bar.n)

    def on_shot(report: ShotReport) -> None:
        for bar in bars:
            bar.close()
        bars.clear()
        if report.status == "failed":
            print(f"error: shot {report.index:03d} {report.name!r} failed: {report.error}", file=sys.stderr)
        elif not quiet:
            print(f"shot {report.index:03d} {report.name!r}: {report.file} in {report.seconds:.1f}s")

    reports = render_storyboard(board, source, out, device, only, on_shot, progress_for, runner)
    ran = [r for r in reports if r.status in ("done", "failed")]
    failed = sum(r.status == "failed" for r in ran)
    seconds = sum(r.seconds for r in ran)
    print(f"wrote {out / 'contact_sheet.png'}: {len(ran) - failed} of {len(ran)} shots in {seconds:.1f}s")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_fetch_models(args: argparse.Namespace) -> int:
    from .models import cache_dir, fetch_clip
    from .server.config import split_model_arg

    problems: list[SpecError] = []
    for text in args.models:
        try:
            name, tag = split_model_arg(text)
            path = fetch_clip(name, tag, field_path=text)
        except ValueError as exc:
            problems.append(SpecError(text, str(exc)))
        except SpecError as exc:
            problems.append(exc)
        else:
            print(f"{name}:{tag}: {path}")
    if problems:
        raise SpecErrors(problems)
    print(f"cache folder: {cache_dir()}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(
        Path(args.out), size=args.size, steps=args.steps, device_name=args.device, quiet=args.quiet,
        capture=args.capture,
    )  # fmt: skip
    return EXIT_OK


LOCAL_RAY = "local"  # --ray without an address: a Ray instance started by this process


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"CPU threads for torch (default {default_threads()} here: the cores less one, at most 8). The same "
        "device and thread count give the same bytes",
    )


def _add_job_commands(sub: argparse._SubParsersAction) -> None:
    run_p = sub.add_parser("run", help="run a job spec file")
    run_p.add_argument("spec", help="job spec JSON; image paths in it are relative to its folder")
    run_p.add_argument("--out", required=True, help="output folder")
    run_p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    run_p.add_argument("--quiet", action="store_true", help="no progress bar")
    run_p.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    add_capture(run_p)
    add_threads(run_p)
    run_p.set_defaults(func=cmd_run)

    val_p = sub.add_parser("validate", help="check a spec and its images without running it")
    val_p.add_argument("spec")
    val_p.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    val_p.set_defaults(func=cmd_validate)

    sub.add_parser("schema", help="print the job spec's JSON Schema").set_defaults(func=cmd_schema)
    sub.add_parser("presets", help="list the style presets").set_defaults(func=cmd_presets)

    demo_p = sub.add_parser("demo", help="build the bundled demo job from scikit-image photos and run it")
    demo_p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo_p.add_argument("--size", type=int, default=256)
    demo_p.add_argument("--steps", type=int, default=150)
    demo_p.add_argument("--device", default="auto")
    demo_p.add_argument("--quiet", action="store_true")
    add_capture(demo_p)
    add_threads(demo_p)
    demo_p.set_defaults(func=cmd_demo)


def _add_storyboard_and_model_commands(sub: argparse._SubParsersAction) -> None:
    board_p = sub.add_parser(
        "storyboard", help="render every shot of a storyboard file in one process (README: Storyboards)"
    )
    board_p.add_argument("file", help="storyboard JSON; image paths in it are relative to its folder")
    board_p.add_argument("--out", help="output folder: shots/NNN_<name>.png, contact_sheet.png, storyboard.json")
    board_p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    board_p.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="render only these shots")
    board_p.add_argument("--quiet", action="store_true", help="no progress bars")
    board_p.add_argument("--validate", action="store_true", help="check the storyboard and its images; run nothing")
    board_p.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    board_p.add_argument(
        "--ray", nargs="?", const=LOCAL_RAY, metavar="ADDRESS",
        help="render the shots on Ray actors: on the cluster at ADDRESS (e.g. auto, or ray://head:10001), or on a "
        "local Ray started here when no ADDRESS is given (needs regia-engine[cluster])",
    )  # fmt: skip
    board_p.add_argument(
        "--actors", type=int, default=0,
        help="how many Ray actors (default: one per GPU, or one per --threads CPUs of the cluster)",
    )  # fmt: skip
    add_capture(board_p)
    add_threads(board_p)
    board_p.set_defaults(func=cmd_storyboard)

    fetch_p = sub.add_parser(
        "fetch-models", help="download open_clip weights into the model cache, for use offline or on another machine"
    )
    fetch_p.add_argument("models", nargs="+", metavar="NAME:TAG", help="e.g. ViT-B-32:laion2b_s34b_b79k")
    fetch_p.set_defaults(func=cmd_fetch_models)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine", description="Regia engine: region-guided image generation"
    )
    parser.add_argument("--version", action="version", version=f"regia-engine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_job_commands(sub)
    add_serve_command(sub, add_threads)
    _add_storyboard_and_model_commands(sub)
    add_segment_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "offline", False):
        go_offline()
    tune_allocator()
    try:
        if hasattr(args, "capture"):
            check_capture(args.capture)
        if getattr(args, "threads", None) is not None and args.threads < 1:
            raise SpecErrors([SpecError("--threads", "must be at least 1", args.threads)])
        if hasattr(args, "threads") and args.command != "serve":  # serve sets them once its options are checked
            from .process import set_threads

            set_threads(args.threads)
        return args.func(args)
    except RegiaError as exc:
        if isinstance(exc, JobCancelled):
            print(f"cancelled: {exc}", file=sys.stderr)
            return EXIT_CANCELLED
        _print_error(exc)
        return EXIT_USAGE
    except OSError as exc:  # a folder that cannot be written, a full disk: the user's to fix
        name = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write{name}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("cancelled: interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except torch_oom_types() as exc:  # pragma: no cover - needs a GPU
        print(f"error: out of memory: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED


def torch_oom_types() -> tuple[type[BaseException], ...]:
    try:
        import torch

        return (torch.OutOfMemoryError,)
    except (ImportError, AttributeError):  # pragma: no cover
        return ()
