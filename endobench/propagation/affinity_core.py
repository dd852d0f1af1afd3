"""Feature-affinity label propagation maths (the DINO video-segmentation protocol), as pure functions.

Shapes: a frame's features are ``d x h x w`` (patch grid), soft labels are ``C x h x w``. The affinity of
a query patch to a source patch is ``exp(cos / temperature)``; only sources inside a square window of
``radius`` patches around the query (in every context frame) compete; the top-k of them over all
context frames jointly keep their weight (ties with the k-th value included, as in the reference),
normalised to sum to one. The result is the weighted average of the sources' soft labels.

Instead of the reference's dense ``ncontext*hw x hw`` affinity and mask, only the windowed similarities
are computed: block by block of queries, against the rectangle of sources the block's windows reach
(:func:`window_tiles`, :func:`window_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

#: Side of the query blocks whose windowed similarities are computed as one product.
TILE = 8


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    """``d x h x w`` features -> ``hw x d`` float32 rows of unit L2 norm (over the channel dim)."""
    d = features.shape[0]
    rows = features.reshape(d, -1).t().float()
    return F.normalize(rows, p=2, dim=1)


@dataclass(frozen=True)
class Tile:
    """A block of query patches and the rectangle of sources their windows reach.

    ``queries``: ``nq`` grid indices of the block. Sources: grid rows ``ya:yb`` x columns of the
    ``band``-th column band, ``band_cols = (xa, xb)``; they are enumerated row-major, so the
    ``ns = (yb - ya) * (xb - xa)`` sources of a frame are one contiguous slice of its band
    (:func:`window_keys`). ``bias``: ``nq x ns`` float32, 0 for a source inside the query's own
    window, -inf outside.
    """

    queries: torch.Tensor
    band: int
    rows: tuple[int, int]
    band_cols: tuple[int, int]
    bias: torch.Tensor


@lru_cache(maxsize=8)
def window_tiles(h: int, w: int, radius: int, size: int = TILE) -> tuple[Tile, ...]:
    """Cover an ``h x w`` grid with ``size x size`` query blocks (see :class:`Tile`).

    With ``size`` 8 and radius 12 a block reaches at most 32 x 32 sources, against ``h * w`` for
    each query in the dense product. ``radius <= 0`` means no restriction.
    """
    if radius <= 0:
        radius = max(h, w)
    tiles = []
    for band, x0 in enumerate(range(0, w, size)):
        x1 = min(x0 + size, w)
        xa, xb = max(x0 - radius, 0), min(x1 + radius, w)
        for y0 in range(0, h, size):
            y1 = min(y0 + size, h)
            ya, yb = max(y0 - radius, 0), min(y1 + radius, h)
            qy, qx = np.mgrid[y0:y1, x0:x1].reshape(2, -1)
            sy, sx = np.mgrid[ya:yb, xa:xb].reshape(2, -1)
            outside = (np.abs(qy[:, None] - sy) > radius) | (np.abs(qx[:, None] - sx) > radius)
            tiles.append(
                Tile(
                    torch.from_numpy(qy * w + qx),
                    band,
                    (ya, yb),
                    (xa, xb),
                    torch.from_numpy(np.where(outside, -np.inf, 0.0).astype(np.float32)),
                )
            )
    return tuple(tiles)


def window_keys(
    features: torch.Tensor, grid: tuple[int, int], radius: int, size: int = TILE
) -> tuple[torch.Tensor, ...]:
    """A frame's ``hw x d`` features laid out for :func:`propagate_labels`: per column band of
    :func:`window_tiles`, the ``d x h * (xb - xa)`` features of the band's patches (row-major,
    transposed, the layout BLAS multiplies fastest), so every block's sources are one slice of
    columns. Built once per frame."""
    h, w = grid
    grid_features = features.reshape(h, w, -1)
    bands = {tile.band: tile.band_cols for tile in window_tiles(h, w, radius, size)}
    return tuple(
        grid_features[:, xa:xb].reshape(-1, features.shape[1]).t().contiguous()
        for _, (xa, xb) in sorted(bands.items())
    )


def propagate_labels(
    query: torch.Tensor,
    context_keys: list[tuple[torch.Tensor, ...]],
    context_labels: list[torch.Tensor],
    grid: tuple[int, int],
    radius: int = 12,
    topk: int = 5,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Propagate soft labels from context frames onto a query frame.

    query: ``hw x d`` L2-normalised features of the target frame.
    context_keys: per context frame (first frame first) its L2-normalised features as
    :func:`window_keys` lays them out (same ``grid`` and ``radius``).
    context_labels: per context frame ``C x hw`` soft labels.
    Returns ``(labels, top_affinity)``: ``C x hw`` propagated labels (columns sum to one when the
    context labels do) and ``hw`` mean cosine similarity of the kept sources (a confidence cue).

    Only the windowed similarities are computed, one product per block of queries and context
    frame (:func:`window_tiles`). exp is monotone, so the top-k affinities are the exp of the
    top-k similarities. They lie in the k source rows (of any frame) with the largest maxima;
    only those rows' similarities are exponentiated. All sources whose affinity ties with the
    k-th are kept, as in the reference: a query whose (k+1)-th row maximum could tie is redone
    over its whole window.
    """
    threads = torch.get_num_threads()
    # Hundreds of small products and reductions: on CPU, fanning each out to threads costs
    # more than it gains (and stalls when the machine is shared), so run them on one thread.
    torch.set_num_threads(1)
    try:
        return _propagate_blocks(
            query, context_keys, context_labels, grid, radius, topk, temperature
        )
    finally:
        torch.set_num_threads(threads)


