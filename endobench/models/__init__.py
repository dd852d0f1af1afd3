"""Models: backbones (registered in ``endobench.registry.BACKBONES``) and weights, segmentation
heads (``HEADS``), SegNet, and the inference side: ``SegNetSpec`` / ``build_segnet`` (a segmenter
as data), ``load_segnet`` (a trained checkpoint) and ``predict_labels`` (label maps of frames)."""

from endobench.models.backbones import Backbone, BackboneSpec, build_backbone
from endobench.models.heads import FusionHead, LinearHead, build_head
from endobench.models.load import CheckpointError, load_segnet, read_checkpoint
from endobench.models.predict import predict_labels
from endobench.models.segnet import SegNet, resolve_device
from endobench.models.spec import SegNetSpec, build_segnet
from endobench.models.weights import WeightsInfo, WeightsUnavailableError

__all__ = [
    "Backbone",
    "BackboneSpec",
    "CheckpointError",
    "FusionHead",
    "LinearHead",
    "SegNet",
    "SegNetSpec",
    "WeightsInfo",
    "WeightsUnavailableError",
    "build_backbone",
    "build_head",
    "build_segnet",
    "load_segnet",
    "predict_labels",
    "read_checkpoint",
    "resolve_device",
]
