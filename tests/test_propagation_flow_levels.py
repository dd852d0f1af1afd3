"""DIS at its finest level on shrunk frames: the same flow as OpenCV's DIS, bit for bit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from endobench.propagation.flow import DISFlow
from endobench.propagation.flow_levels import Shrinker, coarsest_scale, exact_at_level, shrink

SIZES = [(480, 854), (288, 384), (481, 855), (200, 301), (1080, 1920), (123, 457), (97, 1000)]


@pytest.fixture(scope="module")
def real_pair(samples) -> tuple[np.ndarray, np.ndarray]:
    """Two DAVIS dog frames two apart (real motion), gray."""
    frames = sorted((samples / "DAVIS/JPEGImages/480p/dog").glob("*.jpg"))
    return tuple(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in (frames[0], frames[2]))


def _opencv_dis(dis: DISFlow) -> cv2.DISOpticalFlow:
    """A plain OpenCV DIS object with ``dis``'s settings (the reference)."""
    ref = cv2.DISOpticalFlow_create(
        {"ultrafast": 0, "fast": 1, "medium": 2}[dis.name.split(":")[1].split(",")[0]]
    )
    ref.setGradientDescentIterations(dis.iterations)
    ref.setFinestScale(dis.finest_scale)
    ref.setPatchSize(dis.patch_size)
    ref.setPatchStride(dis.patch_stride)
    ref.setVariationalRefinementIterations(dis.refinement_iterations)
    return ref


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    "preset, options",
    [("ultrafast", {}), ("ultrafast", {"finest_scale": 1}), ("fast", {}), ("medium", {}),
     ("ultrafast", {"finest_scale": 3, "patch_size": 12, "patch_stride": 5})],
    ids=["ultrafast", "ultrafast-half", "fast", "medium", "coarse-patches"],
)  # fmt: skip
def test_flow_equals_opencv_dis_bit_for_bit(real_pair, size, preset, options):
    h, w = size
    prev, nxt = (cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in real_pair)
    dis = DISFlow(preset, iterations=32, **options)
    expected = _opencv_dis(dis).calc(prev, nxt, None)
    assert np.array_equal(dis(prev, nxt), expected)
    coarse = dis.coarse(prev, nxt)
    assert coarse is not None and coarse.level == dis.finest_scale
    assert coarse.flow.shape == (h >> coarse.level, w >> coarse.level, 2)
    assert np.array_equal(coarse.full(), expected)


def test_coarsest_scale_follows_the_width_and_the_short_side():
    # 854 / (4 * 8) = 26.7 -> log2 4.74 -> 5 levels; short side 480 / 8 = 60 -> 5.9 -> 5.
    assert coarsest_scale(854, 480, 8) == 5
    assert coarsest_scale(213, 120, 8) == 3  # the same frame at level 2: 5 - 2
    assert coarsest_scale(2000, 40, 8) == 2  # a strip: the short side limits it
    assert exact_at_level(854, 480, 8, 2) and exact_at_level(854, 480, 8, 1)
    assert not exact_at_level(854, 480, 8, 0)  # nothing to shrink
    assert not exact_at_level(60, 40, 8, 3)  # fewer than one patch at that level


def test_a_size_where_shrinking_is_not_exact_uses_opencv_directly():
    rng = np.random.default_rng(1)
    prev = cv2.GaussianBlur(rng.integers(0, 255, (40, 60), np.uint8), (0, 0), 2)
    nxt = np.roll(prev, 2, axis=1)
    dis = DISFlow("ultrafast", iterations=32)  # level 2 of 40 x 60 is 10 x 15: too small
    assert dis.coarse(prev, nxt) is None
    assert np.array_equal(dis(prev, nxt), _opencv_dis(dis).calc(prev, nxt, None))


def test_shrinker_shrinks_each_frame_once_and_knows_frames_by_value():
    rng = np.random.default_rng(2)
    a, b, c = (rng.integers(0, 255, (64, 96), np.uint8) for _ in range(3))
    shrinker = Shrinker(2)
    first = shrinker(a, b)
    again = shrinker(b, c)  # b is known: the same array object comes back
    assert again[0] is first[1]
    assert all(np.array_equal(s, shrink(f, 2)) for s, f in zip(again, (b, c), strict=True))
    buffer = c.copy()
    buffer[:] = a  # a reused buffer holding another frame is shrunk anew
    assert np.array_equal(shrinker(buffer)[0], shrink(a, 2))
