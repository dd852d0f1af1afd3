"""Speed of DAVIS-2016 T per 480p pair and of flow-warped TC per frame; prints JSON.

Usage: ``python bench/bench_temporal.py [--repeats 3]``. Uses the blackswan ``dis`` test vectors
(``../shared/testdata/metrics/davis/dis/blackswan``, 50 frames, 47 scored pairs); the reference's
T costs 0.41 s per pair. A pair's time is the descriptor of its new frame (each frame's
descriptor serves two pairs) plus the matching; the median is over all 47 pairs, tied pairs
(exact Boost order) included. Wall and CPU (``time.process_time``) times are both reported, as
other work may share the machine. The numba warm-up (compile, or load from the on-disk cache) is
timed separately: in this process and, cold, in a subprocess with an empty cache directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from endobench.data.label_png import read_label_png

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

REFERENCE_T_PAIR_S = 0.41
DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "metrics" / "davis" / "dis"
)
_WARMUP = (
    "import time; t0, c0 = time.perf_counter(), time.process_time();"
    "import numpy as np; from endobench.metrics import stability as st;"
    "from endobench.metrics.stability.matching import boost_dijkstra_path;"
    "from endobench.metrics import temporal_consistency as tc;"
    "d = np.zeros((8, 8), bool); d[2:6, 2:6] = True;"
    "st.temporal_stability_pairs([d] * 5); boost_dijkstra_path(np.ones((3, 3)));"
    "tc.flow_warped_consistency([d, d], [None, np.zeros((8, 8, 2), np.float32)]);"
    "print(time.perf_counter() - t0, time.process_time() - c0)"
)


def _timed(fn, *args):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, (time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3


def _cold_warmup() -> dict[str, float]:
    """Import + compile of all kernels in a fresh interpreter with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, "-c", _WARMUP], env=env, capture_output=True, text=True, check=True
        )
    wall, cpu = (float(v) for v in out.stdout.split())
    return {"wall_s": wall, "cpu_s_this_process": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="runs per pair; min is kept")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-compile run")
    args = parser.parse_args()

    w0, c0 = time.perf_counter(), time.process_time()
    from endobench.metrics import stability as st
    from endobench.metrics.stability.matching import boost_dijkstra_path
    from endobench.metrics.temporal_consistency import flow_warped_consistency

    tiny = np.zeros((8, 8), bool)
    tiny[2:6, 2:6] = True
    st.temporal_stability_pairs([tiny] * 5)
    boost_dijkstra_path(np.ones((3, 3)))
    flow_warped_consistency([tiny, tiny], [None, np.zeros((8, 8, 2), np.float32)])
    warm = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}

    masks = [read_label_png(p) == 1 for p in sorted((DATA / "blackswan").glob("*.png"))]
    interior = masks[1:-1]
    desc_wall, desc_cpu, match_wall, match_cpu = [], [], [], []
    descriptors = []
    for m in interior:
        best = (np.inf, np.inf)
        for _ in range(args.repeats):
            h, wall, cpu = _timed(st.contour_descriptor, m)
            best = (min(best[0], wall), min(best[1], cpu))
        descriptors.append(h)
        desc_wall.append(best[0])
        desc_cpu.append(best[1])
    for a, b in zip(descriptors[:-1], descriptors[1:], strict=True):
        best = (np.inf, np.inf)
        for _ in range(args.repeats):
            _, wall, cpu = _timed(st.descriptor_matching_cost, a, b)
            best = (min(best[0], wall), min(best[1], cpu))
        match_wall.append(best[0])
        match_cpu.append(best[1])
    pair_wall = np.array(desc_wall[1:]) + np.array(match_wall)
    pair_cpu = np.array(desc_cpu[1:]) + np.array(match_cpu)
    _, all_wall, all_cpu = _timed(st.temporal_stability_pairs, masks)
    n_pairs = len(pair_wall)

    labels = [m.astype(np.uint8) for m in masks]
    h, w = labels[0].shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    smooth = np.stack([2.3 * np.sin(ys / 40.0), 1.7 * np.cos(xs / 55.0)], axis=-1)
    tc = {}
    for name, flow in (("zero_flow", np.zeros((h, w, 2), np.float32)), ("smooth_flow", smooth)):
        flows = [None] + [flow] * (len(labels) - 1)
        _, wall, cpu = _timed(flow_warped_consistency, labels, flows)
        tc[name] = {
            "wall_ms_per_frame": wall / (len(labels) - 1),
            "cpu_ms_per_frame": cpu / (len(labels) - 1),
        }

    median_cpu = float(np.median(pair_cpu))
    median_wall = float(np.median(pair_wall))
    print(
        json.dumps(
            {
                "benchmark": "temporal_stability_T_and_TC",
                "comparison": "T against the DAVIS-2016 reference figure of 0.41 s per pair "
                "measured elsewhere (context only, not a same-run ratio); TC absolute",
                "T_ms_per_pair_480p_median": {"wall": median_wall, "cpu": median_cpu},
                "T_speedup_vs_reference_0.41s": {
                    "wall": REFERENCE_T_PAIR_S * 1e3 / median_wall,
                    "cpu": REFERENCE_T_PAIR_S * 1e3 / median_cpu,
                },
                "T_ms_per_pair_480p_max": {
                    "wall": float(np.max(pair_wall)),
                    "cpu": float(np.max(pair_cpu)),
                },
                "T_descriptor_ms_median": {
                    "wall": float(np.median(desc_wall)),
                    "cpu": float(np.median(desc_cpu)),
                },
                "T_matching_ms_median": {
                    "wall": float(np.median(match_wall)),
                    "cpu": float(np.median(match_cpu)),
                },
                "T_whole_sequence_ms_per_pair": {
                    "wall": all_wall / n_pairs,
                    "cpu": all_cpu / n_pairs,
                },
                "pairs": n_pairs,
                "jit_warmup_this_process_s": warm,
                "jit_warmup_cold_cache_s": None if args.no_cold else _cold_warmup(),
                "TC_480p": tc,
                "machine": machine_facts(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
