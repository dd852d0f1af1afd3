"""Training segmentation heads on frozen backbones: one module per job.

``config`` (TrainConfig), ``data`` (split, resize, torch datasets), ``model`` (the SegNetSpec of a
config), ``optim`` (parameter groups, learning-rate schedule), ``losses`` and ``augment`` (both
registered in ``endobench.registry``), ``feature_cache``, ``runner`` (one epoch, validation),
``validation`` (Dice / IoU), ``checkpoint`` (writing), ``loop`` (``fit``). Loading a trained model
is inference and lives in ``endobench.models`` (``load_segnet``, ``predict_labels``).
"""

from endobench.training.config import TrainConfig
from endobench.training.data import load_data
from endobench.training.loop import TrainResult, fit

__all__ = ["TrainConfig", "TrainResult", "fit", "load_data"]
