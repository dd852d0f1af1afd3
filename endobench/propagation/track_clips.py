"""``track_clips``: the one tracking loop behind ``endobench track`` and notebook 03.

Builds the propagator(s) per clip from specs (a clip's field of view goes to flow propagation),
runs ``track`` and yields each clip's result; the caller decides where masks go (``sinks``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from endobench.data.clip import Clip
from endobench.propagation.base import Segmenter
from endobench.propagation.flow_propagation import ConfidenceMode
from endobench.propagation.fusion import FusionConfig
from endobench.propagation.keyframes import KeyframePolicy
from endobench.propagation.propagators import (
    PropagatorContext,
    build_propagator,
    default_propagation,
    describe_propagator,
)
from endobench.propagation.tracker import (
    DEFAULT_MAX_GAP,
    KeyframeSource,
    MaskSink,
    TrackResult,
    track,
)
from endobench.registry import KEYFRAME_POLICIES, PROPAGATORS


def interactive() -> bool:
    """True in a terminal or a Jupyter kernel (where progress bars are wanted by default)."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def track_clips(
    clips: Sequence[Clip],
    propagation: str | None = None,
    keyframes: str | KeyframePolicy = "every:10",
    *,
    keyframe_source: KeyframeSource = "gt",
    segmenter: Segmenter | None = None,
    fusion: FusionConfig | None = None,
    bidirectional: bool = False,
    flow_confidence: ConfidenceMode = "photometric",
    weights: str | Path | None = None,
    allow_random_init: bool = False,
    device: str | None = None,
    progress: bool | None = None,
    sinks: Callable[[Clip], MaskSink | None] | None = None,
    keep_masks: bool | None = None,
    read_ahead: int = 2,
    max_gap: int = DEFAULT_MAX_GAP,
) -> Iterator[tuple[Clip, TrackResult]]:
    """Track each clip; yields ``(clip, result)`` as soon as a clip is done.

    ``propagation`` / ``keyframes``: specs (``PROPAGATORS`` / ``KEYFRAME_POLICIES``; a policy
    may be given built), validated before any clip is read; ``propagation=None`` is
    ``default_propagation(bidirectional)`` (``flow:dis``; bidirectional: DIS at half resolution). ``bidirectional``: also propagate backward from the next
    keyframe and fuse (``propagation.bidirectional``). ``progress``: a per-frame tqdm bar (widgets
    in Jupyter); None = on when interactive. ``sinks(clip)``: a ``sink(t, mask)`` for that clip
    (e.g. a PNG writer) or None; ``keep_masks`` as in ``track``. ``result.meta["propagator"]``
    holds the propagator's name and weights provenance.
    """
    if propagation is None:
        propagation = default_propagation(bidirectional)
    PROPAGATORS.parse(propagation)
    PropagatorContext(flow_confidence=flow_confidence)
    policy = KEYFRAME_POLICIES.build(keyframes) if isinstance(keyframes, str) else keyframes
    show = interactive() if progress is None else progress

    def build(clip: Clip):
        return build_propagator(
            propagation, weights=weights, allow_random_init=allow_random_init,
            fov=clip.fov_mask, device=device, flow_confidence=flow_confidence,
        )  # fmt: skip

    for clip in clips:
        propagator = build(clip)
        result = track(
            clip, propagator, policy, segmenter=segmenter, fusion=fusion,
            keyframe_source=keyframe_source, progress=show,
            sink=None if sinks is None else sinks(clip), keep_masks=keep_masks,
            backward=build(clip) if bidirectional else None, max_gap=max_gap,
            read_ahead=read_ahead,
        )  # fmt: skip
        result.meta["propagator"] = describe_propagator(propagator)
        yield clip, result


def track_and_score(
    clips: Sequence[Clip],
    propagation: str | None = None,
    keyframes: str | KeyframePolicy = "every:10",
    metrics: tuple[str, ...] = ("jf",),
    **options,
):
    """``track_clips`` then score each clip's annotated frames (``metrics``: see ``evaluate``).

    Returns ``({clip name: TrackResult}, per-frame metrics DataFrame)``; ``options`` go to
    ``track_clips`` (``keep_masks`` is forced on).
    """
    import pandas as pd

    from endobench.metrics import evaluate_sequence

    results, frames = {}, []
    for clip, result in track_clips(clips, propagation, keyframes, keep_masks=True, **options):
        results[clip.name] = result
        gts = [clip.mask(t) for t in clip.annotated]
        preds = [result.masks[t] for t in clip.annotated]
        frames.append(evaluate_sequence(gts, preds, metrics=metrics, sequence=clip.name))
    return results, pd.concat(frames, ignore_index=True)
