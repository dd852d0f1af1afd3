"""Models: backbone registry and weights, segmentation heads, SegNet."""

from endobench.models.backbones import BACKBONES, Backbone, BackboneSpec, build_backbone
from endobench.models.heads import HEADS, FusionHead, LinearHead, build_head
from endobench.models.segnet import SegNet
from endobench.models.weights import WeightsInfo, WeightsUnavailableError

__all__ = [
    "BACKBONES",
    "HEADS",
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
