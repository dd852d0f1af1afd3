"""Benchmark tracking: J&F vs keyframe cost on real video, and the whole command's speed.

Quality (semi-supervised protocol, ground-truth keyframes, annotated frames scored): J&F and
keyframes per 100 frames on the real samples DAVIS (4 sequences, 480x854), CholecSeg8k (40
consecutive laparoscopic frames, 12 classes) and CVC-ClinicDB (15 sparse colonoscopy
sequences), for copy-last-keyframe, forward DIS and bidirectional DIS with every:5 / every:10
keyframes, plus how well each candidate flow carries the truth one frame (``flow_quality``: the
one-step warp-of-truth IoU and the flow's ms per frame, same run), what each flow option buys
(DIS preset, flow confidence) at every:10, what each
change to the defaults bought (``what_each_change_bought``: before / after, every:5 and every:10,
forward and bidirectional, real samples and the built-in synthetic clips), and where
bidirectional wins or loses against forward, split by whether an object is present at both
keyframes around a frame or at one only.
Speed: per-stage milliseconds of DIS propagation at 480x854, and the whole `endobench track`
command (start-up, decoding, propagation, PNG writing) on a synthetic 600-frame 480x854 clip
against decoding those JPEGs + DIS ultrafast alone, measured side by side in this run.
Prints JSON with the machine (and writes it with --out); --figure PATH draws J&F vs keyframes.

Run: python bench/bench_tracking.py [--quick] [--out FILE] [--figure PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

from endobench.data import Clip, open_dataset
from endobench.metrics import evaluate_sequence, summarize
from endobench.propagation import (
    Bidirectional,
    DISFlow,
    FlowPropagator,
    Propagator,
    Tracker,
    build_propagator,
    track,
    track_clips,
)
from endobench.propagation.flow import PROPAGATION_DIS_ITERATIONS
from endobench.propagation.flow_quality import one_step_warp_quality
from endobench.propagation.propagators import BIDIRECTIONAL_PROPAGATION
from endobench.propagation.tracker import clip_class_ids
from endobench.registry import FLOW_ESTIMATORS, KEYFRAME_POLICIES

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


def real_clips() -> dict[str, list[Clip]]:
    """The three real samples, frames decoded once (timing repeats measure propagation)."""
    registry = Path(tempfile.mkdtemp()) / "datasets.yaml"
    registry.write_text(
        "datasets:\n"
        f"  davis:\n    format: davis\n    root: {SAMPLES / 'DAVIS'}\n"
        f"  cholecseg8k:\n    format: cholecseg8k\n    root: {SAMPLES / 'CholecSeg8k'}\n"
        f"  cvc-clinicdb:\n    format: cvc-clinicdb\n    root: {SAMPLES / 'CVC-ClinicDB'}\n"
    )
    return {
        name: [CachedClip(c) for c in open_dataset(name, registry=registry).clips()]
        for name in ("davis", "cholecseg8k", "cvc-clinicdb")
    }


def score(clips: list[Clip], spec: str | None, policy: str, bidirectional: bool, **opts) -> dict:
    """J&F over the annotated frames of ``clips`` and the keyframe cost (spec None: the
    default of the direction, ``default_propagation``)."""
    frames, keyframes, total = [], 0, 0
    for clip, result in track_clips(
        clips, spec, policy, bidirectional=bidirectional, progress=False, **opts
    ):
        frames.append(_rows(clip, result))
        keyframes += len(result.keyframes)
        total += result.num_frames
    out = _summary(frames)
    out["keyframes_per_100"] = round(100.0 * keyframes / total, 2)
    return out


def _rows(clip: Clip, result) -> pd.DataFrame:
    gts = [clip.mask(t) for t in clip.annotated]
    preds = [result.masks[t] for t in clip.annotated]
    return evaluate_sequence(gts, preds, sequence=clip.name)


def _summary(frames: list[pd.DataFrame]) -> dict:
    table = summarize(pd.concat(frames, ignore_index=True)).loc["global"]
    return {k: round(float(table[k]), 4) for k in ("J&F-Mean", "J-Mean", "F-Mean")}


def score_built(
    clips: list[Clip], make: Callable[[Clip], Propagator], policy: str, bidirectional: bool
) -> dict:
    """``score`` for propagators built by ``make(clip)`` (settings the specs do not expose)."""
    frames = []
    for clip in clips:
        backward = make(clip) if bidirectional else None
        result = track(
            clip, make(clip), KEYFRAME_POLICIES.build(policy), progress=False, backward=backward
        )
        frames.append(_rows(clip, result))
    return _summary(frames)


def score_one_sided(clips: list[Clip], policy: str, one_sided: bool) -> dict:
    """Bidirectional J&F (default flow) with or without the per-object one-sided class rule."""
    frames = []
    for clip in clips:
        tracker = Tracker(
            build_propagator("flow:dis", fov=clip.fov_mask), KEYFRAME_POLICIES.build(policy),
            class_ids=clip_class_ids(clip), void_id=clip.void_id,
        )  # fmt: skip
        backward = build_propagator("flow:dis", fov=clip.fov_mask)
        bidi = Bidirectional(tracker, backward, one_sided=one_sided)
        masks = {}
        for t in range(len(clip)):
            for result in bidi.step(clip.frame(t), partial(clip.mask, t)):
                masks[result.index] = result.labels
        for result in bidi.flush():
            masks[result.index] = result.labels
        gts = [clip.mask(t) for t in clip.annotated]
        preds = [masks[t] for t in clip.annotated]
        frames.append(evaluate_sequence(gts, preds, sequence=clip.name))
    return _summary(frames)


def change_ablation(data: dict[str, list[Clip]], policies: list[str]) -> dict[str, Any]:
    """What each change to flow propagation bought: J&F before and after, per dataset.

    Options that are not defaults (labelled ``option:``) are measured the same way.
    """
    changes: dict[str, Callable[[Clip], Propagator]] = {
        "round 2: DIS ultrafast, preset's 12 inverse-search iterations": lambda c: FlowPropagator(
            DISFlow("ultrafast"), fov=c.fov_mask
        ),
        f"converged DIS: {PROPAGATION_DIS_ITERATIONS} iterations (default now)": (
            lambda c: build_propagator("flow:dis", fov=c.fov_mask)
        ),
        # It wins everywhere but costs about 3x the flow time: the default of bidirectional
        # (offline) tracking since round 6, forward keeps quarter resolution. Round 6, J&F
        # bidirectional every:5 / every:10 before -> after: DAVIS 0.970 / 0.939 -> 0.974 / 0.947,
        # CholecSeg8k 0.935 / 0.891 -> 0.936 / 0.893, CVC-ClinicDB 0.533 / 0.365 -> 0.552 / 0.377,
        # synthetic 0.928 / 0.860 -> 0.939 / 0.879; one-step warp-of-truth IoU (flow_quality)
        # 0.951 -> 0.960, 0.850 -> 0.853, 0.581 -> 0.596, 0.898 -> 0.910.
        "DIS flow field at half resolution (finest_scale=1; bidirectional default now)": (
            lambda c: FlowPropagator(
                DISFlow("ultrafast", PROPAGATION_DIS_ITERATIONS, finest_scale=1), fov=c.fov_mask
            )
        ),
    }
    out: dict[str, Any] = {name: {} for name in data}
    for label, make in changes.items():
        for name, clips in data.items():
            for policy in policies:
                for bidi in (False, True):
                    key = f"{label} | {'bidirectional' if bidi else 'forward'} | {policy}"
                    out[name][key] = score_built(clips, make, policy, bidi)
    # Fusion rules (forward is unchanged by them, so bidirectional only).
    rules = {
        "round 3: one-sided classes blended per pixel with 'absent'": False,
        "one-sided classes per object: nearer keyframe decides, carried whole (default now)": True,
        # Round 5, inside that rule: a dropped object's pixels go to the other classes in
        # proportion to their blend, no longer to background (before: 0.9351 / 0.8903 on
        # CholecSeg8k every:5 / every:10, now 0.9352 / 0.8909; the other samples unchanged).
    }
    for label, one_sided in rules.items():
        for name, clips in data.items():
            for policy in policies:
                key = f"{label} | bidirectional | {policy}"
                out[name][key] = score_one_sided(clips, policy, one_sided)
    return out


def presence_split(clips: list[Clip], policy: str = "every:10") -> dict[str, Any]:
    """Where bidirectional wins or loses against forward (default flow), object by segment.

    Each scored (frame, object) row between two keyframes k < t < k' is put in one group: the
    object is present (has pixels) at both keyframes, at k only, at k' only, or at neither.
    Per group: rows and the mean of (J + F) / 2 forward and bidirectional (a row mean, not the
    DAVIS per-object mean); ``by object``: the same per clip and object (class name).
    Frames after the last keyframe (forward only) are left out.
    """
    runs = {}
    for bidi in (False, True):
        runs[bidi] = list(
            track_clips(clips, "flow:dis", policy, bidirectional=bidi, progress=False)
        )
    groups: dict[str, dict[str, list[float]]] = {}
    by_object: dict[str, dict[str, list[float]]] = {}
    for (clip, fwd), (_, bid) in zip(runs[False], runs[True], strict=True):
        rows_f, rows_b = _rows(clip, fwd), _rows(clip, bid)
        names = {i: clip.classes.get(i, str(i)) for i in rows_f["object"].unique()}
        keys = sorted(fwd.keyframes)
        present = {k: set(np.unique(np.asarray(clip.mask(k))).tolist()) for k in keys}
        for (_, rf), (_, rb) in zip(rows_f.iterrows(), rows_b.iterrows(), strict=True):
            t, obj = int(rf["frame_index"]), int(rf["object"])
            before = [k for k in keys if k < t]
            after = [k for k in keys if k > t]
            if t in keys or not before or not after:
                continue
            at_k, at_next = obj in present[before[-1]], obj in present[after[0]]
            group = {
                (True, True): "present at both keyframes",
                (True, False): "at the earlier keyframe only",
                (False, True): "at the later keyframe only",
                (False, False): "at neither",
            }[at_k, at_next]
            for key, table in ((group, groups), (f"{clip.name}: {names[obj]}", by_object)):
                g = table.setdefault(key, {"forward": [], "bidirectional": []})
                g["forward"].append((rf["J"] + rf["F"]) / 2)
                g["bidirectional"].append((rb["J"] + rb["F"]) / 2)

    def means(table: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
        return {
            key: {
                "rows": len(v["forward"]),
                "forward_JF": round(float(np.mean(v["forward"])), 4),
                "bidirectional_JF": round(float(np.mean(v["bidirectional"])), 4),
            }
            for key, v in sorted(table.items())
        }

    return {**means(groups), "by object": means(by_object)}


# Candidate flows for ``flow_quality``: registry specs (all settable as flow:SPEC); the quick
# run leaves out the slowest. Round 6 (scratch runs of the same measure, not kept in the bench:
# none paid) also tried DIS on CLAHE-normalised, specular-suppressed and green-channel images,
# and DIS on a crop around the mask: see the CHANGELOG.
FLOW_CANDIDATES = {
    "dis:ultrafast (forward default)": "dis",
    "dis:ultrafast,finest_scale=1 (bidirectional default)": "dis:ultrafast,finest_scale=1",
    "dis:ultrafast,finest_scale=0": "dis:ultrafast,finest_scale=0",
    "dis:ultrafast,refinement_iterations=5": "dis:ultrafast,refinement_iterations=5",
    "dis:ultrafast,patch_stride=3": "dis:ultrafast,patch_stride=3",
    "dis:ultrafast,patch_size=12": "dis:ultrafast,patch_size=12",
    "dis:fast": "dis:fast",
    "dis:medium (finest_scale=1)": "dis:medium",
    "farneback": "farneback",
}
SLOW_CANDIDATES = ("dis:ultrafast,finest_scale=0", "farneback")
# Every 3rd DAVIS step (67 of 198): the clips' motion is smooth, and the 480x854 flows dominate.
QUALITY_STRIDE = {"davis": 3}


def flow_quality(data: dict[str, list[Clip]], quick: bool) -> dict[str, Any]:
    """One-step warp-of-truth IoU (``propagation.flow_quality``) and flow ms per step, per
    candidate flow and dataset, all in this run; "copy" is the zero flow."""
    candidates = {"copy (zero flow)": None, **FLOW_CANDIDATES}
    out: dict[str, Any] = {name: {} for name in data}
    for label, spec in tqdm(candidates.items(), desc="flow quality"):
        if quick and spec in SLOW_CANDIDATES:
            continue
        for name, clips in data.items():
            flow = (
                (lambda cur, prev: np.zeros((*cur.shape[:2], 2), np.float32))
                if spec is None
                else FLOW_ESTIMATORS.build(spec)
            )
            quality = one_step_warp_quality(clips, flow, QUALITY_STRIDE.get(name, 1))
            out[name][label] = quality.to_dict()
    return out


# Inputs of the command-speed comparison: one object is the easy case (1-bit PNGs, a small box
# of pixels that can reach the object); six objects are the hard one (two groups of channels to
# sample, 8-bit PNGs, most of the frame within reach of an object).
# "default": the object count of `endobench synth`'s default clip (SyntheticConfig.num_objects).
SPEED_INPUTS = {"easy": 1, "default": 2, "hard": 6}


def command_speed(frames: int, repeats: int) -> dict[str, Any]:
    """`endobench track` (forward, bidirectional) vs decode + DIS ultrafast alone, same run, on
    an easy, the default and a hard synthetic clip (``SPEED_INPUTS``), ``repeats`` interleaved
    rounds each."""
    return {
        name: _command_speed(frames, objects, repeats) for name, objects in SPEED_INPUTS.items()
    }


def _command_speed(frames: int, objects: int, repeats: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench_tracking_"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "endobench.cli"]
    subprocess.run(
        [*cli, "synth", "--out", str(root / "data"), "--frames", str(frames), "--height", "480",
         "--width", "854", "--objects", str(objects), "--seed", "0", "--name", "clip"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    registry = root / "datasets.yaml"
    registry.write_text(f"datasets:\n  synth:\n    format: davis\n    root: {root / 'data'}\n")
    files = sorted((root / "data/JPEGImages/480p/clip").glob("*.jpg"))

    def decode_and_flow(luma: bool = False) -> float:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        t0, prev = time.perf_counter(), None
        for f in files:
            if luma:  # the JPEG's luma plane only, as `endobench track` decodes flow frames
                gray = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            else:
                gray = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2GRAY)
            if prev is not None:
                dis.calc(gray, prev, None)
            prev = gray
        return len(files) / (time.perf_counter() - t0)

    def command(*extra: str) -> float:
        out = root / "out"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run(
            [*cli, "track", "--dataset", "synth", "--datasets", str(registry), "--keyframes",
             "every:10", "--out", str(out), "--no-progress", *extra],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        return len(files) / (time.perf_counter() - t0)

    # Interleaved, so load changes hit both sides alike; each ratio is taken within one round
    # (a peer run and the command run right after it), then the median over the rounds.
    base, luma, fwd, bidi = [], [], [], []
    for _ in range(repeats):
        base.append(decode_and_flow())
        fwd.append(command())
        luma.append(decode_and_flow(luma=True))
        bidi.append(command("--bidirectional"))
    shutil.rmtree(root, ignore_errors=True)

    def ratio(num: list[float], den: list[float]) -> float:
        return round(statistics.median(a / b for a, b in zip(num, den, strict=True)), 3)

    return {
        "clip": f"synthetic, {frames} frames, 480x854, {objects} object(s), keyframes every:10",
        "decode_plus_dis_ultrafast_fps": round(statistics.median(base), 1),
        "decode_luma_plus_dis_ultrafast_fps": round(statistics.median(luma), 1),
        "track_command_fps": round(statistics.median(fwd), 1),
        "track_command_bidirectional_fps": round(statistics.median(bidi), 1),
        "ratio_track_vs_decode_dis": ratio(fwd, base),
        "ratio_bidirectional_vs_decode_dis": ratio(bidi, base),
        "ratio_track_vs_decode_luma_dis": ratio(fwd, luma),
        "runs_fps": {
            "decode_plus_dis_ultrafast": [round(v, 1) for v in base],
            "track_command": [round(v, 1) for v in fwd],
            "decode_luma_plus_dis_ultrafast": [round(v, 1) for v in luma],
            "track_command_bidirectional": [round(v, 1) for v in bidi],
        },
        "targets": {"ratio_track_vs_decode_dis": 0.6, "ratio_bidirectional_vs_decode_dis": 0.5},
        "note": f"medians of {repeats} interleaved rounds (ratios: median of the per-round ratios); "
        "whole command incl. start-up and PNG writing; "
        "decode + DIS: OpenCV's colour decode and gray conversion (the issue's limit); decode "
        "luma + DIS: the JPEG's luma plane only, as the command itself decodes flow frames; "
        "bidirectional runs with the command's default flow for it (DIS at half resolution)",
    }


def figure(table: dict[str, dict[str, dict]], path: str) -> None:
    """J&F vs keyframes per 100 frames, one panel per dataset, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for method, style in METHODS.items():
            points = sorted(
                (v["keyframes_per_100"], v["J&F-Mean"])
                for k, v in table[name].items()
                if k.split(" | ")[0] == method
            )
            if points:
                ax.plot(*zip(*points, strict=True), style, label=method)
        ax.set_title(name)
        ax.set_xlabel("ground-truth keyframes per 100 frames")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("J&F")
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def speed(clips: list[Clip], spec: str, repeats: int) -> dict[str, Any]:
    """Per-frame ms per stage and end-to-end fps (medians over repeats x clips), first-frame only."""
    per_stage: dict[str, list[float]] = {k: [] for k in STAGES}
    fps: list[float] = []
    for _ in range(repeats):
        for clip in clips:
            result = track(
                clip, build_propagator(spec), KEYFRAME_POLICIES.build("first"), progress=False
            )
            n = result.num_frames - 1
            for k in STAGES:
                per_stage[k].append(1e3 * result.timings.get(k, 0.0) / n)
            fps.append(result.propagation_fps())
    out = {f"{k}_ms": round(statistics.median(v), 2) for k, v in per_stage.items()}
    out["end_to_end_fps"] = round(statistics.median(fps), 1)
    out["end_to_end_fps_best"] = round(max(fps), 1)
    return out


