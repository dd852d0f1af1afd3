"""`endobench track`: propagate masks through a dataset's clips and write DAVIS-layout output.

Output: ``OUT/<clip>/<frame>.png`` palette PNGs (one per input frame, same names) and
``OUT/track.json`` (parameters, keyframes, per-frame confidence, timings, weights provenance),
so any DAVIS-compatible evaluator can score the masks. Each clip is written into a hidden temp
folder renamed to ``OUT/<clip>`` only when the clip is complete: a failure leaves no half clip.
Frames are decoded ahead and PNGs encoded behind in threads (OpenCV and zlib release the GIL).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from endobench.errors import UserError

# PNGs in flight at most (encode behind); bounds memory to this many masks.
WRITE_QUEUE = 8


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``endobench track`` (spec forms and choices come from the registries)."""
    from typing import get_args

    from endobench.propagation.flow_propagation import ConfidenceMode
    from endobench.propagation.propagators import BIDIRECTIONAL_PROPAGATION, DEFAULT_PROPAGATION
    from endobench.registry import FLOW_ESTIMATORS, KEYFRAME_POLICIES, PROPAGATORS

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
        default=None,
        help=f"{PROPAGATORS.forms()}; METHOD: {FLOW_ESTIMATORS.forms()} (default "
        f"{DEFAULT_PROPAGATION}; with --bidirectional {BIDIRECTIONAL_PROPAGATION})",
    )
    p.add_argument(
        "--keyframes", default="every:10",
        help=f"{KEYFRAME_POLICIES.forms()} (default every:10)",
    )  # fmt: skip
    p.add_argument("--keyframe-source", choices=("gt", "model"), default="gt")
    p.add_argument(
        "--bidirectional", action="store_true",
        help="also propagate backward from the next keyframe and fuse both directions",
    )  # fmt: skip
    p.add_argument("--checkpoint", default=None, help="trained segmenter (endobench train)")
    p.add_argument(
        "--weights", default=None, help="local weights for RAFT or the affinity backbone"
    )
    p.add_argument(
        "--random-init", action="store_true",
        help="allow untrained RAFT / backbone weights (plumbing tests only)",
    )  # fmt: skip
    p.add_argument(
        "--flow-confidence", choices=get_args(ConfidenceMode),
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
    from endobench.io_utils import sha256_file
    from endobench.models import load_segnet

    path = Path(checkpoint)
    if not path.is_file():
        raise UserError(
            f"--checkpoint {path}: no such file (expected best.pt from endobench train)"
        )
    try:
        model, spec = load_segnet(path, device=device or "cpu")
    except UserError:
        raise
    except Exception as exc:  # a user's file: whatever torch says, name the file and the cause
        cause = " ".join(str(exc).split())[:300]
        raise UserError(
            f"--checkpoint {path}: not a loadable endobench checkpoint ({type(exc).__name__}: "
            f"{cause})"
        ) from exc
    info = {
        "path": str(path.resolve()),
        "sha256": sha256_file(path),
        "weights": spec.weights.to_dict() if spec.weights is not None else None,
        "classes": spec.classes,
    }
    return model, info


def _open_clips(args: argparse.Namespace) -> list:
    from endobench.data import open_dataset
    from endobench.data.errors import DataError
    from endobench.data.registry import RegistryError

    try:
        dataset = open_dataset(args.dataset, split=args.split, registry=args.datasets)
        if dataset.kind != "video":
            raise UserError(
                f"dataset {args.dataset!r} holds still images ({dataset.kind}); tracking needs a "
                "video dataset"
            )
        clips = dataset.clips()
    except (RegistryError, DataError) as exc:
        raise UserError(" ".join(str(exc).split())) from exc
    if args.sequence:
        known = {c.name for c in clips}
        missing = [s for s in args.sequence if s not in known]
        if missing:
            raise UserError(
                f"--sequence {', '.join(missing)} not in dataset {args.dataset!r}; known: "
                f"{', '.join(sorted(known))}"
            )
        clips = [c for c in clips if c.name in set(args.sequence)]
    return clips


class ClipWriter:
    """Writes one clip's PNGs into a temp folder on a thread pool; ``commit`` renames it."""

    def __init__(self, out: Path, clip, pool: ThreadPoolExecutor) -> None:
        self.final = out / clip.name
        self.folder = Path(tempfile.mkdtemp(prefix=f".{clip.name}.partial-", dir=out))
        self.names = [Path(n).stem for n in clip.frame_names]
        self.pool = pool
        self.pending: deque[Future] = deque()

    def __call__(self, t: int, mask) -> None:
        from endobench.data.label_png import write_palette_png

        while len(self.pending) >= WRITE_QUEUE:
            self.pending.popleft().result()
        path = self.folder / f"{self.names[t]}.png"
        self.pending.append(self.pool.submit(write_palette_png, path, mask, atomic=False))

    def commit(self) -> None:
        """Wait for every PNG, then move the complete clip into place (replacing an old one)."""
        while self.pending:
            self.pending.popleft().result()
        if self.final.exists():
            shutil.rmtree(self.final)
        self.folder.rename(self.final)

    def discard(self) -> None:
        for future in self.pending:
            future.cancel()
        for future in self.pending:
            if not future.cancelled():
                future.exception()
        shutil.rmtree(self.folder, ignore_errors=True)


def _out_folder(out: str) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path}: exists and is not a folder (expected an output folder)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {path}: cannot create the folder ({exc.strerror})") from exc
    return path


