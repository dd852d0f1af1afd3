"""Numba kernels behind J and F: both masks packed into bitsets in one pass, then word logic.

All of them live in this one module on purpose: numba's disk cache keys a compiled function on
its own source file only, so a kernel calling a kernel of another module could run stale code.

Layout. A mask of ``h x w`` pixels becomes ``h`` bitset rows of ``nwf = w // 64 + 2`` uint64
words (bit ``c % 64`` of word ``c // 64`` is column ``c``; one spare column ``w`` for the last
column's rule, and a zero word after it so that every word has a right neighbour). Packing
reads 64 pixels per SIMD compare, so the full frame, which has to be read once to find the
objects' box, costs about what reading it costs; everything after works on 64 pixels per word
inside the box. A boundary bitset covers the box's rows ``ya..y1-1`` and words
``ka..kb`` (``nwb`` words, column ``c`` of it is image column ``64 ka + c``), with ``pad`` zero
rows above and below so that the matching can look ``pad`` rows up and down without bounds
checks.

Entry points take the two masks as C-contiguous ``H x W`` uint8 arrays, any nonzero = inside.
Callers pass writable uint8 views (:func:`kernel_view`), so each kernel is compiled once, on
first use (explicit signatures would compile every kernel when the module is imported).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]  # numba's IR builder
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# error_model="numpy": no zero-division checks, which lets the loops vectorise.
_njit = numba.njit(cache=True, nogil=True, error_model="numpy")

_U = np.uint64
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


def kernel_view(mask: np.ndarray) -> np.ndarray:
    """A C-contiguous bool or uint8 mask as the writable uint8 array the kernels are compiled
    for (a bool, a uint8 or a read-only argument would each be one more compiled version, about
    5 s; a read-only mask, which is rare, is copied instead)."""
    return (mask if mask.flags.writeable else mask.copy()).view(np.uint8)


@intrinsic
def _popcount(typingctx, x):
    """Number of set bits of a uint64 (LLVM ``ctpop``), as an int64 (so that sums of counts
    stay integers: numba unifies int64 and uint64 to float64)."""
    sig = types.int64(types.uint64)

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


@intrinsic
def _leading_zeros(typingctx, x):
    """Number of zero bits above the highest set bit of a nonzero uint64 (LLVM ``ctlz``)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], cgutils.true_bit)

    return sig, codegen


@intrinsic
def _nonzero_bits64(typingctx, data, start):
    """Bit ``i`` set where byte ``data[start + i]`` is nonzero, ``i`` in 0..63, for a 1-d uint8
    array with ``start + 64 <= data.size`` (one 64-byte load and compare: ``vpcmpeqb`` /
    ``vpmovmskb`` on x86)."""
    sig = types.uint64(data, start)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        vty = ir.VectorType(ir.IntType(8), 64)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), vty.as_pointer())
        nonzero = builder.icmp_unsigned("!=", builder.load(ptr, align=1), ir.Constant(vty, None))
        return builder.bitcast(nonzero, ir.IntType(64))

    return sig, codegen


@intrinsic
def _equal_bits64(typingctx, data, start, value):
    """Bit ``i`` set where byte ``data[start + i]`` equals the uint8 ``value``, ``i`` in 0..63
    (as :func:`_nonzero_bits64`: one 64-byte load and compare against ``value`` splatted)."""
    sig = types.uint64(data, start, value)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        vty = ir.VectorType(ir.IntType(8), 64)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), vty.as_pointer())
        one = builder.insert_element(
            ir.Constant(vty, None), args[2], ir.Constant(ir.IntType(32), 0)
        )
        splat = builder.shuffle_vector(
            one, one, ir.Constant(ir.VectorType(ir.IntType(32), 64), None)
        )
        equal = builder.icmp_unsigned("==", builder.load(ptr, align=1), splat)
        return builder.bitcast(equal, ir.IntType(64))

    return sig, codegen


