"""Speed of DAVIS-2016 T per 480p pair and of flow-warped TC per frame; prints JSON.

Usage: ``python bench/bench_temporal.py [--repeats 3]``. Uses the blackswan test vectors
(``../shared/testdata/metrics/davis/dis/blackswan``); the reference's T costs 0.41 s per pair.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from endobench.data.label_png import read_label_png
from endobench.metrics import stability as st
from endobench.metrics.temporal_consistency import flow_warped_consistency

REFERENCE_T_PAIR_S = 0.41
DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "metrics" / "davis" / "dis"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=12, help="consecutive pairs timed")
    args = parser.parse_args()
    masks = [read_label_png(p) == 1 for p in sorted((DATA / "blackswan").glob("*.png"))]
    masks = masks[1 : args.pairs + 2]
    pair_ms, fast_ms, desc_ms = [], [], []
    descriptors = []
    for m in masks:
        t0 = time.perf_counter()
        descriptors.append(st.contour_descriptor(m))
        desc_ms.append((time.perf_counter() - t0) * 1e3)
    for a, b in zip(descriptors[:-1], descriptors[1:], strict=True):
        t0 = time.perf_counter()
        st.descriptor_matching_cost(a, b, exact_ties=True)
        pair_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        st.descriptor_matching_cost(a, b, exact_ties=False)
        fast_ms.append((time.perf_counter() - t0) * 1e3)
    per_pair = float(
        np.median(fast_ms) + np.median(desc_ms)
    )  # each frame's contour serves one new pair
    h, w = masks[0].shape
    labels = [m.astype(np.uint8) for m in masks]
    flows = [None] + [np.zeros((h, w, 2), np.float32)] * (len(labels) - 1)
    t0 = time.perf_counter()
    flow_warped_consistency(labels, flows)
    tc_ms = (time.perf_counter() - t0) * 1e3 / (len(labels) - 1)
    print(
        json.dumps(
            {
                "T_ms_per_pair_480p_median_fast_ties": per_pair,
                "T_speedup_vs_reference_0.41s": REFERENCE_T_PAIR_S * 1e3 / per_pair,
                "T_contour_descriptor_ms_median": float(np.median(desc_ms)),
                "T_matching_ms_median_fast_ties": float(np.median(fast_ms)),
                "T_matching_ms_median_exact_ties": float(np.median(pair_ms)),
                "T_matching_ms_max_exact_ties": float(np.max(pair_ms)),
                "TC_ms_per_frame_480p": tc_ms,
                "pairs": len(pair_ms),
                "machine": {
                    "platform": platform.platform(),
                    "cpu_count": os.cpu_count(),
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
