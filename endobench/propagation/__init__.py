"""Propagation: optical flow and feature affinity, keyframe policies, temporal fusion, tracker.

Build the extension points from their registries (``endobench.registry``):
``FLOW_ESTIMATORS.build("dis:fast")``, ``KEYFRAME_POLICIES.build("every:10")``,
``PROPAGATORS.build("flow:dis", PropagatorContext(...))`` or ``build_propagator("flow:dis")``.
"""

from endobench.propagation.base import PropagationStep, Propagator, Segmenter, one_hot
from endobench.propagation.bidirectional import Bidirectional, fuse_bidirectional
from endobench.propagation.flow import (
    DISFlow,
    FarnebackFlow,
    FlowError,
    FlowEstimator,
    RAFTFlow,
    to_gray,
)
from endobench.propagation.flow_propagation import CopyLastPropagator, FlowPropagator
from endobench.propagation.fusion import (
    FusionConfig,
    TemporalFusion,
    fuse_probs,
    hysteresis_labels,
    labels_from_probs,
)
from endobench.propagation.keyframes import (
    Adaptive,
    AdaptiveConfig,
    AllFrames,
    EveryK,
    FirstFrame,
    KeyframePolicy,
    KeyframeState,
    ListedFrames,
    appearance_drift,
    thumbnail,
)
from endobench.propagation.propagators import (
    PropagatorContext,
    build_propagator,
    describe_propagator,
)
from endobench.propagation.track_clips import track_and_score, track_clips
from endobench.propagation.tracker import FrameResult, Tracker, TrackResult, track
from endobench.propagation.warp import (
    WarpError,
    forward_backward_confidence,
    remap_channels,
    sampling_map,
    warp_labels,
    warp_probs,
)

# The affinity propagator needs torch: imported on first use, so `import endobench.propagation`
# (and `endobench track` with flow) starts fast.
_AFFINITY = (
    "AffinityConfig",
    "AffinityPropagator",
    "FeatureExtractor",
    "build_affinity_propagator",
)


def __getattr__(name: str):
    if name in _AFFINITY:
        from endobench.propagation import affinity

        return getattr(affinity, name)
    raise AttributeError(f"module 'endobench.propagation' has no attribute {name!r}")


__all__ = [
    "Bidirectional",
    "FrameResult",
    "ListedFrames",
    "Tracker",
    "fuse_bidirectional",
    "track_and_score",
    "track_clips",
    "AffinityConfig",
    "AffinityPropagator",
    "FeatureExtractor",
    "build_affinity_propagator",
    "Adaptive",
    "AdaptiveConfig",
    "AllFrames",
    "CopyLastPropagator",
    "DISFlow",
    "EveryK",
    "FarnebackFlow",
    "FirstFrame",
    "FlowError",
    "FlowEstimator",
    "FlowPropagator",
    "FusionConfig",
    "KeyframePolicy",
    "KeyframeState",
    "PropagationStep",
    "Propagator",
    "PropagatorContext",
    "RAFTFlow",
    "Segmenter",
    "TemporalFusion",
    "TrackResult",
    "WarpError",
    "appearance_drift",
    "build_propagator",
    "describe_propagator",
    "forward_backward_confidence",
    "fuse_probs",
    "hysteresis_labels",
    "labels_from_probs",
    "one_hot",
    "remap_channels",
    "sampling_map",
    "thumbnail",
    "to_gray",
    "track",
    "warp_labels",
    "warp_probs",
]
