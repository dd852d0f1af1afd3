"""Benchmark the DAVIS metrics side by side with installable peers, in one run; prints JSON.

Comparison (every ratio below comes from this run, on the same masks, same process):

- ``davis2017_code``: the DAVIS-2017 toolkit's per-object J and F algorithm as the MIT-licensed
  ``vos-benchmark`` package ships it (``vos_benchmark.evaluator.get_iou`` for J; its
  ``utils._seg2bmap`` boundary map, ``skimage.morphology.disk`` and two full-frame
  ``cv2.dilate`` for F, exactly the statements of ``db_eval_iou`` / ``db_eval_boundary``),
  against endobench's :func:`~endobench.metrics.jaccard_and_boundary`, per object and frame on
  prebuilt binary masks;
- ``davis2017_code_label_maps``: the same DAVIS-2017 code from a frame's two label maps (its
  ``labels == id`` masks made per object, as its evaluation does), against endobench's
  :func:`~endobench.metrics.jaccard_and_boundary_per_id` (every object of the frame from one
  pass over both maps; what ``endobench eval`` calls);
- ``vos_benchmark_feed_frame``: vos-benchmark's own per-frame entry point
  (``Evaluator.feed_frame(mask, gt)`` on label maps; it finds the objects itself) against the
  same endobench call;
- folder evaluation: ``vos_benchmark.benchmark`` (multiprocessing pool) against
  ``endobench.evaluation.evaluate_folders`` over the shared DAVIS ``dis`` predictions,
  both with 1 and with ``cpu_count`` workers, PNG decoding included.

The official ``davis2017-evaluation`` package is not on the package index, so it is not a peer.

Masks: easy = DAVIS blackswan (a smooth blob) with its shared ``dis`` prediction; hard = the
``dis`` predictions of car-shadow, dog and drift-chicane (flow-carried masks, realistic errors);
CholecSeg8k multi-class (7 classes; the "prediction" of frame t is the ground truth of frame
t+1). At 480x854 and upscaled with nearest to 1080x1920. Values must be bit-identical
(``values_identical``). Single-threaded kernels on our side; OpenCV as configured (its thread
count is in ``machine``). Times: per-frame median over repeats of wall (``perf_counter``) and
CPU (``process_time``) time. Run::

    python bench/bench_metrics.py [--repeats 5] [--stride 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

from endobench.data.label_png import read_label_png
from endobench.metrics import jaccard_and_boundary, jaccard_and_boundary_per_id

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("ENDOBENCH_SAMPLES", REPO.parent / "shared" / "data")).resolve()
VECTORS = SAMPLES.parent / "testdata" / "metrics" / "davis"
SIZES = {"480x854": (480, 854), "1080x1920": (1080, 1920)}
CHOLEC_CLASSES = (11, 12, 13, 21, 22, 31, 32)  # 50 background, 255 image border


def davis2017_code(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Per-object J and F by the DAVIS-2017 algorithm, from vos-benchmark's MIT functions."""
    from skimage.morphology import disk
    from vos_benchmark.evaluator import get_iou
    from vos_benchmark.utils import _seg2bmap

    j = get_iou((pred * gt).sum(), pred.sum() + gt.sum())
    bound_pix = np.ceil(0.008 * np.linalg.norm(pred.shape))
    fg_boundary, gt_boundary = _seg2bmap(pred), _seg2bmap(gt)
    kernel = disk(bound_pix).astype(np.uint8)
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), kernel)
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), kernel)
    n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_boundary * gt_dil) / float(n_fg)
        recall = np.sum(gt_boundary * fg_dil) / float(n_gt)
    f = 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return float(j), float(f)


def _resize(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if labels.shape == (h, w):
        return labels
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)


