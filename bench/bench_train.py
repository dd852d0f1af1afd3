"""Benchmark head-training epochs with and without the feature cache, side by side.

For each (backbone, head): the same synthetic images at the same size, the same TrainConfig except
``use_feature_cache``; one warm-up epoch, then ``--reps`` timed epochs (median). Uncached epochs run
the frozen backbone forward on every batch; cached epochs read float16 features from disk and run
only the head. Each measurement runs in its own subprocess so that its peak memory (CPU:
``ru_maxrss``; CUDA: ``max_memory_allocated``) is its own. Backbones are random-init (timings do not
depend on the weights; no downloads). Prints JSON with the medians, the ratio, the one-off cache
build time, the cache's size on disk and the machine.

    python bench/bench_train.py [--backbones dinov2_vits14] [--heads linear fusion] [--size 224]
                                [--images 16] [--batch 8] [--reps 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

from endobench.models import build_segnet
from endobench.training.config import TrainConfig
from endobench.training.data import load_data
from endobench.training.model import model_spec
from endobench.training.optim import param_groups
from endobench.training.runner import EpochRunner


def _peak_mib(cuda: bool) -> float:
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(args: argparse.Namespace) -> dict:
    """Timed head epochs of one (backbone, head, cached) configuration, in this process."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    frames = max(1, args.images // 4)
    config = TrainConfig(
        dataset="synthetic",
        dataset_overrides={"num_clips": 5, "num_frames": frames, "seed": 0},
        val_fraction=0.2,  # 1 clip of 5 held out; the rest (4 x frames images) is timed
        backbone=args.backbone,
        pretrained=False,
        head=args.head,
        size=args.size,
        batch_size=args.batch,
        epochs=args.reps + 1,
        use_feature_cache=args.cached,
        cache_dir=args.cache_dir,
        out_dir=tempfile.mkdtemp(prefix="bench_train_"),
    )
    train, val, _, num_classes = load_data(config)
    model = build_segnet(model_spec(config, num_classes)).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    runner = EpochRunner(config, model, train, val, device, progress=False)
    setup_s = time.perf_counter() - started
    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
    steps = (len(train.images) + args.batch - 1) // args.batch
    total = steps * config.epochs
    epoch_s = []
    step = 0
    for epoch in range(config.epochs):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        _, step = runner.train_epoch(epoch, optimizer, step, total, steps)
        if cuda:
            torch.cuda.synchronize()
        epoch_s.append(time.perf_counter() - t0)
    info = runner.cache_info
    cache_mib = None
    if info["used"]:
        files = list(Path(info["root"]).rglob("*.pt"))
        cache_mib = sum(f.stat().st_size for f in files) / 2**20 / max(1, len(files))
    return {
        "train_images": len(train.images),
        "setup_s": round(setup_s, 3),  # cached: feature computation (misses) + loading
        "cache_misses": info.get("misses"),
        "epoch_s_all": [round(t, 3) for t in epoch_s[1:]],  # first epoch = warm-up
        "epoch_s_median": round(statistics.median(epoch_s[1:]), 4),
        "peak_memory_mib": round(_peak_mib(cuda), 1),
        "peak_memory_kind": "cuda max_memory_allocated" if cuda else "process ru_maxrss",
        "cache_mib_per_image": None if cache_mib is None else round(cache_mib, 3),
    }


def _child(
    args: argparse.Namespace, backbone: str, head: str, cached: bool, cache_dir: str
) -> dict:
    cmd = [
        sys.executable, __file__, "--one", backbone, head, "1" if cached else "0",
        "--size", str(args.size), "--images", str(args.images), "--batch", str(args.batch),
        "--reps", str(args.reps), "--cache-dir", cache_dir,
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["dinov2_vits14"])
    parser.add_argument("--heads", nargs="+", default=["linear", "fusion"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=16, help="training images (approx.)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3, help="timed epochs after one warm-up")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--one", nargs=3, metavar=("BACKBONE", "HEAD", "CACHED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        args.backbone, args.head, args.cached = args.one[0], args.one[1], args.one[2] == "1"
        print(json.dumps(measure(args)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_train_cache_") as cache_dir:
        for backbone in args.backbones:
            for head in args.heads:
                uncached = _child(args, backbone, head, False, cache_dir)
                cached = _child(args, backbone, head, True, cache_dir)
                results.append(
                    {
                        "backbone": backbone,
                        "head": head,
                        "size": args.size,
                        "batch": args.batch,
                        "train_images": cached["train_images"],
                        "uncached_epoch_s_median": uncached["epoch_s_median"],
                        "cached_epoch_s_median": cached["epoch_s_median"],
                        "speedup_cached_vs_uncached": round(
                            uncached["epoch_s_median"] / cached["epoch_s_median"], 2
                        ),
                        "cache_build_s": cached["setup_s"],
                        "cache_mib_per_image": cached["cache_mib_per_image"],
                        "peak_memory_mib_uncached": uncached["peak_memory_mib"],
                        "peak_memory_mib_cached": cached["peak_memory_mib"],
                        "peak_memory_kind": cached["peak_memory_kind"],
                        "uncached_epoch_s_all": uncached["epoch_s_all"],
                        "cached_epoch_s_all": cached["epoch_s_all"],
                    }
                )
    facts = machine_facts()
    facts["torch_threads"] = args.threads or torch.get_num_threads()
    print(
        json.dumps(
            {
                "benchmark": "train_head_epoch",
                "comparison": "cached vs uncached epochs, same run",
                "results": results,
                "machine": facts,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
