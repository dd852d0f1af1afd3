"""Benchmark feature-affinity propagation against the official DINO algorithm, in one run; prints JSON.

Comparison: endobench's :class:`~endobench.propagation.affinity.AffinityPropagator` (reference
mode: windowed similarities only) against ``dino_dense``, a literal transcription of the
official DINO ``eval_video_segmentation.py`` propagation as ``../shared/docs/PROPAGATION.md``
documents it (not its code, which needs CUDA and a global ``args``): per target frame a dense
``ncontext x hw x hw`` ``exp(cos / 0.1)`` affinity, the 0/1 square-neighbourhood mask multiplied
in, a joint top-k over all sources, column normalisation and ``segs @ aff``; then the output step
(bilinear x patch, per-channel min-max ``norm_mask``, argmax, PIL-nearest resize). Both run on the
same features (random-init ViT-S/14, computed once; the features' time is reported apart) and
each keeps its own context queue (first frame + 7 previous soft label maps), so their masks are
compared frame by frame: share of identical pixels and the J&F of each against the ground truth.
Clips: DAVIS blackswan (1 object) and CholecSeg8k video48 (7 classes + background), 480x854.
Per-frame times: medians over the frames with a full context (t >= 8), wall and CPU.

    python bench/bench_affinity.py [--frames 12]
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
from machine import machine_facts

from endobench.metrics import jaccard_and_boundary
from endobench.models import build_backbone
from endobench.propagation.affinity import (
    AffinityConfig,
    AffinityPropagator,
    FeatureExtractor,
)
from endobench.propagation.affinity_core import l2_normalize
from endobench.propagation.base import one_hot

SAMPLES = Path(
    os.environ.get("ENDOBENCH_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "data")
)
CHOLEC_CLASSES = (11, 12, 13, 21, 22, 31, 32)


def norm_mask(mask: torch.Tensor) -> torch.Tensor:
    """The reference's ``norm_mask``: rescale each channel with max > 0 to [0, 1] (``C x H x W``)."""
    for c in range(mask.shape[0]):
        channel = mask[c]
        if channel.max() > 0:
            channel = channel - channel.min()
            mask[c] = channel / channel.max()
    return mask