@_njit
def _pack_pair(g, p):
    """Both masks as bitsets (layout in the module docstring) and the box of their union.

    Returns ``(gbits, pbits, nwf, y0, y1, x0, x1)``: ``[y0:y1, x0:x1]`` is the bounding box of
    the union (all four 0 when both are empty). Column ``w`` of each row is a copy of column
    ``w - 1``, which makes the last column's rule ("only the down neighbour") the general rule
    (see :func:`_boundary_bits`).
    """
    h, w = g.shape
    gf, pf = g.reshape(-1), p.reshape(-1)
    nfull, tail = w // 64, w % 64
    nwf = nfull + 2
    gbits = np.empty(h * nwf, np.uint64)
    pbits = np.empty(h * nwf, np.uint64)
    columns = np.zeros(nfull + 1, np.uint64)
    y0, y1 = h, 0
    # Unsigned indices: numba then adds no negative-index fix-up (2x faster here).
    uw, unwf, u64, usize = _U(w), _U(nwf), _U(64), _U(h * w)
    tail_mask = (_ONE << _U(tail)) - _ONE
    last_word, last_bit = _U((w - 1) // 64), _U((w - 1) % 64)
    for y in range(h):
        o, row = _U(y) * uw, _U(y) * unwf
        any_row = _ZERO
        for k in range(_U(nfull)):
            gw, pw = _nonzero_bits64(gf, o + u64 * k), _nonzero_bits64(pf, o + u64 * k)
            columns[k] |= gw | pw
            any_row |= gw | pw
            gbits[row + k], pbits[row + k] = gw, pw
        start = o + u64 * _U(nfull)
        if start + u64 <= usize:  # the 64 bytes from start lie inside the mask
            gw = _nonzero_bits64(gf, start) & tail_mask
            pw = _nonzero_bits64(pf, start) & tail_mask
        else:  # the last rows' tails: a 64-byte load would pass the end of the mask
            gw = pw = _ZERO
            for i in range(tail):
                gw |= _U(gf[start + _U(i)] != 0) << _U(i)
                pw |= _U(pf[start + _U(i)] != 0) << _U(i)
        columns[nfull] |= gw | pw
        any_row |= gw | pw
        gw |= ((gbits[row + last_word] if tail == 0 else gw) >> last_bit & _ONE) << _U(tail)
        pw |= ((pbits[row + last_word] if tail == 0 else pw) >> last_bit & _ONE) << _U(tail)
        gbits[row + _U(nfull)], pbits[row + _U(nfull)] = gw, pw
        gbits[row + _U(nfull + 1)] = pbits[row + _U(nfull + 1)] = _ZERO
        if any_row:
            y0, y1 = min(y0, y), y + 1
    if y1 == 0:
        return gbits, pbits, nwf, 0, 0, 0, 0
    x0, x1 = _column_extent(columns)
    return gbits, pbits, nwf, y0, y1, x0, x1


@_njit
def _column_extent(columns):
    """``(x0, x1)``: the first and one past the last set bit of the OR of every packed row
    (``columns``, not all zero), i.e. the box's columns."""
    k0 = 0
    while not columns[k0]:
        k0 += 1
    k1 = columns.size - 1
    while not columns[k1]:
        k1 -= 1
    x0 = 64 * k0 + np.int64(_trailing_zeros(columns[k0]))
    x1 = 64 * k1 + 64 - np.int64(_leading_zeros(columns[k1]))
    return x0, x1


@_njit
def _pack_labels(g, p, ids, gbits, pbits):
    """For each id ``ids[i]`` (uint8), the bitsets and box that :func:`_pack_pair` gives for
    the masks ``g == ids[i]`` and ``p == ids[i]``, all from one pass over both label maps (a
    row is read from memory once, then compared with each id from the cache).

    ``gbits``, ``pbits``: uint64 arrays of at least ``ids.size * h * (w // 64 + 2)`` words,
    overwritten (id ``i``'s bitsets: the ``h * nwf`` words from ``i * h * nwf`` on). Returns
    ``(nwf, boxes)``, ``boxes[i] = (y0, y1, x0, x1)``.
    """
    h, w = g.shape
    n = ids.size
    gf, pf = g.reshape(-1), p.reshape(-1)
    nfull, tail = w // 64, w % 64
    nwf = nfull + 2
    columns = np.zeros(n * (nfull + 1), np.uint64)
    boxes = np.zeros((n, 4), np.int64)
    uw, unwf, u64, usize = _U(w), _U(nwf), _U(64), _U(h * w)
    uplane, ucols, unfull = _U(h * nwf), _U(nfull + 1), _U(nfull)
    tail_mask = (_ONE << _U(tail)) - _ONE
    last_word, last_bit = _U((w - 1) // 64), _U((w - 1) % 64)
    for y in range(h):
        o = _U(y) * uw
        for i in range(n):
            v = ids[i]
            row, col = _U(i) * uplane + _U(y) * unwf, _U(i) * ucols
            any_row = _ZERO
            for k in range(unfull):
                gw, pw = _equal_bits64(gf, o + u64 * k, v), _equal_bits64(pf, o + u64 * k, v)
                columns[col + k] |= gw | pw
                any_row |= gw | pw
                gbits[row + k], pbits[row + k] = gw, pw
            start = o + u64 * unfull
            if start + u64 <= usize:
                gw = _equal_bits64(gf, start, v) & tail_mask
                pw = _equal_bits64(pf, start, v) & tail_mask
            else:
                gw = pw = _ZERO
                for j in range(tail):
                    gw |= _U(gf[start + _U(j)] == v) << _U(j)
                    pw |= _U(pf[start + _U(j)] == v) << _U(j)
            columns[col + unfull] |= gw | pw
            any_row |= gw | pw
            gw |= ((gbits[row + last_word] if tail == 0 else gw) >> last_bit & _ONE) << _U(tail)
            pw |= ((pbits[row + last_word] if tail == 0 else pw) >> last_bit & _ONE) << _U(tail)
            gbits[row + unfull], pbits[row + unfull] = gw, pw
            gbits[row + unfull + _ONE] = pbits[row + unfull + _ONE] = _ZERO
            if any_row:
                boxes[i, 0], boxes[i, 1] = y if boxes[i, 1] == 0 else boxes[i, 0], y + 1
    for i in range(n):
        if boxes[i, 1]:
            boxes[i, 2], boxes[i, 3] = _column_extent(
                columns[i * (nfull + 1) : (i + 1) * (nfull + 1)]
            )
    return nwf, boxes


@_njit
def _overlap(gbits, pbits, w, nwf, y0, y1, ka, nwb):
    """``(|G & P|, |G | P|)`` over rows ``y0..y1-1`` and words ``ka..ka+nwb-1`` of two packed
    masks that are zero outside them (the spare column ``w`` is left out)."""
    valid = (_ONE << _U(w % 64)) - _ONE  # columns < w of the last word
    unwf, last_word = _U(nwf), _U(w // 64)
    inter = union = 0
    for y in range(_U(y0), _U(y1)):
        for k in range(_U(ka), _U(ka + nwb)):
            a, b = gbits[y * unwf + k], pbits[y * unwf + k]
            if k == last_word:
                a &= valid
                b &= valid
            inter += _popcount(a & b)
            union += _popcount(a | b)
    return inter, union


@_njit
def _boundary_bits(s, h, w, nwf, ya, y1, ka, nwb, pad):
    """Boundary bitset (layout in the module docstring) of the packed mask ``s`` over rows
    ``ya..y1-1`` and words ``ka..ka+nwb-1``, and its number of pixels.

    A pixel is boundary where it differs from its right, down or down-right neighbour. With
    column ``w`` a copy of column ``w - 1`` and the row below the last a copy of the last, that
    one rule gives DAVIS's edge rules: the last column compares with the pixel below only, the
    last row with its right neighbour only, and the bottom-right corner is never boundary.
    """
    nrows = y1 - ya
    out = np.zeros((nrows + 2 * pad) * nwb, np.uint64)
    unwf, unwb = _U(nwf), _U(nwb)
    # The spare column w is no pixel: clear it where the words reach it (after the loop, which
    # then has no branch).
    spare = ~((_ONE << _U(w % 64)) - _ONE) if ka + nwb - 1 == w // 64 else _ZERO
    count = 0
    for y in range(ya, y1):
        row, down = _U(y) * unwf + _U(ka), _U(min(y + 1, h - 1)) * unwf + _U(ka)
        dst = _U(y - ya + pad) * unwb
        for j in range(unwb):
            a, d = s[row + j], s[down + j]
            right = (a >> _ONE) | (s[row + j + _ONE] << _U(63))
            down_right = (d >> _ONE) | (s[down + j + _ONE] << _U(63))
            b = (a ^ right) | (a ^ d) | (a ^ down_right)
            out[dst + j] = b
            count += _popcount(b)
        last = dst + unwb - _ONE
        count -= _popcount(out[last] & spare)
        out[last] &= ~spare
    return out, count


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
def _dilated(left, x, right, r):
    """Word ``x`` dilated by ``|dx| <= r`` (``1 <= r <= 63``), ``left`` and ``right`` being the
    words before and after it: bit ``c`` is set when a bit of ``c - r .. c + r`` is (doubling
    shifts, about ``2 log2(r)`` steps; none when all three are zero)."""
    if not (left | x | right):
        return _ZERO
    up, up_next = x, right  # bit c: columns c .. c + span - 1
    down, down_prev = x, left  # bit c: columns c - span + 1 .. c
    span = 1
    while 2 * span <= r + 1:
        s, back = _U(span), _U(64 - span)
        up, up_next = up | (up >> s) | (up_next << back), up_next | (up_next >> s)
        down, down_prev = down | (down << s) | (down_prev >> back), down_prev | (down_prev << s)
        span *= 2
    if r + 1 > span:
        s, back = _U(r + 1 - span), _U(64 - (r + 1 - span))
        up |= (up >> s) | (up_next << back)
        down |= (down << s) | (down_prev >> back)
    return up | down


@_njit
def _matched_count(q, t, nrows, nwb, pad, half_widths):
    """How many boundary pixels of bitset ``q`` have a pixel of bitset ``t`` within the disk.

    Disk row ``dy`` covers ``|dx| <= half_widths[|dy|]``. Per word of ``q``: its own row first,
    64 pixels at a time (most pixels match there); for the pixels left, the OR of ``t``'s rows
    within ``pad`` (the disk's bounding square, made for that word only) rules out those with
    nothing near, and only the rest try the other disk rows one by one, nearest first. (Radii
    of 64 and more test the own row pixel by pixel too, and skip the square.)
    """
    radius = half_widths[0]
    last = 64 * nwb - 1
    count = 0
    for y in range(nrows):
        row = (y + pad) * nwb
        for j in range(nwb):
            word = q[row + j]
            if not word:
                continue
            if radius < 64:
                left = t[row + j - 1] if j > 0 else _ZERO
                right = t[row + j + 1] if j + 1 < nwb else _ZERO
                near = _dilated(left, t[row + j], right, radius)
                count += _popcount(word & near)
                word &= ~near
                if word:
                    left = mid = right = _ZERO
                    for k in range(row + j - pad * nwb, row + j + pad * nwb + 1, nwb):
                        mid |= t[k]
                        if j > 0:
                            left |= t[k - 1]
                        if j + 1 < nwb:
                            right |= t[k + 1]
                    word &= _dilated(left, mid, right, radius)
            while word:
                c = 64 * j + np.int64(_trailing_zeros(word))
                word &= word - _ONE
                if radius >= 64:
                    lo, hi = max(c - radius, 0), min(c + radius, last)
                    if _any_in(t, row, lo, hi):
                        count += 1
                        continue
                for d in range(1, pad + 1):
                    half = half_widths[d]
                    lo, hi = max(c - half, 0), min(c + half, last)
                    if _any_in(t, row - d * nwb, lo, hi) or _any_in(t, row + d * nwb, lo, hi):
                        count += 1
                        break
    return count


@_njit
def pair_counts(g, p, half_widths):
    """``(inter, union, n_pred, pred_matched, n_gt, gt_matched)`` of two ``H x W`` masks;
    ``half_widths``: the disk's rows (``half_widths[dy]``: half-width of row ``dy``)."""
    h, w = g.shape
    gbits, pbits, nwf, y0, y1, x0, x1 = _pack_pair(g, p)
    if y1 == 0:
        return 0, 0, 0, 0, 0, 0
    return _box_counts(gbits, pbits, h, w, nwf, y0, y1, x0, x1, half_widths)


@_njit
def labels_pair_counts(g, p, ids, half_widths, gbits, pbits):
    """:func:`pair_counts` of the masks ``g == ids[i]`` and ``p == ids[i]`` of two ``H x W``
    label maps, for every uint8 id: an ``(ids.size, 6)`` int64 array, one frame pass for all.

    ``gbits``, ``pbits``: scratch uint64 arrays of at least ``ids.size * H * (W // 64 + 2)``
    words (the caller keeps them between frames: a fresh multi-megabyte allocation per frame
    costs more in page faults than the packing itself)."""
    h, w = g.shape
    nwf, boxes = _pack_labels(g, p, ids, gbits, pbits)
    plane = h * nwf
    out = np.zeros((ids.size, 6), np.int64)
    for i in range(ids.size):
        y0, y1, x0, x1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        if y1:
            gi, pi = gbits[i * plane : (i + 1) * plane], pbits[i * plane : (i + 1) * plane]
            counts = _box_counts(gi, pi, h, w, nwf, y0, y1, x0, x1, half_widths)
            for c in range(6):
                out[i, c] = counts[c]
    return out


@_njit
def _box_counts(gbits, pbits, h, w, nwf, y0, y1, x0, x1, half_widths):
    """:func:`pair_counts`'s six counts from two packed masks and their union's box
    ``[y0:y1, x0:x1]`` (not empty)."""
    # Boundary pixels lie in rows y0-1..y1-1 and columns x0-1..x1-1 (zero outside the box).
    ya, xa = max(y0 - 1, 0), max(x0 - 1, 0)
    ka = xa // 64
    nwb = (x1 - 1) // 64 - ka + 1
    inter, union = _overlap(gbits, pbits, w, nwf, y0, y1, ka, nwb)
    nrows = y1 - ya
    pad = min(half_widths.size - 1, nrows - 1)  # rows farther away hold no pixel
    gb, n_gt = _boundary_bits(gbits, h, w, nwf, ya, y1, ka, nwb, pad)
    pb, n_pred = _boundary_bits(pbits, h, w, nwf, ya, y1, ka, nwb, pad)
    pred_matched = gt_matched = 0
    if n_gt and n_pred:
        pred_matched = _matched_count(pb, gb, nrows, nwb, pad, half_widths)
        gt_matched = _matched_count(gb, pb, nrows, nwb, pad, half_widths)
    return inter, union, n_pred, pred_matched, n_gt, gt_matched


@_njit
def overlap_counts(g, p):
    """``(|G & P|, |G | P|)`` of two ``H x W`` masks."""
    gbits, pbits, nwf, y0, y1, x0, x1 = _pack_pair(g, p)
    if y1 == 0:
        return 0, 0
    ka = x0 // 64
    return _overlap(gbits, pbits, g.shape[1], nwf, y0, y1, ka, (x1 - 1) // 64 - ka + 1)
