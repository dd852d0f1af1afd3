"""Benchmark the dataset readers on the real samples: opening cost and decode throughput; prints JSON.

For each registry entry whose samples exist (DAVIS, Kvasir-SEG, BAGLS, CholecInstanceSeg under
``$ENDOBENCH_SAMPLES``, default ``../shared/data``): the time to open the dataset (listing files,
no decoding), and frames/s of reading every frame with its mask, median of ``--repeats`` passes
(the OS file cache is warm after the first pass). Usage:
``python bench/bench_data.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

from endobench.data import load_registry

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("davis2017", "kvasir-seg", "bagls", "cholecinstanceseg")


def read_all(dataset) -> tuple[int, int]:
    """Decode every frame and mask of every clip; returns (frames, pixels of the frames)."""
    frames = pixels = 0
    for clip in dataset.clips():
        for i in range(len(clip)):
            image = clip.frame(i)
            clip.mask(i)
            frames += 1
            pixels += image.shape[0] * image.shape[1]
    return frames, pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    samples = Path(os.environ.get("ENDOBENCH_SAMPLES", REPO.parent / "shared" / "data")).resolve()
    os.environ.setdefault("ENDOBENCH_DATA", str(samples))
    registry = load_registry(REPO / "datasets.yaml")
    results = {}
    for name in DATASETS:
        start = time.perf_counter()
        dataset = registry.open(name)
        dataset.clips()
        open_s = time.perf_counter() - start
        passes = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            frames, pixels = read_all(dataset)
            passes.append(time.perf_counter() - start)
        median = statistics.median(passes)
        results[name] = {
            "clips": len(dataset.clips()),
            "frames": frames,
            "mean_megapixels_per_frame": round(pixels / frames / 1e6, 3),
            "open_ms": round(open_s * 1e3, 2),
            "frames_per_s_median": round(frames / median, 1),
            "pass_s_all": [round(p, 4) for p in passes],
        }
    print(
        json.dumps(
            {"benchmark": "dataset_readers",
             "comparison": "none: absolute open times and decode frames/s per reader",
             "samples": str(samples), "results": results,
             "machine": machine_facts()},
            indent=2,
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
