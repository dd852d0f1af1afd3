"""Propagation specs, parsed and validated without building anything (no torch, no OpenCV state).

Grammar: ``copy`` | ``flow:METHOD`` with METHOD one of ``FLOW_METHODS`` or ``dis`` (= the
ultrafast preset) | ``affinity:BACKBONE`` (e.g. ``affinity:dinov2_vits14``). A grid validator
calls ``parse_propagation_spec``; ``build_propagator`` (tracker module) builds from the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from endobench.errors import UserError

FLOW_METHODS = ("dis:ultrafast", "dis:fast", "dis:medium", "farneback", "raft_small", "raft_large")
# "dis" means the ultrafast preset (bench/bench_tracking.py: as accurate as "fast", faster).
DEFAULT_DIS = "dis:ultrafast"
PROPAGATION_FORMS = (
    "flow:dis | flow:dis:ultrafast|fast|medium | flow:farneback | flow:raft_small | "
    "flow:raft_large | affinity:BACKBONE | copy"
)
FLOW_CONFIDENCE_MODES = ("photometric", "forward_backward", "none")


class PropagationSpecError(UserError, ValueError):
    """A propagation spec could not be parsed; the message shows the accepted forms."""


@dataclass(frozen=True)
class PropagationSpec:
    """A parsed spec: ``kind`` and its argument (flow method, affinity backbone, or "")."""

    kind: Literal["copy", "flow", "affinity"]
    arg: str = ""

    def __str__(self) -> str:
        return self.kind if not self.arg else f"{self.kind}:{self.arg}"


def normalise_flow_method(method: str) -> str:
    """``dis`` -> ``dis:ultrafast``; lower-cased; ``PropagationSpecError`` if unknown."""
    spec = method.strip().lower()
    spec = DEFAULT_DIS if spec == "dis" else spec
    if spec.startswith("dis:") and spec not in FLOW_METHODS:
        presets = ", ".join(m.split(":")[1] for m in FLOW_METHODS if m.startswith("dis:"))
        raise PropagationSpecError(f"DIS preset {spec[4:]!r}: expected one of {presets}")
    if spec not in FLOW_METHODS:
        raise PropagationSpecError(
            f"flow method {method!r}: expected one of {', '.join(FLOW_METHODS)} (or 'dis')"
        )
    return spec


def parse_propagation_spec(spec: str) -> PropagationSpec:
    """Validate ``spec`` (grammar in the module docstring); raises ``PropagationSpecError``."""
    if not isinstance(spec, str):
        raise PropagationSpecError(f"propagation {spec!r}: expected a string, {PROPAGATION_FORMS}")
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "copy" and not arg:
        return PropagationSpec("copy")
    if kind == "flow":
        try:
            return PropagationSpec("flow", normalise_flow_method(arg or "dis"))
        except PropagationSpecError as exc:
            raise PropagationSpecError(f"propagation {spec!r}: {exc}") from None
    if kind == "affinity" and arg.strip():
        return PropagationSpec("affinity", arg.strip())
    raise PropagationSpecError(f"propagation {spec!r}: expected {PROPAGATION_FORMS}")


def parse_flow_confidence(mode: str) -> str:
    """Validate a flow confidence mode (``photometric | forward_backward | none``)."""
    if mode not in FLOW_CONFIDENCE_MODES:
        raise PropagationSpecError(
            f"flow confidence {mode!r}: expected one of {', '.join(FLOW_CONFIDENCE_MODES)}"
        )
    return mode