def _propagate_blocks(
    query: torch.Tensor,
    context_keys: list[tuple[torch.Tensor, ...]],
    context_labels: list[torch.Tensor],
    grid: tuple[int, int],
    radius: int,
    topk: int,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`propagate_labels`, block by block."""
    h, w = grid
    hw = h * w
    n_ctx = len(context_keys)
    all_labels = torch.cat(context_labels, dim=1)  # C x (ncontext*hw), frame-major
    labels = torch.empty(all_labels.shape[0], hw, dtype=all_labels.dtype)
    confidence = torch.empty(hw, dtype=query.dtype)
    tiles = window_tiles(h, w, radius)
    # One buffer for every block's similarities: a fresh multi-MB tensor per block would cost
    # page faults each time.
    buffer = torch.empty(n_ctx * max(t.bias.numel() for t in tiles), dtype=query.dtype)
    for tile in tiles:
        (ya, yb), (xa, xb) = tile.rows, tile.band_cols
        n_rows, width = yb - ya, xb - xa
        n_src, nq = n_rows * width, tile.queries.numel()
        q = query[tile.queries]
        sim = buffer[: n_ctx * nq * n_src].view(n_ctx, nq, n_src)
        for c, bands in enumerate(context_keys):
            # bias + q @ keys in one BLAS call: sources outside the query's window get -inf.
            torch.addmm(tile.bias, q, bands[tile.band][:, ya * width : yb * width], out=sim[c])
        # Best source rows: maxima over each row of the sources, of every frame.
        row_max = sim.view(n_ctx, nq, n_rows, width).amax(dim=3).transpose(0, 1)
        row_max = row_max.reshape(nq, n_ctx * n_rows)
        k = min(topk, n_ctx * n_src)
        n_chosen = min(k, row_max.shape[1])  # the k best rows, or all of them
        picked_max, picked = row_max.topk(min(k + 1, row_max.shape[1]), dim=1)
        chosen = picked[:, :n_chosen]
        frame, row = chosen // n_rows, chosen % n_rows
        query_ids = torch.arange(nq)[:, None]
        cand_sim = sim.view(n_ctx, nq, n_rows, width)[frame, query_ids, row].reshape(nq, -1)
        columns = torch.arange(xa, xb)
        source = (frame * hw + (ya + row) * w)[:, :, None] + columns
        source = source.reshape(nq, -1)
        cand_aff = torch.exp(cand_sim / temperature)
        kth = cand_aff.topk(k, dim=1).values[:, k - 1 : k]
        kept = torch.where(cand_aff >= kth, cand_aff, 0.0)
        weights = kept / kept.sum(dim=1, keepdim=True)
        labels[:, tile.queries] = (all_labels[:, source] * weights.unsqueeze(0)).sum(dim=2)
        confidence[tile.queries] = (cand_sim.clamp_min(-1.0) * weights).sum(dim=1)
        if picked.shape[1] == n_chosen:
            continue  # every source row was a candidate
        # A source outside the chosen rows is at most the (k+1)-th row maximum: when its
        # affinity reaches the k-th, ties may run past the candidates; use the whole window.
        redo = torch.exp(picked_max[:, k] / temperature) >= kth[:, 0]
        for i in torch.nonzero(redo).flatten().tolist():
            window_sim = sim[:, i].reshape(-1)
            aff = torch.exp(window_sim / temperature)
            keep = torch.nonzero(aff >= kth[i]).flatten()
            wts = aff[keep] / aff[keep].sum()
            frame_i, pos = keep // n_src, keep % n_src
            src = frame_i * hw + (ya + pos // width) * w + xa + pos % width
            labels[:, tile.queries[i]] = (all_labels[:, src] * wts).sum(dim=1)
            confidence[tile.queries[i]] = (window_sim[keep] * wts).sum()
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
