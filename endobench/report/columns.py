"""The columns of the report's tables: summary.json keys with label, direction and format.

Tracking columns come from the last stage (notebook 03, :class:`TrackingSummary`): the columns
that the per-frame metrics declare for the report (:mod:`endobench.metrics.per_frame`), then the
cost. Segmentation columns come from the first stage (notebook 02, :class:`TrainingSummary`).
A column missing from every run is simply not shown.
"""

from __future__ import annotations

from endobench.metrics.per_frame import TableColumn, report_columns

#: The grid axis that tables average over (mean ± sample std); every other axis is a row key.
SEED_AXIS = "seed"

COST_COLUMNS = (
    TableColumn("keyframes_per_100", "keyframes/100 fr.", higher_is_better=False, fmt=".1f"),
    TableColumn("seconds_per_frame", "s/frame", higher_is_better=False, fmt=".3f"),
)
SEGMENTATION_COLUMNS = (TableColumn("dice", "Dice"), TableColumn("iou", "IoU"))
STORY_COLUMNS = (TableColumn("J&F-Mean", "J&F"), *COST_COLUMNS)


def tracking_columns() -> list[TableColumn]:
    """The tracking table's columns: the registered metrics' report columns, then the cost."""
    return [*report_columns(), *COST_COLUMNS]


def headline_columns() -> list[TableColumn]:
    """Tracking then segmentation columns (a notebook's one-row-per-run view)."""
    return [*tracking_columns(), *SEGMENTATION_COLUMNS]
