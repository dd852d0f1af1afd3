"""Feature-affinity label propagation maths (the DINO video-segmentation protocol), as pure functions.

Shapes: a frame's features are ``d x h x w`` (patch grid), soft labels are ``C x h x w``. The affinity of
a query patch to a source patch is ``exp(cos / temperature)``; only sources inside a square window of
``radius`` patches around the query (in every context frame) compete; the top-k of them over all
context frames jointly keep their weight (ties with the k-th value included, as in the reference),
normalised to sum to one. The result is the weighted average of the sources' soft labels.

Instead of the reference's dense ``ncontext*hw x hw`` affinity and mask, each query gathers its window
from a ``hw x (2r+1)^2`` index table built once per grid size (vectorised, milliseconds).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


@lru_cache(maxsize=8)
def window_index(h: int, w: int, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices of each query's square window on an ``h x w`` grid.

    Returns ``index`` (``hw x K`` int64, K = (2r+1)^2; out-of-grid slots point at 0) and ``valid``
    (``hw x K`` bool). ``radius <= 0`` means no restriction: every query sees every source.
    """
    if radius <= 0 or (radius >= h - 1 and radius >= w - 1):
        index = torch.arange(h * w).expand(h * w, h * w).contiguous()
        return index, torch.ones(h * w, h * w, dtype=torch.bool)
    offsets = np.arange(-radius, radius + 1)
    ys, xs = np.divmod(np.arange(h * w), w)
    sy = ys[:, None] + offsets  # hw x (2r+1) source rows
    sx = xs[:, None] + offsets  # hw x (2r+1) source columns
    valid = ((sy >= 0) & (sy < h))[:, :, None] & ((sx >= 0) & (sx < w))[:, None, :]
    # Out-of-grid slots are clipped onto the grid (any index will do: they are masked out).
    index = (np.clip(sy, 0, h - 1) * w)[:, :, None] + np.clip(sx, 0, w - 1)[:, None, :]
    return torch.from_numpy(index.reshape(h * w, -1)), torch.from_numpy(valid.reshape(h * w, -1))


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    """``d x h x w`` features -> ``hw x d`` float32 rows of unit L2 norm (over the channel dim)."""
    d = features.shape[0]
    rows = features.reshape(d, -1).t().float()
    return F.normalize(rows, p=2, dim=1)


def propagate_labels(
    query: torch.Tensor,
    context_features: list[torch.Tensor],
    context_labels: list[torch.Tensor],
    grid: tuple[int, int],
    radius: int = 12,
    topk: int = 5,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Propagate soft labels from context frames onto a query frame.

    query: ``hw x d`` L2-normalised features of the target frame.
    context_features: per context frame ``hw x d`` L2-normalised features (first frame first).
    context_labels: per context frame ``C x hw`` soft labels.
    Returns ``(labels, top_affinity)``: ``C x hw`` propagated labels (columns sum to one when the
    context labels do) and ``hw`` mean cosine similarity of the kept sources (a confidence cue).
    """
    h, w = grid
    hw = h * w
    index, valid = window_index(h, w, radius)
    n_window = index.shape[1]
    sims = []
    for keys in context_features:
        full = query @ keys.t()  # hw x hw, the same product the reference computes
        sims.append(torch.gather(full, 1, index))
    sim = torch.cat(sims, dim=1)  # hw x (ncontext*K), frame-major like the reference's stacking
    sim.masked_fill_(~valid.repeat(1, len(context_features)), -torch.inf)
    k = min(topk, sim.shape[1])
    # exp is monotone, so the top-k affinities are the exp of the top-k similarities: rank the
    # similarities and exponentiate only a few candidates. The 8 extra candidates catch the
    # sources whose affinity ties with the k-th one (the reference keeps all of them).
    n_cand = min(k + 8, sim.shape[1])
    cand_sim, cand_slot = sim.topk(n_cand, dim=1)
    cand_aff = torch.exp(cand_sim / temperature)
    kth = cand_aff[:, k - 1 : k]
    kept = torch.where(cand_aff >= kth, cand_aff, 0.0)
    weights = kept / kept.sum(dim=1, keepdim=True)
    source = torch.gather(index, 1, cand_slot % n_window) + (cand_slot // n_window) * hw
    all_labels = torch.cat(context_labels, dim=1)  # C x (ncontext*hw)
    labels = (all_labels[:, source] * weights.unsqueeze(0)).sum(dim=2)
    confidence = (cand_sim.clamp_min(-1.0) * weights).sum(dim=1)

    # Rows whose ties run past the candidates (never seen in practice): use every source.
    for row in torch.nonzero(cand_aff[:, -1] >= kth[:, 0]).flatten().tolist():
        if n_cand == sim.shape[1]:
            break
        aff = torch.exp(sim[row] / temperature)
        keep = torch.nonzero(aff >= kth[row]).flatten()
        wts = aff[keep] / aff[keep].sum()
        src = index[row, keep % n_window] + (keep // n_window) * hw
        labels[:, row] = (all_labels[:, src] * wts).sum(dim=1)
        confidence[row] = (sim[row, keep] * wts).sum()
    return labels, confidence


def minmax_per_channel(probs: torch.Tensor) -> torch.Tensor:
    """The reference's ``norm_mask``: rescale each channel with max > 0 to [0, 1] (``C x H x W``)."""
    out = probs.clone()
    for c in range(out.shape[0]):
        channel = out[c]
        if channel.max() > 0:
            # Same operations as the reference, so a constant channel gives NaN there and here alike.
            shifted = channel - channel.min()
            out[c] = shifted / shifted.max()
    return out
