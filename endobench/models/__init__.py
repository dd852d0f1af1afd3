"""Models: backbones (registered in ``endobench.registry.BACKBONES``) and weights, heads, SegNet."""

from endobench.models.backbones import Backbone, BackboneSpec, build_backbone
from endobench.models.heads import FusionHead, LinearHead, build_head
from endobench.models.segnet import SegNet
from endobench.models.weights import WeightsInfo, WeightsUnavailableError

__all__ = [
    "Backbone",
    "BackboneSpec",
    "FusionHead",
    "LinearHead",
    "SegNet",
    "WeightsInfo",
    "WeightsUnavailableError",
    "build_backbone",
    "build_head",
]
