"""The fast float16 conversions give numpy's bits exactly."""

from __future__ import annotations

import numpy as np

from endobench.propagation.half import from_half, to_half


def test_every_half_value_and_every_tie_between_them_round_like_numpy():
    halves = np.arange(2**16, dtype=np.uint16).view(np.float16)
    finite = halves[np.isfinite(halves)].astype(np.float32)
    np.testing.assert_array_equal(from_half(halves[np.isfinite(halves)]).view(np.uint32),
                                  finite.view(np.uint32))  # fmt: skip
    # Normal halves keep 10 of float32's 23 mantissa bits: the tie is 0x1000 below the cut.
    # Ties (to even), their neighbours and all of [0, 1]'s exponents, subnormal halves included.
    base = np.arange(0, 0x3F800000, 0x2000, dtype=np.uint32)
    for offset in (0x0FFF, 0x1000, 0x1001, 0, 1, 0x1FFF):
        x = (base + offset).view(np.float32)
        np.testing.assert_array_equal(
            to_half(x).view(np.uint16), x.astype(np.float16).view(np.uint16)
        )
    # A strided sweep of every float32 in [0, 1], as a 2-D plane and as C x H x W.
    x = np.arange(0, 0x3F800001, 97, dtype=np.uint32).view(np.float32)[: 3 * 40 * 97 * 91]
    for shape in ((120 * 97, 91), (3, 40 * 97, 91)):
        y = x.reshape(shape)
        np.testing.assert_array_equal(
            to_half(y).view(np.uint16), y.astype(np.float16).view(np.uint16)
        )
        assert to_half(y).shape == shape and from_half(to_half(y)).shape == shape
