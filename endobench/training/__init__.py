"""Training segmentation heads on frozen backbones, one module per job (import from them).

``config`` (``TrainConfig``), ``data`` (split, resize, torch datasets: ``load_data``), ``model``
(the ``SegNetSpec`` of a config), ``optim`` (parameter groups, learning-rate schedule), ``losses``
and ``augment`` (both registered in ``endobench.registry``), ``feature_cache``, ``runner`` (one
epoch, validation), ``validation`` (Dice / IoU), ``checkpoint`` (writing), ``loop`` (``fit``).
Nothing is imported here, so that registering the losses or presets loads only their module.
Loading a trained model is inference and lives in ``endobench.models`` (``load_segnet``,
``predict_labels``).
"""
