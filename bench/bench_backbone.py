"""Benchmark backbone forward time and peak memory: DINOv2 ViT-S/14 (random init) at 224 and 448 px.

Each (size, batch) configuration runs in its own subprocess so that its peak resident memory
(``ru_maxrss``) is its own; on CUDA the peak is ``torch.cuda.max_memory_allocated``. Prints JSON with
the median ms per image (and per batch), peak memory, the SegNet+fusion-head time for comparison,
and the machine.

    python bench/bench_backbone.py [--backbone dinov2_vits14] [--sizes 224 448] [--batches 1 8]
                                   [--reps 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

from endobench.models import SegNet, build_backbone, build_head


def _rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_ms(fn, x: torch.Tensor, reps: int, cuda: bool) -> list[float]:
    times = []
    for _ in range(reps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x)
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def measure_one(backbone: str, size: int, batch: int, reps: int) -> dict:
    """Forward timings and peak memory for one configuration, in this process."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    bb = build_backbone(backbone, pretrained=False).to(device)
    net = SegNet(bb, build_head("fusion", bb.embed_dims, 2)).to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    rss_before = _rss_mib()
    with torch.inference_mode(), autocast:
        bb.forward_features(x)  # warm-up: allocator, kernels, position-embedding interpolation
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        backbone_ms = _time_ms(bb.forward_features, x, reps, cuda)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mib()
        net(x)
        segnet_ms = _time_ms(net, x, reps, cuda)
    med = statistics.median(backbone_ms)
    return {
        "size": size,
        "batch": batch,
        "backbone_ms_per_batch_median": round(med, 2),
        "backbone_ms_per_image_median": round(med / batch, 2),
        "backbone_ms_per_batch_all": [round(t, 2) for t in backbone_ms],
        "segnet_fusion_ms_per_image_median": round(statistics.median(segnet_ms) / batch, 2),
        "peak_memory_mib": round(peak, 1),
        "peak_memory_kind": "cuda max_memory_allocated" if cuda else "process ru_maxrss",
        "rss_after_model_build_mib": None if cuda else round(rss_before, 1),
        "forward_extra_memory_mib": None if cuda else round(peak - rss_before, 1),
        "device": str(device),
        "precision": "bf16 autocast, channels_last" if cuda else "fp32",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="dinov2_vits14")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 448])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--one", nargs=2, type=int, metavar=("SIZE", "BATCH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:  # child process: one configuration, JSON on stdout
        print(json.dumps(measure_one(args.backbone, args.one[0], args.one[1], args.reps)))
        return 0
    load_before = os.getloadavg()[0]
    results = []
    for size in args.sizes:
        for batch in args.batches:
            cmd = [sys.executable, __file__, "--backbone", args.backbone, "--reps", str(args.reps)]
            cmd += ["--one", str(size), str(batch)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    report = {
        "benchmark": "backbone_forward",
        "comparison": "SegNet+fusion head time beside the backbone's, same run",
        "backbone": args.backbone,
        "weights": "random-init (timing does not depend on weight values)",
        "reps": args.reps,
        "results": results,
        # Other processes competing for the cores inflate and scatter the times: quote with the load.
        "load_average_1m": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "machine": machine_facts(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
