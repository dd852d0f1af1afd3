"""Feature-affinity label propagation maths (the DINO video-segmentation protocol), as pure functions.

Shapes: a frame's features are ``d x h x w`` (patch grid), soft labels are ``C x h x w``. The affinity of
a query patch to a source patch is ``exp(cos / temperature)``; only sources inside a square window of
``radius`` patches around the query (in every context frame) compete; the top-k of them over all
context frames jointly keep their weight (ties with the k-th value included, as in the reference),
normalised to sum to one. The result is the weighted average of the sources' soft labels.

Instead of the reference's dense ``ncontext*hw x hw`` affinity and mask, only the windowed similarities
are computed: block by block of queries, against the rectangle of sources the block's windows reach
(:func:`window_plan`, :func:`window_keys`). The output step of the reference (bilinear upsampling,
per-channel min-max, argmax) is :func:`reference_argmax`.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

#: Rows x columns of the query blocks whose windowed similarities are computed as one product:
#: 6 x 8 queries (48 rows of the product) against at most 30 x 32 sources is the fastest CPU
#: shape measured at radius 12 (fewer wasted sources than 8 x 8, products still BLAS-sized).
TILE = (6, 8)

#: Most threads sharing a frame's blocks: beyond that the Python between the products
#: (one GIL) is the limit.
MAX_WORKERS = 4

#: Added to the similarity of a source outside the query's window: ``exp`` of it over any
#: positive temperature is exactly 0 (the reference's 0/1 mask), and unlike ``-inf`` it stays
#: finite, so ``0 * similarity`` is 0, not NaN.
OUTSIDE = -float(torch.finfo(torch.float32).max)


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    """``d x h x w`` features -> contiguous ``d x h x w`` float32 of unit L2 norm over the
    channel dim (the same bits as normalising the ``hw x d`` rows, as the reference does)."""
    return F.normalize(features.float().contiguous(), p=2, dim=0)


@dataclass(frozen=True)
class Tile:
    """A block of query patches and the rectangle of sources their windows reach.

    ``start:stop``: the block's slice of :attr:`WindowPlan.order` (its ``nq`` queries). Sources:
    grid rows ``ya:yb`` x columns of the ``band``-th column band, ``band_cols = (xa, xb)``;
    enumerated row-major, so the ``ns = (yb - ya) * (xb - xa)`` sources of a frame are one
    contiguous slice of its band (:func:`window_keys`); ``sources``: their ``ns`` grid indices.
    ``bias``: ``nq x ns`` float32, 0 for a source inside the query's own window, :data:`OUTSIDE`
    outside.
    """

    start: int
    stop: int
    band: int
    rows: tuple[int, int]
    band_cols: tuple[int, int]
    sources: torch.Tensor
    bias: torch.Tensor


@dataclass(frozen=True)
class WindowPlan:
    """The blocks covering a grid: ``order`` lists every grid index once, block after block."""

    tiles: tuple[Tile, ...]
    order: torch.Tensor
    bands: tuple[tuple[int, int], ...]


@lru_cache(maxsize=8)
def window_plan(h: int, w: int, radius: int, size: tuple[int, int] = TILE) -> WindowPlan:
    """Cover an ``h x w`` grid with ``size`` (rows x columns) query blocks (see :class:`Tile`).

    At radius 12 a 6 x 8 block reaches at most 30 x 32 sources, against ``h * w`` for each query
    in the dense product. ``radius <= 0`` means no restriction.
    """
    if radius <= 0:
        radius = max(h, w)
    ty, tx = size
    tiles, order, bands = [], [], []
    start = 0
    for band, x0 in enumerate(range(0, w, tx)):
        x1 = min(x0 + tx, w)
        xa, xb = max(x0 - radius, 0), min(x1 + radius, w)
        bands.append((xa, xb))
        for y0 in range(0, h, ty):
            y1 = min(y0 + ty, h)
            ya, yb = max(y0 - radius, 0), min(y1 + radius, h)
            qy, qx = np.mgrid[y0:y1, x0:x1].reshape(2, -1)
            sy, sx = np.mgrid[ya:yb, xa:xb].reshape(2, -1)
            outside = (np.abs(qy[:, None] - sy) > radius) | (np.abs(qx[:, None] - sx) > radius)
            order.append(qy * w + qx)
            stop = start + qy.size
            tiles.append(
                Tile(
                    start,
                    stop,
                    band,
                    (ya, yb),
                    (xa, xb),
                    torch.from_numpy(sy * w + sx),
                    torch.from_numpy(np.where(outside, OUTSIDE, 0.0).astype(np.float32)),
                )
            )
            start = stop
    return WindowPlan(tuple(tiles), torch.from_numpy(np.concatenate(order)), tuple(bands))


def window_keys(
    features: torch.Tensor, radius: int, size: tuple[int, int] = TILE
) -> tuple[torch.Tensor, ...]:
    """A frame's ``d x h x w`` L2-normalised features laid out for :func:`propagate_labels`: per
    column band of :func:`window_plan`, the ``d x h * (xb - xa)`` features of the band's patches
    (row-major), so every block's sources are one slice of columns. Built once per frame."""
    d, h, w = features.shape
    plan = window_plan(h, w, radius, size)
    return tuple(features[:, :, xa:xb].reshape(d, -1) for xa, xb in plan.bands)


