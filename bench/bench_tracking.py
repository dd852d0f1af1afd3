"""Benchmark tracking: accuracy per (propagation x keyframe policy) and speed per stage.

Quality: J&F (DAVIS table, semi-supervised protocol, keyframe_source="gt") and, for the
every:10 policy, temporal stability T (costly: about 2.5 s per DAVIS sequence) on the real DAVIS samples (shared/data/DAVIS, 4 sequences, 480x854) and on
synthetic clips, including the "copy the last keyframe mask" baseline (propagation "copy").
Speed: per-frame milliseconds of each stage (flow, warp, confidence, fusion = labelling) and
end-to-end propagation frames/s (flow + warp + confidence + fusion, keyframe segmentation and
I/O excluded) at 480x854, medians over repeats. Prints JSON (and writes it with --out).

Run: .venv/bin/python bench/bench_tracking.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402

from endobench.data import Clip, open_dataset  # noqa: E402
from endobench.data.synthetic import generate_clip  # noqa: E402
from endobench.data.synthetic_config import CameraMotion, SyntheticConfig  # noqa: E402
from endobench.metrics import evaluate_sequence, summarize  # noqa: E402
from endobench.propagation import build_keyframe_policy, build_propagator, track  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("ENDOBENCH_SAMPLES", REPO.parent / "shared" / "data")).resolve()
STAGES = ("flow", "warp", "confidence", "fusion")


class CachedClip(Clip):
    """A clip whose frames are decoded once, so timing repeats measure propagation, not JPEG."""

    def __init__(self, clip: Clip) -> None:
        frames = [clip.frame(i) for i in range(len(clip))]
        masks = {i: clip.mask(i) for i in clip.annotated}
        super().__init__(
            clip.name, clip.frame_names, frames.__getitem__, masks.__getitem__, clip.annotated,
            clip.classes, clip.fps, clip.fov_mask, clip.meta, clip.void_id,
        )  # fmt: skip


def davis_clips() -> list[Clip]:
    registry = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_tracking_datasets.yaml"
    registry.write_text(f"datasets:\n  davis:\n    format: davis\n    root: {SAMPLES / 'DAVIS'}\n")
    return [CachedClip(c) for c in open_dataset("davis", registry=registry).clips()]


def synthetic_clips(quick: bool) -> list[Clip]:
    seeds = range(2 if quick else 3)
    camera = SyntheticConfig(
        height=240, width=320, num_frames=31, num_objects=1, object_kinds=("polyp",),
        difficulty="easy", occlusions=False, camera=CameraMotion(translation=(1.5, 1.0)),
    )  # fmt: skip
    medium = SyntheticConfig(height=240, width=320, num_frames=48, difficulty="medium")
    clips = [generate_clip(camera, s, name=f"camera_easy_{s}") for s in seeds]
    clips += [generate_clip(medium, s, name=f"medium_{s}") for s in seeds]
    return [CachedClip(c) for c in clips]


def score(clips: list[Clip], spec: str, policy: str, with_t: bool) -> dict[str, Any]:
    frames, keyframes, fps = [], 0, []
    for clip in clips:
        result = track(
            clip, build_propagator(spec, fov=clip.fov_mask), build_keyframe_policy(policy),
            progress=False,
        )  # fmt: skip
        gts = [clip.mask(t) for t in range(len(clip))]
        metrics = ("jf", "t") if with_t else ("jf",)
        frames.append(evaluate_sequence(gts, result.masks, metrics=metrics, sequence=clip.name))
        keyframes += len(result.keyframes)
        fps.append(result.propagation_fps())
    table = summarize(pd.concat(frames, ignore_index=True)).loc["global"]
    out = {k: round(float(table[k]), 4) for k in ("J&F-Mean", "J-Mean", "F-Mean", "J-Decay")}
    if "T-Mean" in table:
        out["T-Mean"] = round(float(table["T-Mean"]), 4)
    out["keyframes_per_100"] = round(100.0 * keyframes / sum(len(c) for c in clips), 2)
    out["propagation_fps_median"] = round(statistics.median(fps), 1)
    return out


def speed(clips: list[Clip], spec: str, repeats: int) -> dict[str, Any]:
    """Per-frame ms per stage and end-to-end fps (medians over repeats x clips), first-frame only."""
    per_stage: dict[str, list[float]] = {k: [] for k in STAGES}
    fps: list[float] = []
    for _ in range(repeats):
        for clip in clips:
            result = track(
                clip, build_propagator(spec), build_keyframe_policy("first"), progress=False
            )
            n = result.num_frames - 1
            for k in STAGES:
                per_stage[k].append(1e3 * result.timings.get(k, 0.0) / n)
            fps.append(result.propagation_fps())
    out = {f"{k}_ms": round(statistics.median(v), 2) for k, v in per_stage.items()}
    out["end_to_end_fps"] = round(statistics.median(fps), 1)
    out["end_to_end_fps_best"] = round(max(fps), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer configurations and repeats")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    started = time.perf_counter()
    davis = davis_clips()
    synthetic = synthetic_clips(args.quick)
    props = ["copy", "flow:dis:ultrafast", "flow:dis:medium"]
    policies = ["first", "every:10", "adaptive"]
    if not args.quick:
        props += ["flow:dis:fast", "flow:farneback"]
        policies.append("every:5")

    report: dict[str, Any] = {
        "benchmark": "tracking",
        "machine": machine_facts(),
        "load_average_at_start": os.getloadavg(),
        "data": {
            "davis": {c.name: len(c) for c in davis},
            "synthetic": {c.name: len(c) for c in synthetic},
        },
        "speed_480x854": {},
        "davis": {},
        "synthetic": {},
    }
    repeats = 2 if args.quick else 3
    for spec in tqdm(("flow:dis:ultrafast", "flow:dis:fast", "flow:dis:medium"), desc="speed"):
        report["speed_480x854"][spec] = speed(davis[:2], spec, repeats)
    report["speed_480x854"]["target_fps"] = 60
    configs = [(spec, policy) for spec in props for policy in policies]
    for spec, policy in tqdm(configs, desc="quality"):
        key = f"{spec} | {policy}"
        with_t = policy == "every:10"
        report["davis"][key] = score(davis, spec, policy, with_t=with_t)
        report["synthetic"][key] = score(synthetic, spec, policy, with_t=False)
        if args.out:  # keep what is done if a later configuration fails
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    report["load_average_at_end"] = os.getloadavg()
    report["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
