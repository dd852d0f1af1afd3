"""Benchmark feature-affinity propagation on DAVIS blackswan (480p): ours vs a direct transcription.

Prints JSON: per-frame feature time, propagation time (features excluded) for our implementation and
for the direct dense implementation of the official protocol measured side by side on the same
features, the neighbourhood set-up time, and J of the propagated masks (random-init ViT-S/14: the
J says nothing about DINOv2, only that the machinery runs).

    python bench/bench_affinity.py [--frames 20] [--samples ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402

from endobench.metrics import jaccard  # noqa: E402
from endobench.models import build_backbone  # noqa: E402
from endobench.propagation.affinity import (  # noqa: E402
    AffinityConfig,
    AffinityPropagator,
    FeatureExtractor,
)
from endobench.propagation.affinity_core import window_index  # noqa: E402
from endobench.propagation.base import one_hot  # noqa: E402


def dense_reference_step(query, context_feats, context_labels, h, w, mask_nb, topk=5):
    """The official protocol's dense step (ncontext*hw x hw affinity, mask, top-k, normalise)."""
    aff = torch.stack([torch.exp(query @ k.t() / 0.1) for k in context_feats]).transpose(1, 2)
    aff = (aff * mask_nb[None]).reshape(len(context_feats) * h * w, h * w)
    tk_val_min = torch.topk(aff, dim=0, k=topk).values.min(dim=0).values
    aff[aff < tk_val_min] = 0
    aff = aff / aff.sum(dim=0, keepdim=True)
    return torch.cat(context_labels, dim=1) @ aff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_samples = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    parser.add_argument(
        "--samples", type=Path, default=Path(os.environ.get("ENDOBENCH_SAMPLES", default_samples))
    )
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()

    seq = args.samples / "DAVIS"
    names = sorted((seq / "JPEGImages/480p/blackswan").glob("*.jpg"))[: args.frames]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in names]
    gts = [
        (
            np.asarray(Image.open(seq / "Annotations/480p/blackswan" / (p.stem + ".png"))) > 127
        ).astype(np.uint8)
        for p in names
    ]

    window_index.cache_clear()
    t0 = time.perf_counter()
    window_index(34, 59, 12)
    setup_ms = (time.perf_counter() - t0) * 1e3

    backbone = build_backbone("dinov2_vits14", pretrained=False)
    extractor = FeatureExtractor(backbone)
    prop = AffinityPropagator(extractor, AffinityConfig(mode="reference"))
    prop.reset(frames[0], one_hot(gts[0], 2))
    feature_s, ours_s, dense_s, js = [], [], [], []
    h, w = prop._grid
    ii, jj = np.divmod(np.arange(h * w), w)
    mask_nb = torch.from_numpy(
        (np.abs(ii[:, None] - ii) <= 12) & (np.abs(jj[:, None] - jj) <= 12)
    ).float()
    for frame, gt in zip(frames[1:], gts[1:], strict=True):
        before = dict(prop.timings)
        # snapshot the context the step will use, to time the dense reference on the same inputs
        context = [prop._first, *prop._recent]
        step = prop.step(frame)
        feature_s.append(prop.timings["features"] - before["features"])
        ours_s.append(prop.timings["propagation"] - before["propagation"])
        query = prop._recent[-1][0]
        t0 = time.perf_counter()
        dense = dense_reference_step(
            query, [c[0] for c in context], [c[1] for c in context], h, w, mask_nb
        )
        up = F.interpolate(
            dense.reshape(1, -1, h, w), scale_factor=14, mode="bilinear", align_corners=False
        )
        dense_s.append(time.perf_counter() - t0)
        js.append(jaccard(gt.astype(bool), np.argmax(step.probs, axis=0) == 1))
        del up
    ours = statistics.median(ours_s[7:] or ours_s)
    dense_med = statistics.median(dense_s[7:] or dense_s)
    print(
        json.dumps(
            {
                "benchmark": "affinity_propagation",
                "data": f"DAVIS blackswan 480p, {len(frames)} frames, grid {h}x{w}, 8 context frames",
                "weights": backbone.weights.to_dict(),
                "features_s_per_frame_median": round(statistics.median(feature_s), 4),
                "propagation_s_per_frame_median_ours": round(ours, 4),
                "propagation_s_per_frame_median_dense_reference_here": round(dense_med, 4),
                "speedup_vs_dense_here": round(dense_med / ours, 2),
                "reference_figure_s_per_frame": [0.73, 0.84],
                "speedup_vs_reference_figure": round(0.73 / ours, 2),
                "neighbourhood_setup_ms": round(setup_ms, 2),
                "J_mean_random_init": round(float(np.mean(js)), 4),
                "machine": machine_facts(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
