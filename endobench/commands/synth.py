"""`endobench synth`: write a synthetic endoscopic clip in the DAVIS layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError
from tqdm import tqdm

from endobench.data.label_png import write_palette_png
from endobench.data.synthetic import SyntheticConfig, generate_clip
from endobench.errors import UserError, validation_message
from endobench.io_utils import atomic_write_bytes

DAVIS_RESOLUTION = "480p"  # the DAVIS folder name, kept whatever the frame size


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


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    """Write an RGB frame as JPEG atomically (temp file, then rename)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: could not encode JPEG")
    atomic_write_bytes(path, encoded.tobytes(), fsync=False)


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
    image_dir = args.out / "JPEGImages" / DAVIS_RESOLUTION / clip.name
    mask_dir = args.out / "Annotations" / DAVIS_RESOLUTION / clip.name
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(len(clip)), desc=f"synth {clip.name}", unit="frame"):
        stem = clip.frame_names[i]
        _write_jpeg(image_dir / f"{stem}.jpg", clip.frame(i), args.quality)
        mask = clip.mask(i)
        assert mask is not None  # every synthetic frame is annotated
        write_palette_png(mask_dir / f"{stem}.png", mask)
    print(f"wrote {len(clip)} frames of {clip.name!r} to {args.out} (classes {clip.classes})")
    return 0
