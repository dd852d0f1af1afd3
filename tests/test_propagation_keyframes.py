"""Keyframe policies: decisions on scripted states, spec parsing, appearance drift."""

from __future__ import annotations

import numpy as np
import pytest

from endobench.propagation.keyframes import (
    Adaptive,
    AdaptiveConfig,
    KeyframeState,
    appearance_drift,
    thumbnail,
)
from endobench.registry import KEYFRAME_POLICIES, SpecError


def S(since: int, conf=None, drift=None, recent: int = 0) -> KeyframeState:
    return KeyframeState(since, conf, drift, recent)


def test_first_every_all():
    first, every, every_all = (KEYFRAME_POLICIES.build(s) for s in ("first", "every:3", "all"))
    assert first.decide(0, S(0)) and not first.decide(5, S(5, conf=0.0, drift=1.0))
    assert [every.decide(t, S(t % 3 or 3 if t else 0)) for t in range(7)] == [
        True, False, False, True, False, False, True,
    ]  # fmt: skip
    # Counts frames since the last keyframe, so a deferred keyframe shifts the next one.
    assert not every.decide(6, S(2)) and every.decide(7, S(3))
    assert all(every_all.decide(t, S(1)) for t in range(5))
    assert (first.spec, every.spec, every_all.spec) == ("first", "every:3", "all")
    assert not (first.needs_confidence or every.needs_confidence or every_all.needs_drift)


def test_adaptive_thresholds_gap_and_budget():
    pol = KEYFRAME_POLICIES.build("adaptive:confidence=0.6,drift=0.3,min_gap=4,budget=2")
    assert isinstance(pol, Adaptive) and pol.needs_confidence and pol.needs_drift
    assert pol.decide(0, S(0))
    assert not pol.decide(10, S(5, conf=0.7, drift=0.1))  # confident, no drift
    assert pol.decide(10, S(5, conf=0.59, drift=0.1))  # confidence crossed
    assert pol.decide(10, S(5, conf=0.9, drift=0.31))  # drift crossed
    assert not pol.decide(10, S(3, conf=0.1, drift=0.9))  # too soon after the last keyframe
    assert pol.decide(10, S(4, conf=0.1))  # gap reached
    assert not pol.decide(10, S(8, conf=0.1, recent=2))  # budget of 2 per 100 frames spent
    assert pol.decide(10, S(8, conf=0.1, recent=1))
    assert not pol.decide(10, S(8))  # nothing measured: no reason to re-segment


def test_adaptive_short_forms_and_disabled_criteria():
    default = KEYFRAME_POLICIES.build("adaptive")
    assert default.config == AdaptiveConfig()
    thresh = KEYFRAME_POLICIES.build("adaptive:0.8")
    assert thresh.config.confidence == 0.8 and thresh.config.drift == AdaptiveConfig().drift
    conf_only = KEYFRAME_POLICIES.build("adaptive:drift=none")
    assert not conf_only.needs_drift and conf_only.needs_confidence
    assert not conf_only.decide(9, S(9, conf=0.9, drift=1.0))
    assert KEYFRAME_POLICIES.build(conf_only.spec).config == conf_only.config  # spec round-trips


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("every", "every:K"),
        ("every:0", "every:K"),
        ("every:x", "every:K"),
        ("first:2", "no argument"),
        ("adaptive:high", "THRESH"),
        ("adaptive:1.5", "confidence"),
        ("adaptive:speed=3", "unknown"),
        ("adaptive:min_gap=0", "min_gap"),
        ("adaptive:budget=x", "budget"),
        ("sometimes", "first \\| every:K"),
    ],
)
def test_spec_errors(spec, match):
    with pytest.raises(SpecError, match=match):
        KEYFRAME_POLICIES.build(spec)


def test_appearance_drift_values():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    a = thumbnail(img)
    assert a.shape == (32, 32) and a.dtype == np.float32
    assert appearance_drift(a, a) == pytest.approx(0.0, abs=1e-9)
    assert appearance_drift(a, 2 * a + 10) == pytest.approx(0.0, abs=1e-9)  # gain/offset
    assert appearance_drift(a, 255 - a) == pytest.approx(1.0, abs=1e-9)  # inverted
    flat = np.full((32, 32), 7, np.float32)
    assert appearance_drift(flat, flat) == 0.0 and appearance_drift(flat, a) == 0.5
    other = thumbnail(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    assert 0.35 < appearance_drift(a, other) < 0.65  # unrelated images