def propagate_labels(
    query: torch.Tensor,
    context_keys: list[tuple[torch.Tensor, ...]],
    context_labels: list[torch.Tensor],
    radius: int = 12,
    topk: int = 5,
    temperature: float = 0.1,
    workers: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Propagate soft labels from context frames onto a query frame.

    query: ``d x h x w`` L2-normalised features of the target frame.
    context_keys: per context frame (first frame first) its L2-normalised features as
    :func:`window_keys` lays them out (same grid and ``radius``).
    context_labels: per context frame ``C x hw`` soft labels.
    Returns ``(labels, top_affinity)``: ``C x hw`` propagated labels (columns sum to one when the
    context labels do) and ``hw`` mean cosine similarity of the kept sources (a confidence cue).

    Only the windowed similarities are computed, one product per block of queries and context
    frame (:func:`window_plan`); everything after them stays inside the block (in cache).
    ``workers`` threads share the blocks (default: torch's thread count, at most
    :data:`MAX_WORKERS`); the result does not depend on it.
    """
    workers = max(1, min(workers or torch.get_num_threads(), MAX_WORKERS))
    with one_thread():
        return _propagate_blocks(
            query, context_keys, context_labels, radius, topk, temperature, workers
        )


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch's CPU operations on one thread inside the block (restored on exit).

    Propagation is hundreds of small products and reductions per frame: fanning each out to
    OpenMP threads costs more than it gains, and stalls when the machine is shared.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _propagate_blocks(
    query: torch.Tensor,
    context_keys: list[tuple[torch.Tensor, ...]],
    context_labels: list[torch.Tensor],
    radius: int,
    topk: int,
    temperature: float,
    workers: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`propagate_labels`: blocks shared out to ``workers`` threads (torch's operations
    release the GIL), each with its own similarity buffer, writing disjoint rows of the result."""
    d, h, w = query.shape
    hw = h * w
    plan = window_plan(h, w, radius)
    task = _Task(
        queries=query.reshape(d, hw).index_select(1, plan.order),  # d x hw, block after block
        keys=context_keys,
        labels=torch.cat(context_labels, dim=1),  # C x (n_ctx * hw), frame-major
        grid=(h, w),
        topk=topk,
        temperature=temperature,
        out=torch.empty(context_labels[0].shape[0] + 1, hw),  # labels, similarity per query
    )
    tiles = plan.tiles
    chunks = [
        tiles[i * len(tiles) // workers : (i + 1) * len(tiles) // workers] for i in range(workers)
    ]
    if workers == 1:
        task.run(chunks[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(task.run_one_thread, chunks))
    result = torch.empty_like(task.out)
    result[:, plan.order] = task.out
    return result[:-1], result[-1]


@dataclass(frozen=True)
class _Task:
    """One frame's propagation, block by block (see :meth:`run`)."""

    queries: torch.Tensor
    keys: list[tuple[torch.Tensor, ...]]
    labels: torch.Tensor
    grid: tuple[int, int]
    topk: int
    temperature: float
    out: torch.Tensor

    def run_one_thread(self, tiles: tuple[Tile, ...]) -> None:
        """:meth:`run` on a worker thread, whose torch operations then stay on it."""
        torch.set_num_threads(1)
        self.run(tiles)

    def run(self, tiles: tuple[Tile, ...]) -> None:
        """Propagate onto the queries of ``tiles``.

        Per block: similarities ``n_ctx x nq x ns`` (``OUTSIDE`` added out of the windows) and
        the maximum of every source row (``width`` sources) of every frame. The k-th largest
        affinity of a query lies in the k rows with the largest maxima. exp is monotone, but
        computed affinities are rounded: a source whose similarity is within
        :func:`_tie_tolerance` of the k-th may still tie with the k-th affinity (the reference
        keeps all ties). So the affinities are computed on every row whose maximum reaches the
        k-th similarity less that tolerance (usually the k rows already there), and the k-th
        affinity, the kept sources and their weights are taken from those alone: every source
        outside them has a strictly smaller affinity.
        """
        if not tiles:
            return
        n_ctx, (h, w), k = len(self.keys), self.grid, self.topk
        hw = h * w
        tolerance = _tie_tolerance(self.temperature)
        # One buffer for every block's similarities: a fresh multi-MB tensor per block would
        # cost page faults each time.
        buffer = torch.empty(n_ctx * max(t.bias.numel() for t in tiles))
        for tile in tiles:
            (ya, yb), (xa, xb) = tile.rows, tile.band_cols
            n_rows, width = yb - ya, xb - xa
            nq, n_src = tile.stop - tile.start, n_rows * width
            q = self.queries[:, tile.start : tile.stop].t()  # transposed operand: free for BLAS
            sim = buffer[: n_ctx * nq * n_src].view(n_ctx, nq, n_src)
            for c, bands in enumerate(self.keys):
                # bias + q @ keys in one BLAS call: sources outside the window get OUTSIDE.
                band = bands[tile.band][:, ya * width : yb * width]
                torch.addmm(tile.bias, q, band, out=sim[c])
            rows = sim.view(n_ctx * nq * n_rows, width)
            row_max = rows.amax(dim=1).view(n_ctx, nq, n_rows).transpose(0, 1).reshape(nq, -1)
            query_rows = torch.arange(nq)[:, None] * n_rows
            best = row_max.topk(min(k, row_max.shape[1]), dim=1).indices  # sorted
            sims = rows[(best // n_rows) * (nq * n_rows) + query_rows + best % n_rows]
            aff = torch.exp(sims.view(nq, -1) / self.temperature)
            kth, at = aff.topk(min(k, aff.shape[1]), dim=1)
            kth_sim = sims.view(nq, -1).gather(1, at[:, -1:])
            n_near = int((row_max >= kth_sim - tolerance).sum(dim=1).max())
            if n_near > best.shape[1]:  # ties may run past the k rows: take every such row
                best = row_max.topk(n_near, dim=1).indices
                sims = rows[(best // n_rows) * (nq * n_rows) + query_rows + best % n_rows]
                aff = torch.exp(sims.view(nq, -1) / self.temperature)
                kth = aff.topk(min(k, aff.shape[1]), dim=1).values
            aff.masked_fill_(aff < kth[:, -1:], 0.0)
            weights = aff / aff.sum(dim=1, keepdim=True)
            frame, row = best // n_rows, best % n_rows
            sources = (frame * hw + (ya + row) * w + xa)[:, :, None] + torch.arange(width)
            picked = self.labels[:, sources.view(-1)].view(-1, nq, weights.shape[1])
            self.out[:-1, tile.start : tile.stop] = (picked * weights).sum(dim=2)
            self.out[-1, tile.start : tile.stop] = (sims.view(nq, -1) * weights).sum(dim=1)


def _tie_tolerance(temperature: float) -> float:
    """Similarities closer than this to the k-th may round to the same float32 affinity.

    ``exp(x / T)`` as computed (division and exp each within ~1 ulp, 1.2e-7 relative, for
    ``|x| <= 1``) is strictly smaller for ``x`` than for ``y`` when ``(y - x) / T`` exceeds
    ``2.4e-7 + 1.2e-7 / T``; ``1e-6 * (1 + T)`` leaves a margin of 4x at least.
    """
    return 1e-6 * (1.0 + temperature)


def reference_argmax(grid_labels: torch.Tensor, patch: int) -> np.ndarray:
    """The reference's output step on ``C x h x w`` soft labels -> ``(h * patch) x (w * patch)`` uint8.

    Bilinear upsampling by ``patch`` (half-pixel centres, as ``F.interpolate`` with
    ``scale_factor``), per-channel min-max rescaling of every channel whose max is > 0
    (the reference's ``norm_mask``), first arg-max over channels. Same values as the reference's
    float32 operations, computed channel by channel without materialising the rescaled map.
    A constant channel with max > 0 is all NaN in the reference, and ``torch.max`` picks the first
    NaN channel at every pixel; so does this.
    """
    up = F.interpolate(
        grid_labels[None],
        scale_factor=patch,
        mode="bilinear",
        align_corners=False,
        recompute_scale_factor=False,
    )[0].numpy()
    labels = np.zeros(up.shape[1:], np.uint8)
    best = np.empty(up.shape[1:], np.float32)
    better = np.empty(up.shape[1:], bool)
    for c, channel in enumerate(up):
        high = channel.max()
        if high > 0:
            low = channel.min()
            if high == low:  # (channel - low) / 0: NaN everywhere
                labels[:] = c
                return labels
            # max(channel - low) == high - low exactly: float rounding is monotone.
            channel = np.subtract(channel, low, out=channel)
            channel = np.divide(channel, high - low, out=channel)
        if c == 0:
            best[:] = channel
            continue
        np.greater(channel, best, out=better)
        np.copyto(labels, np.uint8(c), where=better)
        np.maximum(best, channel, out=best)
    return labels