def run(args: argparse.Namespace) -> int:
    """Track every selected clip; returns 0 (user errors raise ``UserError``)."""
    from endobench.data.errors import DataError
    from endobench.io_utils import atomic_write_json
    from endobench.propagation.fusion import FusionConfig
    from endobench.propagation.propagators import default_propagation
    from endobench.propagation.track_clips import track_clips
    from endobench.registry import KEYFRAME_POLICIES, PROPAGATORS

    def flag(name: str, exc: UserError) -> UserError:
        return UserError(f"{name}: {exc}")

    try:
        policy = KEYFRAME_POLICIES.build(args.keyframes)
    except UserError as exc:
        raise flag("--keyframes", exc) from None
    if args.propagation is None:
        args.propagation = default_propagation(args.bidirectional)
    try:
        PROPAGATORS.parse(args.propagation)
    except UserError as exc:
        raise flag("--propagation", exc) from None
    if args.keyframe_source == "model" and args.checkpoint is None:
        raise UserError("--keyframe-source model needs --checkpoint PATH")
    clips = _open_clips(args)
    out = _out_folder(args.out)
    segmenter, segmenter_info = _load_segmenter(args.checkpoint, args.device)
    fusion = FusionConfig() if args.fusion else None
    record: dict[str, Any] = {
        "command": "endobench track",
        "parameters": {
            "dataset": args.dataset,
            "split": args.split,
            "propagation": args.propagation,
            "keyframes": policy.spec,
            "keyframe_source": args.keyframe_source,
            "bidirectional": args.bidirectional,
            "flow_confidence": args.flow_confidence,
            "fusion": None if fusion is None else fusion.model_dump(),
            "checkpoint": segmenter_info or None,
        },
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "clips": {},
    }
    writers: dict[str, ClipWriter] = {}
    with ThreadPoolExecutor(2, thread_name_prefix="png") as pool:

        def sink(clip) -> ClipWriter:
            writers[clip.name] = ClipWriter(out, clip, pool)
            return writers[clip.name]

        results = track_clips(
            clips, args.propagation, policy, keyframe_source=args.keyframe_source,
            segmenter=segmenter, fusion=fusion, bidirectional=args.bidirectional,
            flow_confidence=args.flow_confidence, weights=args.weights,
            allow_random_init=args.random_init, device=args.device,
            progress=not args.no_progress, sinks=sink,
        )  # fmt: skip
        try:
            for clip, result in results:
                writers.pop(clip.name).commit()
                record["propagator"] = result.meta["propagator"]
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
        except DataError as exc:
            raise UserError(" ".join(str(exc).split())) from exc
        finally:
            for writer in writers.values():
                writer.discard()
    print(f"wrote {len(clips)} clip(s) to {out}")
    return 0
