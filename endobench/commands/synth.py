"""`endobench synth`: write a synthetic endoscopic clip in the DAVIS layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from endobench.data.davis_layout import write_davis_clip
from endobench.data.synthetic import SyntheticConfig, generate_clip
from endobench.errors import UserError, validation_message


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``endobench synth``."""
    defaults = SyntheticConfig()
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic endoscopic clip in DAVIS layout",
        description=(
            "Render a synthetic endoscopic clip (deterministic by seed) as "
            "OUT/JPEGImages/480p/NAME/00000.jpg and palette PNG masks in "
            "OUT/Annotations/480p/NAME/00000.png."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="output root (DAVIS layout)")
    parser.add_argument("--frames", type=int, default=defaults.num_frames, help="number of frames")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same clip)")
    parser.add_argument("--name", default=None, help="sequence name (default synthetic_SEED)")
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--objects", type=int, default=defaults.num_objects, help="objects K")
    parser.add_argument(
        "--difficulty", choices=["easy", "medium", "hard"], default=defaults.difficulty
    )
    parser.add_argument("--no-occlusions", action="store_true", help="no smoke, blood or exits")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (1..100)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render the clip and write it; exit code 0 on success, 2 on invalid options."""
    try:
        config = SyntheticConfig(
            height=args.height,
            width=args.width,
            num_frames=args.frames,
            num_objects=args.objects,
            difficulty=args.difficulty,
            occlusions=not args.no_occlusions,
        )
    except ValidationError as exc:
        print(f"endobench synth: invalid options: {validation_message(exc)}", file=sys.stderr)
        return 2
    if args.seed < 0:
        print(f"endobench synth: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    if not 1 <= args.quality <= 100:
        print(f"endobench synth: --quality must be in 1..100, got {args.quality}", file=sys.stderr)
        return 2
    existing = next(p for p in (args.out, *args.out.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"--out {args.out}: {existing} is a file, expected a folder")
    clip = generate_clip(config, args.seed, name=args.name)
    write_davis_clip(clip, args.out, quality=args.quality, progress=True)
    print(f"wrote {len(clip)} frames of {clip.name!r} to {args.out} (classes {clip.classes})")
    return 0
