"""The registered propagators (``copy``, ``flow:METHOD``, ``affinity:BACKBONE``) and their builder.

A factory is called as ``factory(options, context)`` (``factory(context)`` without options) with
a :class:`PropagatorContext`: what the caller knows at run time (weights file, field of view,
device, flow confidence mode). Specs users write today keep their meaning: ``flow`` = ``flow:dis``
= ``flow:dis:ultrafast``, ``flow:dis:medium``, ``flow:farneback``, ``flow:raft_small``,
``affinity:dinov2_vits14``, ``copy``. ``PROPAGATORS.parse(spec)`` validates a spec without
building anything (no network is loaded; ``affinity:`` checks the backbone name only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from endobench.propagation.base import Propagator
from endobench.propagation.flow_propagation import (
    ConfidenceMode,
    CopyLastPropagator,
    FlowPropagator,
)
from endobench.registry import BACKBONES, FLOW_ESTIMATORS, PROPAGATORS, SpecError

DEFAULT_PROPAGATION = "flow:dis"
# Bidirectional propagation is the offline mode (two flows per frame anyway): it computes DIS at
# half instead of quarter resolution, about 3x the flow time for the best one-step warp of the
# truth and J&F on every real sample (bench/bench_tracking.py "flow_quality" and
# "what_each_change_bought"). Forward propagation keeps the fast default.
BIDIRECTIONAL_PROPAGATION = "flow:dis:ultrafast,finest_scale=1"


def default_propagation(bidirectional: bool) -> str:
    """The propagator spec used when none is given: ``BIDIRECTIONAL_PROPAGATION`` for
    bidirectional tracking, else ``DEFAULT_PROPAGATION``."""
    return BIDIRECTIONAL_PROPAGATION if bidirectional else DEFAULT_PROPAGATION


@dataclass(frozen=True)
class PropagatorContext:
    """Run-time inputs of a propagator factory.

    weights: a local weights file (RAFT or the affinity backbone). allow_random_init: permit
    untrained networks (plumbing tests only). fov: ``H x W`` bool field of view (flow).
    device: ``"cpu" | "cuda"`` (None: cuda when available). flow_confidence: how flow
    propagation measures its confidence (``photometric | forward_backward | none``).
    """

    weights: str | Path | None = None
    allow_random_init: bool = False
    fov: np.ndarray | None = None
    device: str | None = None
    flow_confidence: ConfidenceMode = "photometric"

    def __post_init__(self) -> None:
        modes = get_args(ConfidenceMode)
        if self.flow_confidence not in modes:
            raise SpecError(
                f"flow confidence {self.flow_confidence!r}: expected one of {', '.join(modes)}"
            )


def build_propagator(
    spec: str,
    *,
    weights: str | Path | None = None,
    allow_random_init: bool = False,
    fov: np.ndarray | None = None,
    device: str | None = None,
    flow_confidence: ConfidenceMode = "photometric",
) -> Propagator:
    """``PROPAGATORS.build(spec, PropagatorContext(...))`` with the context given by keyword.

    Bad specs raise :class:`~endobench.registry.SpecError` (a ``UserError``).
    """
    context = PropagatorContext(weights, allow_random_init, fov, device, flow_confidence)
    propagator: Propagator = PROPAGATORS.build(spec, context)
    return propagator


def describe_propagator(propagator: Propagator) -> dict[str, Any]:
    """Name and weights provenance of a propagator, for ``track.json``."""
    out: dict[str, Any] = {"name": propagator.name}
    estimator = getattr(propagator, "estimator", None)
    if estimator is not None and hasattr(estimator, "info"):
        out["weights"] = estimator.info()
    weights = getattr(propagator, "weights", None)
    if weights is not None:
        out["weights"] = weights.to_dict() if hasattr(weights, "to_dict") else weights
    return out


class FlowOptions(BaseModel):
    """``flow:METHOD``: a registered flow estimator spec (``dis`` = ``dis:ultrafast``)."""

    model_config = ConfigDict(extra="forbid")

    method: str = "dis"

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        try:
            FLOW_ESTIMATORS.parse(value)
        except SpecError as err:
            reason = str(err).removeprefix(f"{FLOW_ESTIMATORS.kind} {value!r}: ")
            raise ValueError(f"flow method {value!r}: {reason}") from None
        return value.strip()


class AffinityOptions(BaseModel):
    """``affinity:BACKBONE``: a registered backbone whose features carry the labels."""

    model_config = ConfigDict(extra="forbid")

    backbone: str

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        return BACKBONES.check(value.strip())


@PROPAGATORS.register("copy")
def copy_last(context: PropagatorContext) -> CopyLastPropagator:
    """Copy the last keyframe's mask (the zero-motion baseline)."""
    return CopyLastPropagator()


@PROPAGATORS.register("flow", options=FlowOptions, usage="flow:METHOD", nested=True)
def flow(options: FlowOptions, context: PropagatorContext) -> FlowPropagator:
    """Warp by dense optical flow; METHOD: a flow estimator (default dis = dis:ultrafast)."""
    estimator = FLOW_ESTIMATORS.build(
        options.method,
        weights=context.weights,
        allow_random_init=context.allow_random_init,
        device=context.device,
    )
    return FlowPropagator(estimator, fov=context.fov, confidence=context.flow_confidence)


@PROPAGATORS.register("affinity", options=AffinityOptions, usage="affinity:BACKBONE")
def affinity(options: AffinityOptions, context: PropagatorContext) -> Propagator:
    """Label propagation by backbone feature affinity (DINO-style, needs torch)."""
    from endobench.propagation.affinity import build_affinity_propagator

    pretrained = None if context.weights is not None else not context.allow_random_init
    weights = None if context.weights is None else str(context.weights)
    return build_affinity_propagator(options.backbone, pretrained=pretrained, weights=weights)
