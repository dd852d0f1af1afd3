"""endobench: benchmark self-supervised backbones on endoscopic segmentation and video tracking."""

__version__ = "0.1.0"