def davis_frames(seq: str, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(gt, pred)`` uint8 label maps (object 1) of every ``stride``-th scored frame."""
    names = sorted((VECTORS / "dis" / seq).glob("*.png"))[1:-1][::stride]
    gt_dir = SAMPLES / "DAVIS/Annotations/480p" / seq
    return [
        (
            (read_label_png(gt_dir / n.name) > 0).astype(np.uint8),
            (read_label_png(n) > 0).astype(np.uint8),
        )
        for n in names
    ]


def cholec_frames(stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """CholecSeg8k label maps 0..7 (the 7 classes), ground truth of frame t vs frame t+1."""
    clip = SAMPLES / "CholecSeg8k/video48/video48_00561"
    lut = np.zeros(256, np.uint8)
    lut[list(CHOLEC_CLASSES)] = np.arange(1, len(CHOLEC_CLASSES) + 1)
    paths = sorted(clip.glob("frame_*_endo_watershed_mask.png"), key=lambda p: int(p.name[6:9]))
    maps = [lut[cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)] for p in paths]
    maps = [_resize(m, SIZES["480x854"]) for m in maps]
    return list(zip(maps[:-1], maps[1:], strict=True))[::stride]


def _timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls (after one warm-up)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def compare_case(frames: list[tuple[np.ndarray, np.ndarray]], repeats: int) -> dict:
    """Ours vs the two peers on label-map frames; per-frame ms, ratios, value identity."""
    from vos_benchmark.evaluator import Evaluator

    n_obj = max(int(max(g.max(), p.max())) for g, p in frames)
    binary = [
        [(np.ascontiguousarray(g == i), np.ascontiguousarray(p == i)) for i in range(1, n_obj + 1)]
        for g, p in frames
    ]
    object_frames = sum(len(b) for b in binary)

    def ours_binary() -> list:
        return [jaccard_and_boundary(g, p) for objs in binary for g, p in objs]

    def peer_binary() -> list:
        return [davis2017_code(g, p) for objs in binary for g, p in objs]

    ids = list(range(1, n_obj + 1))

    def ours_labels() -> list:
        return [s for g, p in frames for s in jaccard_and_boundary_per_id(g, p, ids)]

    def peer_labels_davis() -> list:
        return [davis2017_code(g == i, p == i) for g, p in frames for i in ids]

    def peer_labels() -> Evaluator:
        ev = Evaluator()
        for g, p in frames:
            ev.feed_frame(p, g)
        return ev

    ours = [(j, f) for j, _, _, f in ours_binary()]
    ours_from_labels = [(j, f) for j, _, _, f in ours_labels()]
    peer = peer_binary()
    ev = peer_labels()
    # vos-benchmark scores objects present in either map; compare on ours' (present) objects.
    vos_values = [
        (ev.object_iou[i][t], ev.boundary_f[i][t])
        for t in range(len(frames))
        for i in range(1, n_obj + 1)
        if i in ev.object_iou
    ]
    times = {
        "ours_binary": _timed(ours_binary, repeats),
        "davis2017_code": _timed(peer_binary, max(1, repeats // 2)),
        "ours_label_maps": _timed(ours_labels, repeats),
        "davis2017_code_label_maps": _timed(peer_labels_davis, max(1, repeats // 2)),
        "vos_benchmark_feed_frame": _timed(peer_labels, max(1, repeats // 2)),
    }
    per_frame_ms = {
        name: {clock: round(t[clock] / len(frames) * 1e3, 4) for clock in t}
        for name, t in times.items()
    }
    return {
        "frames": len(frames),
        "object_frames": object_frames,
        "per_frame_ms": per_frame_ms,
        "speedup_vs_davis2017_code": {
            c: round(times["davis2017_code"][c] / times["ours_binary"][c], 1)
            for c in ("wall", "cpu")
        },
        "speedup_vs_davis2017_code_label_maps": {
            c: round(times["davis2017_code_label_maps"][c] / times["ours_label_maps"][c], 1)
            for c in ("wall", "cpu")
        },
        "speedup_vs_vos_benchmark_feed_frame": {
            c: round(times["vos_benchmark_feed_frame"][c] / times["ours_label_maps"][c], 1)
            for c in ("wall", "cpu")
        },
        "values_identical": {
            "davis2017_code": ours == peer,
            "ours_label_maps": ours_from_labels == ours,
            "vos_benchmark_feed_frame": len(vos_values) == len(ours)
            and all(a == (float(j), float(f)) for a, (j, f) in zip(ours, vos_values, strict=True)),
        },
        "mean_J_F": [
            round(float(np.mean([v[0] for v in ours])), 6),
            round(float(np.mean([v[1] for v in ours])), 6),
        ],
    }


def folder_evaluation(workers: int, repeats: int) -> dict:
    """Frames/s of ours and of vos-benchmark over the shared DAVIS ``dis`` folders.

    Each side runs ``repeats`` times, alternating; the best time counts (the first call of ours
    also compiles the numba kernels, which are cached on disk afterwards).
    """
    from vos_benchmark.benchmark import benchmark

    from endobench.evaluation import evaluate_folders

    ours_times, peer_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        df, table = evaluate_folders(
            SAMPLES / "DAVIS", VECTORS / "dis", workers=workers, progress=False
        )
        ours_times.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:  # vos-benchmark writes results.csv there
            for seq in sorted(p.name for p in (VECTORS / "dis").iterdir() if p.is_dir()):
                os.symlink(VECTORS / "dis" / seq, Path(tmp) / seq)
            t0 = time.perf_counter()
            global_jf, *_ = benchmark(
                [str(SAMPLES / "DAVIS/Annotations/480p")],
                [tmp],
                num_processes=workers,
                verbose=False,
            )
            peer_times.append(time.perf_counter() - t0)
    ours_s, peer_s = min(ours_times), min(peer_times)
    n_frames = int(
        df["frame"].nunique()
        if "sequence" not in df
        else df.groupby("sequence")["frame"].nunique().sum()
    )
    return {
        "workers": workers,
        "scored_frames": n_frames,
        "ours_s": round(ours_s, 3),
        "vos_benchmark_s": round(peer_s, 3),
        "ours_frames_per_s": round(n_frames / ours_s, 1),
        "vos_benchmark_frames_per_s": round(n_frames / peer_s, 1),
        "speedup": round(peer_s / ours_s, 2),
        "J&F_ours_x100": round(float(table.loc["global", "J&F-Mean"]) * 100, 4),
        "J&F_vos_benchmark": round(float(global_jf[0]), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stride", type=int, default=4, help="score every n-th frame")
    parser.add_argument("--no-folders", action="store_true", help="skip the folder evaluation")
    parser.add_argument(
        "--folders-only", action="store_true", help="only the folder evaluation (no per-frame)"
    )
    args = parser.parse_args()
    cases = {
        "easy: DAVIS blackswan dis": davis_frames("blackswan", args.stride),
        **{
            f"hard: DAVIS {s} dis": davis_frames(s, args.stride)
            for s in ("car-shadow", "dog", "drift-chicane")
        },
        "CholecSeg8k 7 classes (gt t vs gt t+1)": cholec_frames(args.stride),
    }
    per_frame: dict = {}
    for size, hw in {} if args.folders_only else SIZES.items():
        for name, frames in cases.items():
            scaled = [(_resize(g, hw), _resize(p, hw)) for g, p in frames]
            per_frame.setdefault(size, {})[name] = compare_case(scaled, args.repeats)
            print(f"{size} {name}: done", file=sys.stderr, flush=True)
    report = {
        "benchmark": "metrics J+F, same run, ours vs DAVIS-2017 code (via vos-benchmark 0.1.0)",
        "comparison": __doc__.split("\n\n")[1],
        "per_frame": per_frame,
        "folders": []
        if args.no_folders
        else [folder_evaluation(w, args.repeats) for w in (1, os.cpu_count() or 1)],
        "machine": machine_facts(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
