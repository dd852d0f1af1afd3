"""`endobench track`: propagate masks through a dataset's clips and write DAVIS-layout output.

Output: ``OUT/<clip>/<frame>.png`` palette PNGs (one per input frame, same names) and
``OUT/track.json`` (parameters, keyframes, per-frame confidence, timings, weights provenance),
so any DAVIS-compatible evaluator can score the masks.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

from endobench.io_utils import atomic_write_json, sha256_file
from endobench.propagation.fusion import FusionConfig
from endobench.propagation.keyframes import KeyframeSpecError, build_keyframe_policy


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``endobench track``."""
    p = subparsers.add_parser(
        "track",
        help="propagate masks from keyframes through video clips (DAVIS-layout output)",
        description=__doc__,
    )
    p.add_argument("--dataset", required=True, help="dataset name in the registry")
    p.add_argument("--datasets", default=None, help="registry file (default: see docs)")
    p.add_argument("--split", default=None, help="dataset split (default: all)")
    p.add_argument(
        "--sequence", action="append", default=None,
        help="clip name to track (repeatable; default: every clip)",
    )  # fmt: skip
    p.add_argument(
        "--propagation",
        default="flow:dis",
        help="flow:dis | flow:dis:PRESET | flow:farneback | flow:raft_small | flow:raft_large | "
        "affinity:BACKBONE | copy (default flow:dis)",
    )
    p.add_argument(
        "--keyframes", default="every:10",
        help="first | every:K | adaptive[:THRESH] | all (default every:10)",
    )  # fmt: skip
    p.add_argument("--keyframe-source", choices=("gt", "model"), default="gt")
    p.add_argument("--checkpoint", default=None, help="trained segmenter (endobench train)")
    p.add_argument(
        "--weights", default=None, help="local weights for RAFT or the affinity backbone"
    )
    p.add_argument(
        "--random-init", action="store_true",
        help="allow untrained RAFT / backbone weights (plumbing tests only)",
    )  # fmt: skip
    p.add_argument(
        "--flow-confidence", choices=("photometric", "forward_backward", "none"),
        default="photometric", help="how flow propagation measures its confidence",
    )  # fmt: skip
    p.add_argument(
        "--fusion",
        action="store_true",
        help="hysteresis labelling; with --checkpoint also blend the segmenter on every frame",
    )
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _load_segmenter(checkpoint: str | None, device: str | None) -> tuple[Any, dict[str, Any]]:
    if checkpoint is None:
        return None, {}
    from endobench.train import load_checkpoint

    path = Path(checkpoint)
    model, meta = load_checkpoint(path, device=device or "cpu")
    info = {
        "path": str(path.resolve()),
        "sha256": sha256_file(path),
        "weights": meta.get("weights"),
        "classes": meta.get("classes"),
    }
    return model, info


def run(args: argparse.Namespace) -> int:
    """Track every selected clip; returns 0, or 2 on a usage error (message on stderr)."""
    from endobench.data import open_dataset
    from endobench.data.label_png import write_palette_png
    from endobench.propagation.tracker import build_propagator, describe_propagator, track

    try:
        policy = build_keyframe_policy(args.keyframes)
    except KeyframeSpecError as exc:
        print(f"endobench track: --keyframes: {exc}", file=sys.stderr)
        return 2
    if args.keyframe_source == "model" and args.checkpoint is None:
        print("endobench track: --keyframe-source model needs --checkpoint PATH", file=sys.stderr)
        return 2
    dataset = open_dataset(args.dataset, split=args.split, registry=args.datasets)
    if dataset.kind != "video":
        print(
            f"endobench track: dataset {args.dataset!r} holds still images ({dataset.kind}); "
            "tracking needs a video dataset",
            file=sys.stderr,
        )
        return 2
    clips = dataset.clips()
    if args.sequence:
        known = {c.name for c in clips}
        missing = [s for s in args.sequence if s not in known]
        if missing:
            print(
                f"endobench track: --sequence {', '.join(missing)} not in dataset "
                f"{args.dataset!r}; known: {', '.join(sorted(known))}",
                file=sys.stderr,
            )
            return 2
        clips = [c for c in clips if c.name in set(args.sequence)]
    segmenter, segmenter_info = _load_segmenter(args.checkpoint, args.device)
    fusion = FusionConfig() if args.fusion else None
    out = Path(args.out)
    record: dict[str, Any] = {
        "command": "endobench track",
        "parameters": {
            "dataset": args.dataset,
            "split": args.split,
            "propagation": args.propagation,
            "keyframes": policy.spec,
            "keyframe_source": args.keyframe_source,
            "flow_confidence": args.flow_confidence,
            "fusion": None if fusion is None else fusion.model_dump(),
            "checkpoint": segmenter_info or None,
        },
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "clips": {},
    }
    for clip in clips:
        propagator = build_propagator(
            args.propagation,
            weights=args.weights,
            allow_random_init=args.random_init,
            fov=clip.fov_mask,
            device=args.device,
            flow_confidence=args.flow_confidence,
        )
        folder = out / clip.name

        def write(t: int, mask, folder: Path = folder, names: list[str] = clip.frame_names) -> None:
            write_palette_png(folder / f"{Path(names[t]).stem}.png", mask)

        result = track(
            clip, propagator, policy, segmenter=segmenter, fusion=fusion,
            keyframe_source=args.keyframe_source, progress=not args.no_progress, sink=write,
        )  # fmt: skip
        record["propagator"] = describe_propagator(propagator)
        record["clips"][clip.name] = {
            "frames": result.num_frames,
            "keyframes": result.keyframes,
            "keyframes_per_100": result.keyframes_per_100,
            "confidence": [round(c, 4) for c in result.confidence],
            "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
            "propagation_fps": round(result.propagation_fps(), 2),
        }
        # Rewritten after every clip so a failure later keeps what is done.
        atomic_write_json(out / "track.json", record)
    print(f"wrote {len(clips)} clip(s) to {out}")
    return 0
