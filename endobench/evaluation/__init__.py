"""Evaluation: score predicted masks in files against mask folders or registry datasets.

- :func:`evaluate_folders`: a DAVIS root (or a mask folder) against ``PRED/<seq>/*.png``;
- :func:`evaluate_dataset`: a registry dataset, read through its reader, against
  ``PRED/<clip>/<frame stem>.png``;
- both return ``(per-frame rows, DAVIS table)`` as pandas DataFrames; :func:`table_to_json`
  gives the ``{"sequences": ..., "global": ...}`` layout of ``endobench eval --json``.

Frames are decoded and scored one at a time on a thread pool (memory flat in clip length);
the metrics themselves are the pure functions of :mod:`endobench.metrics`. A user's mistake
raises :class:`EvaluationError` (an :class:`endobench.errors.UserError`) with one line naming
the file; ignored prediction files and folders give an :class:`EvaluationWarning` each.
"""

from endobench.evaluation.dataset_mode import evaluate_dataset
from endobench.evaluation.decode import read_mask
from endobench.evaluation.engine import (
    evaluate_sources,
    metric_choices,
    resolve_workers,
    table_to_json,
)
from endobench.evaluation.errors import EvaluationError, EvaluationWarning
from endobench.evaluation.folder_mode import evaluate_folders
from endobench.evaluation.folders import SequencePaths, discover_sequences
from endobench.evaluation.sources import SequenceSource

__all__ = [
    "EvaluationError",
    "EvaluationWarning",
    "SequencePaths",
    "SequenceSource",
    "discover_sequences",
    "evaluate_dataset",
    "evaluate_folders",
    "evaluate_sources",
    "metric_choices",
    "read_mask",
    "resolve_workers",
    "table_to_json",
]
