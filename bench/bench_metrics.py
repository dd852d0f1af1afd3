"""Benchmark the DAVIS metrics: per-frame J, F, J+F times and the evaluator's frames/s.

Prints JSON: medians over repeats of CPU time (`process_time`, robust to other load on the
machine) and wall time, single thread, in-memory masks (DAVIS blackswan ground truth vs its
`dis` prediction from shared/testdata, at 480x854 and scaled to 1080x1920), the ratio to the
reference toolkit's figures from docs/METRICS.md (4.24 ms / 45.7 ms per J+F frame), a same-run
baseline of the reference algorithm (numpy J, full-frame disk dilations for F), and frames/s of
`endobench eval` over shared/data/DAVIS (4 sequences). Run: .venv/bin/python bench/bench_metrics.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from endobench.data.label_png import read_label_png
from endobench.metrics import (
    bound_pixels,
    boundary_f,
    boundary_map,
    disk,
    jaccard,
    jaccard_and_boundary,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ENDOBENCH_SAMPLES", REPO.parent / "shared" / "data")).resolve().parent
CLOCKS = ("cpu", "wall")
REFERENCE_MS = {
    "480x854": {"J": 0.50, "F": 3.79, "J+F": 4.24},
    "1080x1920": {"J": 2.39, "F": 41.2, "J+F": 45.7},
}


def _median_ms(fn, repeats: int) -> dict[str, float]:
    """Median CPU time (``process_time``: what this process used, robust to other load on the
    machine) and wall time of ``fn()``, in ms, after one warm-up call."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"cpu": float(np.median(cpu) * 1e3), "wall": float(np.median(wall) * 1e3)}


def _dilation_baseline(gt: np.ndarray, pred: np.ndarray, r: int) -> tuple[float, float]:
    """The reference algorithm, literally: numpy J and full-frame boundary maps + disk
    dilations for F; ``(J, F)``, for a same-run ratio."""
    j = np.count_nonzero(gt & pred) / max(np.count_nonzero(gt | pred), 1)
    bg, bp = boundary_map(gt), boundary_map(pred)
    kernel = disk(r).astype(np.uint8)
    dg = cv2.dilate(bg.astype(np.uint8), kernel)
    dp = cv2.dilate(bp.astype(np.uint8), kernel)
    p = np.sum(bp * dg) / max(bp.sum(), 1)
    r_ = np.sum(bg * dp) / max(bg.sum(), 1)
    return float(j), float(0.0 if p + r_ == 0 else 2 * p * r_ / (p + r_))


def per_frame_times(repeats: int) -> dict:
    gt = read_label_png(SHARED / "data/DAVIS/Annotations/480p/blackswan/00025.png") == 1
    pred = read_label_png(SHARED / "testdata/metrics/davis/dis/blackswan/00025.png") == 1
    out = {}
    for size, (h, w) in (("480x854", (480, 854)), ("1080x1920", (1080, 1920))):
        g = cv2.resize(gt.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        p = cv2.resize(pred.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        r = bound_pixels((h, w))
        n = repeats if h < 1000 else max(20, repeats // 2)
        times = {
            "J": _median_ms(lambda g=g, p=p: jaccard(g, p), n),
            "F": _median_ms(lambda g=g, p=p: boundary_f(g, p), n),
            "J+F": _median_ms(lambda g=g, p=p: jaccard_and_boundary(g, p), n),
        }
        baseline = _median_ms(lambda g=g, p=p, r=r: _dilation_baseline(g, p, r), max(5, n // 10))
        ref = REFERENCE_MS[size]
        j, precision, recall, f = jaccard_and_boundary(g, p)
        out[size] = {
            "median_ms": times,
            "speedup_vs_reference_figures": {
                clock: {k: ref[k] / v[clock] for k, v in times.items()} for clock in CLOCKS
            },
            "same_run_dilation_baseline_JF_ms": baseline,
            "speedup_JF_vs_same_run_baseline": {
                clock: baseline[clock] / times["J+F"][clock] for clock in CLOCKS
            },
            "values": {"J": j, "precision": precision, "recall": recall, "F": f},
            "baseline_values_equal": _dilation_baseline(g, p, r) == (j, f),
        }
    return out


def cli_frames_per_second(workers: int) -> dict:
    from endobench.commands.evaluate import evaluate_folders

    t0 = time.perf_counter()
    df, table = evaluate_folders(
        SHARED / "data/DAVIS",
        SHARED / "testdata/metrics/davis/dis",
        workers=workers,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    n_frames = int(df["frame"].count())
    return {
        "workers": workers,
        "scored_frames": n_frames,
        "seconds": seconds,
        "frames_per_second": n_frames / seconds,
        "J&F-Mean": float(table.loc["global", "J&F-Mean"]),
    }


def main() -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
            "numpy": np.__version__,
            "load_average": os.getloadavg(),
        },
        "per_frame": per_frame_times(repeats),
        "cli": [cli_frames_per_second(w) for w in (0, os.cpu_count() or 1)],
        "reference_figures_ms": REFERENCE_MS,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
