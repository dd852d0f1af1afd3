"""Benchmark the synthetic video generator on one core; prints JSON.

Figures: frames/s of rendering (frame + mask) at 480 x 854 and at the default size, median of
several runs, with and without the one-off per-clip set-up (texture and sprites), and the set-up
time itself. Usage: ``python bench/bench_synth.py [--frames 100] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

# One core: pin every thread pool before numpy / OpenCV start.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402

from endobench.data.synthetic import SyntheticConfig, generate_clip  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402


def _measure(config: SyntheticConfig, seed: int) -> dict[str, float]:
    # Wall time, and this process's CPU time: on a shared machine the CPU-time rate is the
    # single-core figure (everything runs on one thread), the wall-time rate a lower bound.
    start = time.perf_counter()
    clip = generate_clip(config, seed)
    clip.frame(0)  # builds texture, sprites and noise once
    clip.mask(0)
    setup_end, cpu_setup_end = time.perf_counter(), time.process_time()
    for i in range(1, len(clip)):
        clip.frame(i)
        clip.mask(i)
    end, cpu_end = time.perf_counter(), time.process_time()
    rendered = len(clip) - 1
    return {
        "setup_s": setup_end - start,
        "fps_render": rendered / (end - setup_end),
        "fps_render_cpu": rendered / (cpu_end - cpu_setup_end),
        "fps_with_setup": len(clip) / (end - start),
    }


def bench(height: int, width: int, frames: int, repeats: int, difficulty: str) -> dict:
    config = SyntheticConfig(height=height, width=width, num_frames=frames, difficulty=difficulty)
    runs = [_measure(config, seed) for seed in range(repeats)]
    return {
        "size": [height, width],
        "frames_per_clip": frames,
        "difficulty": difficulty,
        "num_objects": config.num_objects,
        "runs": repeats,
        "median_fps_render": round(statistics.median(r["fps_render"] for r in runs), 1),
        "median_fps_render_cpu_time": round(
            statistics.median(r["fps_render_cpu"] for r in runs), 1
        ),
        "median_fps_with_setup": round(statistics.median(r["fps_with_setup"] for r in runs), 1),
        "median_setup_s": round(statistics.median(r["setup_s"] for r in runs), 3),
        "min_fps_render": round(min(r["fps_render"] for r in runs), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--difficulty", default="medium", choices=["easy", "medium", "hard"])
    args = parser.parse_args()
    cv2.setNumThreads(1)  # the figure is per core
    default = SyntheticConfig()
    results = [
        bench(480, 854, args.frames, args.repeats, args.difficulty),
        bench(default.height, default.width, args.frames, args.repeats, args.difficulty),
    ]
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # the generator does not need torch
        torch_version = None
    report = {
        "benchmark": "synthetic_generator",
        "comparison": "none: absolute frames/s against the 50 frames/s target (no peer generator)",
        "target_fps_480x854": 50,
        "results": results,
        "machine": {**machine_facts(), "torch": torch_version},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
