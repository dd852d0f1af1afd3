"""Numba kernels behind J and F: one scan of the box into boundary bitsets, then matching.

All of them live in this one module on purpose: numba's disk cache keys a compiled function on
its own source file only, so a kernel calling a kernel of another module could run stale code.

Layout. The box ``[y0:y1, x0:x1]`` grown by one pixel up and left (where the boundary pixels of
masks that are zero outside the box lie) has ``nrows`` rows and ``ncol`` columns. Each mask's
boundary is a bitset of ``nrows + 2 * pad`` rows of ``nwb`` uint64 words (bit ``c % 64`` of word
``c // 64`` is column ``x_grown_0 + c``), with ``pad`` zero rows above and below so that the
matching can look ``pad`` rows up and down without bounds checks.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# error_model="numpy": no zero-division checks, which lets the loops vectorise.
_njit = numba.njit(cache=True, nogil=True, error_model="numpy")

_U = np.uint64
_ONE = np.uint64(1)
_BYTE_LSB = np.uint64(0x0101010101010101)  # bit 0 of each byte
# (bytes that are 0 or 1) * _PACK >> 56 gathers byte j's bit into bit j (distinct products).
_PACK = np.uint64(0x0102040810204080)
_LOW_BYTES = np.uint64(0x00FF00FF00FF00FF)
_SUM16 = np.uint64(0x0001000100010001)


@intrinsic
def _popcount(typingctx, x):
    """Number of set bits of a uint64 (LLVM ``ctpop``)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def _trailing_zeros(typingctx, x):
    """Index of the lowest set bit of a nonzero uint64 (LLVM ``cttz``)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], cgutils.true_bit)  # true: zero input is undefined

    return sig, codegen


@_njit
def _byte_sum(acc):
    """Sum of the eight byte lanes of ``acc`` (each at most 255)."""
    pairs = (acc & _LOW_BYTES) + ((acc >> _U(8)) & _LOW_BYTES)
    return (pairs * _SUM16) >> _U(48)


@_njit
def _scan(g, p, y0, y1, x0, x1, radius):
    """J's counts and both masks' boundary bitsets, in one pass over the box of two 0/1 uint8
    masks that are zero outside ``[y0:y1, x0:x1]``.

    Returns ``(inter, union, n_gt, n_pred, gbits, pbits, nrows, nwb, ncol, pad)`` (layout in the
    module docstring; ``pad = min(radius, nrows - 1)``: rows farther away hold no pixel).
    """
    h, w = g.shape
    gf, pf = g.reshape(-1), p.reshape(-1)
    ya, xa = max(y0 - 1, 0), max(x0 - 1, 0)
    # Columns xa..xb-1 have a right neighbour; the last image column (when the box reaches it)
    # is handled on its own. Counting J over the grown box adds only zeros.
    xb = min(x1, w - 1)
    n = xb - xa
    ncol, nrows = x1 - xa, y1 - ya
    pad = min(radius, nrows - 1)
    nwb = (ncol + 63) // 64
    nw8 = (n + 7) // 8
    # One byte per column: bit 0 gt boundary, 1 pred boundary, 2 gt & pred, 3 gt | pred.
    # Bytes past n stay zero; three spare words let the loop below read in fours.
    words = np.zeros(nw8 + 3, np.uint64)
    bits = words.view(np.uint8)
    gbits = np.zeros((nrows + 2 * pad) * nwb, np.uint64)
    pbits = np.zeros((nrows + 2 * pad) * nwb, np.uint64)
    g8, p8 = gbits.view(np.uint8), pbits.view(np.uint8)
    boundary = _BYTE_LSB | (_BYTE_LSB << _U(1))
    inter = union = n_gt = n_pred = 0
    uw, un = _U(w), _U(n)
    for y in range(ya, y1):
        row = (y - ya + pad) * nwb
        # Unsigned flat indices: numba then adds no negative-index fix-up and vectorises.
        o = _U(y * w + xa)
        if y + 1 < h:
            for x in range(un):
                i = o + x
                a, b = gf[i], pf[i]
                bg = (a ^ gf[i + _ONE]) | (a ^ gf[i + uw]) | (a ^ gf[i + uw + _ONE])
                bp = (b ^ pf[i + _ONE]) | (b ^ pf[i + uw]) | (b ^ pf[i + uw + _ONE])
                bits[x] = bg | (bp << 1) | ((a & b) << 2) | ((a | b) << 3)
        else:  # last image row: only the right neighbour counts
            for x in range(un):
                i = o + x
                a, b = gf[i], pf[i]
                bg, bp = a ^ gf[i + _ONE], b ^ pf[i + _ONE]
                bits[x] = bg | (bp << 1) | ((a & b) << 2) | ((a | b) << 3)
        # One pass over the words, four (32 columns) at a time. J: eight byte-lane counters
        # per word, summed before a lane can pass 255 (63 groups of 4 words). Boundaries are
        # sparse: a group with none is skipped, the others are packed into the bitsets.
        acc_i = acc_u = _U(0)
        groups = 0
        for k4 in range(0, nw8, 4):
            w0, w1, w2, w3 = words[k4], words[k4 + 1], words[k4 + 2], words[k4 + 3]
            acc_i += (
                ((w0 >> _U(2)) & _BYTE_LSB)
                + ((w1 >> _U(2)) & _BYTE_LSB)
                + ((w2 >> _U(2)) & _BYTE_LSB)
                + ((w3 >> _U(2)) & _BYTE_LSB)
            )
            acc_u += (
                ((w0 >> _U(3)) & _BYTE_LSB)
                + ((w1 >> _U(3)) & _BYTE_LSB)
                + ((w2 >> _U(3)) & _BYTE_LSB)
                + ((w3 >> _U(3)) & _BYTE_LSB)
            )
            groups += 1
            if groups == 63:
                inter += _byte_sum(acc_i)
                union += _byte_sum(acc_u)
                acc_i = acc_u = _U(0)
                groups = 0
            if (w0 | w1 | w2 | w3) & boundary:
                for k in range(k4, min(k4 + 4, nw8)):
                    vg = words[k] & _BYTE_LSB
                    vp = (words[k] >> _U(1)) & _BYTE_LSB
                    g8[row * 8 + k] = (vg * _PACK) >> _U(56)
                    p8[row * 8 + k] = (vp * _PACK) >> _U(56)
                    n_gt += _popcount(vg)
                    n_pred += _popcount(vp)
        inter += _byte_sum(acc_i)
        union += _byte_sum(acc_u)
        if x1 == w:  # last column: no right neighbour; only the lower one counts
            i = y * w + w - 1
            a, b = gf[i], pf[i]
            inter += a & b
            union += a | b
            if y + 1 < h:
                word, bit = row + (n >> 6), _ONE << _U(n & 63)
                if a != gf[i + w]:
                    gbits[word] |= bit
                    n_gt += 1
                if b != pf[i + w]:
                    pbits[word] |= bit
                    n_pred += 1
    return inter, union, n_gt, n_pred, gbits, pbits, nrows, nwb, ncol, pad


@_njit
def _window_or(t, nrows, nwb, pad):
    """``v[y] = t[y - pad] | ... | t[y + pad]`` for the ``nrows`` rows of a padded bitset
    (van Herk / Gil-Werman: running ORs forward and backward in blocks of ``2 pad + 1`` rows;
    the loops run over flat word indices, one row being ``nwb`` words)."""
    span = 2 * pad + 1
    total = (nrows + 2 * pad) * nwb
    fw = t.copy()
    bw = t.copy()
    for start in range(0, total, span * nwb):
        stop = min(start + span * nwb, total)
        for k in range(start + nwb, stop):
            fw[k] |= fw[k - nwb]
        for k in range(stop - nwb - 1, start - 1, -1):
            bw[k] |= bw[k + nwb]
    v = np.empty(nrows * nwb, np.uint64)
    shift = (span - 1) * nwb
    for k in range(nrows * nwb):
        v[k] = bw[k] | fw[k + shift]
    return v


@_njit
def _any_in(bits, row, lo, hi):
    """Whether any of bits ``lo..hi`` (``0 <= lo <= hi``) of the bitset row at ``row`` is set."""
    first, last = lo >> 6, hi >> 6
    from_lo = ~((_ONE << _U(lo & 63)) - _ONE)
    to_hi = (_U(2) << _U(hi & 63)) - _ONE  # all ones when hi & 63 == 63 (wraps)
    if first == last:
        return (bits[row + first] & from_lo & to_hi) != 0
    if bits[row + first] & from_lo:
        return True
    for k in range(first + 1, last):
        if bits[row + k]:
            return True
    return (bits[row + last] & to_hi) != 0


@_njit
def _matched_count(q, t, t_window, nrows, nwb, ncol, pad, half_widths):
    """How many boundary pixels of bitset ``q`` have a pixel of bitset ``t`` within the disk.

    Disk row ``dy`` covers ``|dx| <= half_widths[|dy|]``. Per pixel: its own row first (most
    pixels match there), then ``t_window`` (``t``'s rows within ``pad`` ORed, so the disk's
    bounding square) rules out pixels with nothing near, and only the rest try the other disk
    rows, nearest first.
    """
    radius = half_widths[0]
    last = ncol - 1
    count = 0
    for y in range(nrows):
        row = (y + pad) * nwb
        for j in range(nwb):
            word = q[row + j]
            while word:
                c = 64 * j + np.int64(_trailing_zeros(word))
                word &= word - _ONE
                lo, hi = max(c - radius, 0), min(c + radius, last)
                if _any_in(t, row, lo, hi):
                    count += 1
                    continue
                if not _any_in(t_window, y * nwb, lo, hi):
                    continue
                for d in range(1, pad + 1):
                    half = half_widths[d]
                    lo, hi = max(c - half, 0), min(c + half, last)
                    if _any_in(t, row - d * nwb, lo, hi) or _any_in(t, row + d * nwb, lo, hi):
                        count += 1
                        break
    return count


@_njit
def box_counts(g, p, y0, y1, x0, x1, half_widths):
    """``(inter, union, n_pred, pred_matched, n_gt, gt_matched)`` of two 0/1 uint8 masks that
    are zero outside the nonempty box ``[y0:y1, x0:x1]``; ``half_widths``: the disk's rows."""
    radius = half_widths.size - 1
    inter, union, n_gt, n_pred, gbits, pbits, nrows, nwb, ncol, pad = _scan(
        g, p, y0, y1, x0, x1, radius
    )
    pred_matched = gt_matched = 0
    if n_gt and n_pred:
        g_window = _window_or(gbits, nrows, nwb, pad)
        p_window = _window_or(pbits, nrows, nwb, pad)
        pred_matched = _matched_count(pbits, gbits, g_window, nrows, nwb, ncol, pad, half_widths)
        gt_matched = _matched_count(gbits, pbits, p_window, nrows, nwb, ncol, pad, half_widths)
    return inter, union, n_pred, pred_matched, n_gt, gt_matched