class DinoDense:
    """The official protocol's propagation, dense, on given ``hw x d`` L2-normalised features."""

    def __init__(self, grid: tuple[int, int], patch: int, n_last: int = 7, topk: int = 5) -> None:
        self.h, self.w = grid
        self.patch, self.n_last, self.topk = patch, n_last, topk
        ii, jj = np.divmod(np.arange(self.h * self.w), self.w)
        self.mask_nb = torch.from_numpy(
            (np.abs(ii[:, None] - ii) <= 12) & (np.abs(jj[:, None] - jj) <= 12)
        ).float()
        self.queue: list[tuple[torch.Tensor, torch.Tensor]] = []

    def reset(self, features: torch.Tensor, labels: np.ndarray) -> None:
        small = np.asarray(Image.fromarray(labels).resize((self.w, self.h), Image.NEAREST))
        seg = torch.stack([torch.from_numpy(small == c) for c in range(int(labels.max()) + 1)])
        self.first = (features, seg.float().reshape(seg.shape[0], -1))
        self.queue = []

    def step(self, features: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        context = [self.first, *self.queue]
        aff = torch.stack([torch.exp(features @ f.t() / 0.1) for f, _ in context]).transpose(1, 2)
        aff = (aff * self.mask_nb[None]).reshape(len(context) * self.h * self.w, -1)
        tk_val_min = torch.topk(aff, dim=0, k=self.topk).values.min(dim=0).values
        aff[aff < tk_val_min] = 0
        aff = aff / aff.sum(dim=0, keepdim=True)
        seg_tar = torch.cat([s for _, s in context], dim=1) @ aff
        if len(self.queue) == self.n_last:
            self.queue.pop(0)
        self.queue.append((features, seg_tar))
        up = F.interpolate(
            seg_tar.reshape(1, -1, self.h, self.w),
            scale_factor=self.patch,
            mode="bilinear",
            align_corners=False,
            recompute_scale_factor=False,
        )[0]
        lab = torch.max(norm_mask(up), dim=0).indices.to(torch.uint8).numpy()
        return np.asarray(Image.fromarray(lab).resize((size[1], size[0]), Image.NEAREST))


class Recording:
    """Feature extractor wrapper that keeps every frame's L2-normalised ``hw x d`` features."""

    def __init__(self, extractor: FeatureExtractor) -> None:
        self.extractor = extractor
        self.patch_size, self.mean, self.std = extractor.patch_size, extractor.mean, extractor.std
        self.weights = extractor.weights
        self.frames: list[torch.Tensor] = []
        self.cpu_s = 0.0  # CPU time spent in the backbone

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        c0 = time.process_time()
        features = self.extractor(image)
        self.cpu_s += time.process_time() - c0
        self.frames.append(l2_normalize(features).reshape(features.shape[0], -1).t())
        return features


def davis_clip(n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    root = SAMPLES / "DAVIS"
    names = sorted((root / "JPEGImages/480p/blackswan").glob("*.jpg"))[:n]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in names]
    gts = [
        (
            np.asarray(Image.open(root / "Annotations/480p/blackswan" / (p.stem + ".png"))) > 127
        ).astype(np.uint8)
        for p in names
    ]
    return frames, gts


def cholec_clip(n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    clip = SAMPLES / "CholecSeg8k/video48/video48_00561"
    lut = np.zeros(256, np.uint8)
    lut[list(CHOLEC_CLASSES)] = np.arange(1, len(CHOLEC_CLASSES) + 1)
    ids = range(561, 561 + n)
    frames = [
        cv2.cvtColor(cv2.imread(str(clip / f"frame_{i}_endo.png")), cv2.COLOR_BGR2RGB) for i in ids
    ]
    gts = [
        lut[cv2.imread(str(clip / f"frame_{i}_endo_watershed_mask.png"), cv2.IMREAD_GRAYSCALE)]
        for i in ids
    ]
    return frames, gts


def mean_jf(gts: list[np.ndarray], preds: list[np.ndarray]) -> float:
    """Mean over objects and frames 1.. of (J + F) / 2 (objects of the first ground truth)."""
    scores = [
        (j + f) / 2
        for g, p in zip(gts[1:], preds[1:], strict=True)
        for obj in range(1, int(gts[0].max()) + 1)
        for j, _, _, f in [jaccard_and_boundary(g == obj, p == obj)]
    ]
    return float(np.mean(scores))


def run_clip(name: str, frames: list, gts: list, backbone) -> dict:
    recorder = Recording(FeatureExtractor(backbone))
    prop = AffinityPropagator(recorder, AffinityConfig(mode="reference"))
    n_classes = int(gts[0].max()) + 1
    prop.reset(frames[0], one_hot(gts[0], n_classes))
    dense = DinoDense(prop._grid, prop.patch)
    dense.reset(recorder.frames[0], gts[0])
    ours_out, dense_out = [gts[0]], [gts[0]]
    t_ours, t_dense, t_feat = [], [], []
    for frame in frames[1:]:
        before, backbone_cpu = dict(prop.timings), recorder.cpu_s
        c0 = time.process_time()
        step = prop.step(frame)
        # CPU of the step less the backbone's (pre-processing stays on our side: conservative)
        cpu_ours = time.process_time() - c0 - (recorder.cpu_s - backbone_cpu)
        feat_s = prop.timings["features"] - before["features"]
        ours_s = prop.timings["propagation"] - before["propagation"]
        ours_out.append(np.argmax(step.probs, axis=0).astype(np.uint8))
        c0, t0 = time.process_time(), time.perf_counter()
        dense_out.append(dense.step(recorder.frames[-1], frame.shape[:2]))
        t_dense.append((time.perf_counter() - t0, time.process_time() - c0))
        t_ours.append((ours_s, cpu_ours))
        t_feat.append(feat_s)
    full = slice(7, None) if len(t_ours) > 7 else slice(None)
    ours_wall = statistics.median(t for t, _ in t_ours[full])
    dense_wall = statistics.median(t for t, _ in t_dense[full])
    ours_cpu = statistics.median(c for _, c in t_ours[full])
    dense_cpu = statistics.median(c for _, c in t_dense[full])
    same = [float(np.mean(a == b)) for a, b in zip(ours_out[1:], dense_out[1:], strict=True)]
    jf_ours, jf_dense = mean_jf(gts, ours_out), mean_jf(gts, dense_out)
    return {
        "clip": name,
        "frames": len(frames),
        "grid": list(prop._grid),
        "classes": n_classes,
        "features_s_per_frame_median": round(statistics.median(t_feat), 4),
        "propagation_s_per_frame_median": {
            "ours": {"wall": round(ours_wall, 4), "cpu": round(ours_cpu, 4)},
            "dino_dense": {"wall": round(dense_wall, 4), "cpu": round(dense_cpu, 4)},
        },
        "speedup_vs_dino_dense": {
            "wall": round(dense_wall / ours_wall, 2),
            "cpu": round(dense_cpu / max(ours_cpu, 1e-12), 2),
        },
        "identical_pixels_min_over_frames": min(same),
        "frames_with_identical_masks": sum(s == 1.0 for s in same),
        "JF_ours": round(jf_ours, 6),
        "JF_dino_dense": round(jf_dense, 6),
        "JF_abs_diff": abs(jf_ours - jf_dense),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(0)
    backbone = build_backbone("dinov2_vits14", pretrained=False)
    clips = [
        run_clip("DAVIS blackswan 480p", *davis_clip(args.frames), backbone),
        run_clip("CholecSeg8k video48 480p", *cholec_clip(args.frames), backbone),
    ]
    print(
        json.dumps(
            {
                "benchmark": "affinity propagation per frame, ours vs dino_dense, same run",
                "comparison": __doc__.split("\n\n")[1],
                "weights": backbone.weights.to_dict(),
                "clips": clips,
                "machine": machine_facts(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