METHODS = {"copy": "o:", "forward DIS": "s--", "bidirectional DIS": "D-"}
# Each method with the command's defaults (spec None: `endobench track [--bidirectional]`).
CURVE: dict[str, tuple[str | None, bool]] = {
    "copy": ("copy", False),
    "forward DIS": (None, False),
    "bidirectional DIS": (None, True),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer configurations and repeats")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--figure", default=None, help="write the J&F vs keyframes figure here")
    parser.add_argument("--speed-frames", type=int, default=600, help="frames of the speed clip")
    parser.add_argument(
        "--speed-repeats", type=int, default=3, help="interleaved rounds of the speed comparison"
    )
    parser.add_argument(
        "--speed-only", action="store_true",
        help="only the command-speed comparison (endobench track vs decode + DIS alone)",
    )  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    if args.speed_only:
        speed = command_speed(args.speed_frames, args.speed_repeats)
        report = {
            "benchmark": "tracking command speed",
            "machine": machine_facts(),  # its load at start and at end (after the runs)
            "command_speed": speed,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return 0
    data = real_clips()
    policies = (
        ["every:5", "every:10"] if args.quick else ["every:3", "every:5", "every:10", "every:20"]
    )
    report: dict[str, Any] = {
        "benchmark": "tracking",
        "machine": machine_facts(),
        "load_average_at_start": os.getloadavg(),
        "data": {name: {c.name: len(c) for c in clips} for name, clips in data.items()},
        "quality": {name: {} for name in data},
        "flow_options_every10_bidirectional": {name: {} for name in data},
    }

    def save() -> None:  # keep what is done if a later configuration fails
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")

    configs = [(m, p) for m in CURVE for p in policies]
    for method, policy in tqdm(configs, desc="quality"):
        spec, bidi = CURVE[method]
        for name, clips in data.items():
            report["quality"][name][f"{method} | {policy}"] = score(clips, spec, policy, bidi)
        save()
    options = {
        f"{BIDIRECTIONAL_PROPAGATION.removeprefix('flow:')} (default)": (None, {}),
        "dis:ultrafast, photometric (forward default)": ("flow:dis", {}),
        "dis:ultrafast, confidence none": ("flow:dis", {"flow_confidence": "none"}),
        "dis:ultrafast, forward_backward": ("flow:dis", {"flow_confidence": "forward_backward"}),
        "dis:fast": ("flow:dis:fast", {}),
        "dis:medium": ("flow:dis:medium", {}),
    }
    if args.quick:
        options = {k: v for k, v in options.items() if "forward_backward" not in k}
    for label, (spec, opts) in tqdm(options.items(), desc="flow options"):
        for name, clips in data.items():
            row = score(clips, spec, "every:10", True, **opts)
            report["flow_options_every10_bidirectional"][name][label] = row
        save()
    synthetic = [CachedClip(c) for c in open_dataset("synthetic").clips()]  # 2 x 48, 128x160
    report["flow_quality"] = flow_quality({**data, "synthetic": synthetic}, args.quick)
    save()
    report["what_each_change_bought"] = change_ablation(
        {**data, "synthetic": synthetic}, ["every:5", "every:10"]
    )
    save()
    report["bidirectional_vs_forward_by_presence_every10"] = {
        name: presence_split(clips) for name, clips in data.items()
    }
    save()
    repeats = 2 if args.quick else 3
    report["speed_480x854"] = {
        spec: speed(data["davis"][:2], spec, repeats)
        for spec in (
            "flow:dis:ultrafast",
            BIDIRECTIONAL_PROPAGATION,
            "flow:dis:fast",
            "flow:dis:medium",
        )
    }
    report["command_speed"] = command_speed(args.speed_frames, args.speed_repeats)
    report["load_average_at_end"] = os.getloadavg()
    report["seconds"] = round(time.perf_counter() - started, 1)
    save()
    print(json.dumps(report, indent=2))
    if args.figure:
        figure(report["quality"], args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
