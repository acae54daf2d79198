"""`python -m engine segment IMAGE --out MAP.png`: split an image into parts (engine/segment.py); writes the colour-key
region map and prints the parts as JSON, as the server's POST /segment answers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .segment_options import DEFAULT_PARTS, MAX_PARTS, METHODS, MIN_PARTS


def cmd_segment(args: argparse.Namespace) -> int:
    from .images import save_png, to_rgb
    from .refs import FolderSource
    from .segment import SegmentRequest, segment
    from .spec import validate_model

    image = Path(args.image)
    asked: SegmentRequest = validate_model(
        SegmentRequest, {"image": image.name, "method": args.method, "parts": args.parts}, "the options"
    )
    pixels = to_rgb(FolderSource(image.parent).open(image.name, "image"))
    found = segment(pixels, asked.method, asked.parts)
    out = Path(args.out)
    save_png(out, found.region_map())
    height, width = pixels.shape[:2]
    answer = {"width": width, "height": height, "method": asked.method, "map": str(out)}
    print(json.dumps({**answer, "parts": [part.to_json() for part in found.parts]}, indent=1))
    return 0


def add_segment_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("segment", help="split an image into parts: a colour-key region map, one colour a part")
    parser.add_argument("image", help="the image to split (PNG, JPEG, ...)")
    parser.add_argument("--out", required=True, help="the region map to write (PNG)")
    parser.add_argument("--method", default="slic", help=f"{' or '.join(METHODS)} (default slic)")
    parser.add_argument(
        "--parts", type=int, default=DEFAULT_PARTS, help=f"about how many parts, {MIN_PARTS} to {MAX_PARTS}"
    )
    parser.set_defaults(func=cmd_segment)
