"""Feature-affinity label propagation maths (the DINO video-segmentation protocol), as pure functions.

Shapes: a frame's features are ``d x h x w`` (patch grid), soft labels are ``C x h x w``. The affinity of
a query patch to a source patch is ``exp(cos / temperature)``; only sources inside a square window of
``radius`` patches around the query (in every context frame) compete; the top-k of them over all
context frames jointly keep their weight (ties with the k-th included, as in the reference),
normalised to sum to one. The result is the weighted average of the sources' soft labels.

Instead of the reference's dense ``ncontext*hw x hw`` affinity and mask, only the windowed similarities
are computed: block by block of queries, one plain product against the rectangle of sources the
block's windows reach (:func:`window_plan`, :func:`window_keys`); the top-k, weights and label mix
of every query read its own window of that product
(:func:`~endobench.propagation.affinity_select.mix_block`). The output step of the reference
(bilinear upsampling, per-channel min-max, argmax) is :func:`reference_argmax`.
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

from endobench.propagation.affinity_select import mix_block, tie_tolerance

#: Rows x columns of the query blocks whose windowed similarities are computed as one product:
#: 12 x 8 queries (96 rows of the product) against at most 36 x 32 sources: about 10% less CPU
#: than 6 x 8 at radius 12 on a 34 x 59 grid (fewer, larger products; the kernel reads only each
#: query's own window, so the extra sources cost product time only).
TILE = (12, 8)

#: Most threads sharing a frame's blocks: beyond that the Python between the products
#: (one GIL) is the limit.
MAX_WORKERS = 4


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    """``d x h x w`` features -> contiguous ``d x h x w`` float32 of unit L2 norm over the
    channel dim (the same bits as normalising the ``hw x d`` rows, as the reference does)."""
    return F.normalize(features.float().contiguous(), p=2, dim=0)


@dataclass(frozen=True)
class Tile:
    """A block of query patches and the rectangle of sources their windows reach.

    ``start:stop``: the block's slice of :attr:`WindowPlan.order` (its ``nq`` queries). Sources:
    grid rows ``ya:yb`` x columns of the ``band``-th column band, ``band_cols = (xa, xb)``;
    enumerated row-major, so the ``(yb - ya) * (xb - xa)`` sources of a frame are one contiguous
    slice of its band (:func:`window_keys`).
    """

    start: int
    stop: int
    band: int
    rows: tuple[int, int]
    band_cols: tuple[int, int]


@dataclass(frozen=True)
class WindowPlan:
    """The blocks covering a grid: ``order`` lists every grid index once, block after block;
    ``radius``: the window radius in patches (the whole grid when none was given)."""

    tiles: tuple[Tile, ...]
    order: np.ndarray
    bands: tuple[tuple[int, int], ...]
    radius: int


@lru_cache(maxsize=8)
def window_plan(h: int, w: int, radius: int, size: tuple[int, int] = TILE) -> WindowPlan:
    """Cover an ``h x w`` grid with ``size`` (rows x columns) query blocks (see :class:`Tile`).

    At radius 12 a 12 x 8 block reaches at most 36 x 32 sources, against ``h * w`` for each query
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
            order.append(qy * w + qx)
            stop = start + qy.size
            tiles.append(Tile(start, stop, band, (ya, yb), (xa, xb)))
            start = stop
    return WindowPlan(tuple(tiles), np.concatenate(order), tuple(bands), radius)


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

    query: ``d x h x w`` L2-normalised float32 features of the target frame (CPU).
    context_keys: per context frame (first frame first) its L2-normalised features as
    :func:`window_keys` lays them out (same grid and ``radius``).
    context_labels: per context frame ``C x hw`` soft labels.
    Returns ``(labels, top_affinity)``: ``C x hw`` propagated labels (columns sum to one when the
    context labels do) and ``hw`` mean cosine similarity of the kept sources (a confidence cue).

    Only the windowed similarities are computed, one product per block of queries and context
    frame (:func:`window_plan`); the rest stays inside the block (in cache). ``workers`` threads
    share the blocks (default: torch's thread count, at most :data:`MAX_WORKERS`); the products
    and the kernel release the GIL, and the result does not depend on the number of threads.
    """
    workers = max(1, min(workers or torch.get_num_threads(), MAX_WORKERS))
    d, h, w = query.shape
    plan = window_plan(h, w, radius)
    task = _Task(
        plan=plan,
        queries=query.reshape(d, h * w).index_select(1, torch.from_numpy(plan.order)),  # by block
        keys=context_keys,
        labels=torch.cat(context_labels, dim=1).t().contiguous().numpy(),  # n_ctx*hw x C
        grid=(h, w),
        topk=topk,
        temperature=temperature,
        out_labels=np.empty((h * w, context_labels[0].shape[0]), np.float32),
        out_sim=np.empty(h * w, np.float32),
    )
    tiles = plan.tiles
    chunks = [
        tiles[i * len(tiles) // workers : (i + 1) * len(tiles) // workers] for i in range(workers)
    ]
    with one_thread():
        if workers == 1:
            task.run(chunks[0])
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(task.run_one_thread, chunks))
    return torch.from_numpy(task.out_labels.T.copy()), torch.from_numpy(task.out_sim)


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


@dataclass(frozen=True)
class _Task:
    """One frame's propagation, block by block (see :meth:`run`)."""

    plan: WindowPlan
    queries: torch.Tensor
    keys: list[tuple[torch.Tensor, ...]]
    labels: np.ndarray
    grid: tuple[int, int]
    topk: int
    temperature: float
    out_labels: np.ndarray
    out_sim: np.ndarray

    def run_one_thread(self, tiles: tuple[Tile, ...]) -> None:
        """:meth:`run` on a worker thread, whose torch operations then stay on it."""
        torch.set_num_threads(1)
        self.run(tiles)

    def run(self, tiles: tuple[Tile, ...]) -> None:
        """Propagate onto the queries of ``tiles``: per block, the similarities
        ``n_ctx x nq x ns`` to its source rectangle (one product per context frame, into one
        buffer that every block reuses), then :func:`mix_block`, which writes the block's rows of
        the result.

        The products are torch's (MKL's) on the same operands as the reference's dense product,
        whose elements they reproduce bit for bit here: a source whose affinity ties with the k-th
        in the reference ties here too (OpenBLAS's products differ in the last bit, which turns
        such ties into near-misses and back)."""
        if not tiles:
            return
        n_ctx, (h, w), radius = len(self.keys), self.grid, self.plan.radius
        sizes = [
            (t.stop - t.start) * (t.rows[1] - t.rows[0]) * (t.band_cols[1] - t.band_cols[0])
            for t in tiles
        ]
        buffer = torch.empty(n_ctx * max(sizes))
        n_window = n_ctx * min((2 * radius + 1) ** 2, h * w)
        scratch = np.empty((2, n_window), np.float32)
        sources = np.empty(n_window, np.int64)
        tolerance = tie_tolerance(self.temperature)
        for tile, size in zip(tiles, sizes, strict=True):
            (ya, yb), (xa, xb) = tile.rows, tile.band_cols
            width, nq = xb - xa, tile.stop - tile.start
            sim = buffer[: n_ctx * size].view(n_ctx, nq, size // nq)
            q = self.queries[:, tile.start : tile.stop].t()  # transposed operand: free for BLAS
            for c, bands in enumerate(self.keys):
                torch.mm(q, bands[tile.band][:, ya * width : yb * width], out=sim[c])
            mix_block(
                sim.numpy(),
                self.plan.order[tile.start : tile.stop],
                w,
                (ya, yb, xa, xb),
                radius,
                self.topk,
                self.temperature,
                tolerance,
                self.labels,
                h * w,
                self.out_labels,
                self.out_sim,
                scratch,
                sources,
            )


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
