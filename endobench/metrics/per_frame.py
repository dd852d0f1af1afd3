"""The table of per-frame metrics: what each one adds to the rows, the DAVIS table and the report.

Every metric is one :class:`PerFrameMetric` registered in :data:`endobench.registry.METRICS`
under the token that asks for it (``endobench eval --metrics jf,dice``). It declares its row
columns, the pure function that scores one object in one frame, its table statistics (DAVIS
Mean / Recall / Decay for J and F, a mean for the others) and the columns the sweep report
shows, with their direction. :func:`~endobench.metrics.evaluate_sequence`,
:func:`~endobench.metrics.summarize`, the evaluation engine (``--metrics``) and the report all
iterate this table, so adding a metric is one file::

    from endobench.metrics.per_frame import PerFrameMetric, Statistic, TableColumn
    from endobench.registry import METRICS, Entry

    METRICS.register("area", PerFrameMetric(
        columns=("area",),
        score=lambda gt, pred, options: (float(pred.mean()),),
        statistics=(Statistic("area", "Area", "mean"),),
        report=(TableColumn("Area-Mean", "area", higher_is_better=False),),
    ), description="predicted foreground fraction")

J and F (with boundary precision and recall) are always computed, by the scorer's fused kernel
(both protocols match objects by them); T is scored over the whole sequence from per-frame
contour descriptors. Definitions: ``docs/METRICS.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from endobench.metrics.hausdorff import hausdorff, hd95
from endobench.metrics.region import dice
from endobench.registry import METRICS, Entry

if TYPE_CHECKING:
    from endobench.metrics.sequence_scores import ScoringOptions

#: How one object's per-frame values become table entries: ``davis`` = Mean, Recall, Decay
#: (:func:`~endobench.metrics.davis.db_statistics`; objects averaged with ``np.mean``), ``mean``
#: = NaN-ignoring mean (objects too), ``first`` = the one value the object carries on every row.
StatisticKind = Literal["davis", "mean", "first"]
DAVIS_STATISTICS = ("Mean", "Recall", "Decay")

#: ``score(gt, pred, options)``: two ``H x W`` bool masks of one object (ground truth,
#: prediction) and the scoring options -> one float per row column of the metric.
ScoreFunction = Callable[[np.ndarray, np.ndarray, "ScoringOptions"], tuple[float, ...]]


@dataclass(frozen=True)
class TableColumn:
    """A column of a results table: its key (DAVIS table / summary.json column), its label,
    whether higher is better (the report marks the best value) and its number format."""

    key: str
    label: str
    higher_is_better: bool = True
    fmt: str = ".3f"


@dataclass(frozen=True)
class Statistic:
    """Table entries of one row column: ``{label}-Mean`` (+ ``-Recall``, ``-Decay`` for davis)."""

    column: str
    label: str
    kind: StatisticKind = "mean"

    @property
    def table_columns(self) -> tuple[str, ...]:
        """The DAVIS table columns this statistic fills, in order."""
        names = DAVIS_STATISTICS if self.kind == "davis" else ("Mean",)
        return tuple(f"{self.label}-{name}" for name in names)


@dataclass(frozen=True)
class PerFrameMetric:
    """One metric of the table.

    ``columns``: the row columns it adds (its value first, then by-products such as boundary
    precision or the Hausdorff distance). ``score``: the pure per-object, per-frame function, or
    None for the two the scorer computes itself (J/F and T). ``statistics``: its DAVIS table
    entries. ``report``: the table columns the sweep report's tracking table shows.
    ``tokens``: other ``--metrics`` tokens that ask for it. ``always``: computed whatever is
    asked. ``scope``: ``frame`` (a value per frame) or ``sequence`` (one per object and video).
    """

    columns: tuple[str, ...]
    score: ScoreFunction | None
    statistics: tuple[Statistic, ...]
    report: tuple[TableColumn, ...] = ()
    tokens: tuple[str, ...] = ()
    always: bool = False
    scope: Literal["frame", "sequence"] = "frame"


def _dice(gt: np.ndarray, pred: np.ndarray, options: ScoringOptions) -> tuple[float, ...]:
    return (dice(gt, pred, empty=options.dice_empty),)


def _hd95(gt: np.ndarray, pred: np.ndarray, options: ScoringOptions) -> tuple[float, ...]:
    definition: Any = options.hd95_definition
    return hd95(gt, pred, definition=definition), hausdorff(gt, pred)


METRICS.register(
    "jf",
    PerFrameMetric(
        columns=("J", "F", "precision", "recall"),
        score=None,
        statistics=(Statistic("J", "J", "davis"), Statistic("F", "F", "davis")),
        report=(
            TableColumn("J&F-Mean", "J&F"),
            TableColumn("J-Mean", "J"),
            TableColumn("F-Mean", "F"),
            TableColumn("J-Decay", "J decay", higher_is_better=False),
        ),
        tokens=("j", "f"),
        always=True,
    ),
    description="region similarity J (Jaccard) and boundary F-measure, DAVIS (always on)",
)
METRICS.register(
    "t",
    PerFrameMetric(
        columns=("T",),
        score=None,
        statistics=(Statistic("T", "T", "first"),),
        report=(TableColumn("T-Mean", "T (stability)", higher_is_better=False),),
        scope="sequence",
    ),
    description="DAVIS-2016 temporal stability T of each object's predicted masks (lower: steadier)",
)
METRICS.register(
    "dice",
    PerFrameMetric(columns=("dice",), score=_dice, statistics=(Statistic("dice", "Dice"),)),
    description="Dice coefficient (2|A∩B| / (|A|+|B|))",
)
METRICS.register(
    "hd95",
    PerFrameMetric(
        columns=("hd95", "hausdorff"), score=_hd95, statistics=(Statistic("hd95", "HD95"),)
    ),
    description="95th-percentile and maximum Hausdorff distance in pixels (lower is better)",
)


def metric(name: str) -> PerFrameMetric:
    """The registered metric ``name`` (a RegistryError lists the names if there is none)."""
    return METRICS.get(name).obj


def _in_table_order(names: frozenset[str] | set[str] | None = None) -> list[Entry[Any]]:
    entries = [e for e in METRICS.entries() if names is None or e.name in names]
    rank = {(True, "frame"): 0, (True, "sequence"): 0, (False, "sequence"): 1}
    entries.sort(key=lambda e: (rank.get((e.obj.always, e.obj.scope), 2), e.name))
    return entries


def table_order(names: frozenset[str] | set[str] | None = None) -> list[PerFrameMetric]:
    """Metrics in the DAVIS table's order (always-on first, then per-sequence, then per-frame,
    each by name); only ``names`` when given."""
    return [e.obj for e in _in_table_order(names)]


def metric_tokens() -> dict[str, str]:
    """``--metrics`` token -> registered metric name, in table order (each name, then its
    extra tokens: ``jf, j, f, t, dice, hd95`` for the built-in metrics)."""
    out: dict[str, str] = {}
    for entry in _in_table_order():
        out[entry.name] = entry.name
        out |= {token: entry.name for token in entry.obj.tokens}
    return out


def frame_metrics(names: frozenset[str] | set[str]) -> list[PerFrameMetric]:
    """The per-frame metrics among ``names`` that the scorer calls (``score`` set), by name."""
    return [
        e.obj
        for e in METRICS.entries()
        if e.name in names and e.obj.score is not None and e.obj.scope == "frame"
    ]


def table_columns() -> list[str]:
    """Every DAVIS table column the registered metrics can fill, in table order."""
    columns = ["J&F-Mean"]
    for m in table_order():
        for stat in m.statistics:
            columns += stat.table_columns
    return columns


def report_columns() -> list[TableColumn]:
    """The columns the sweep report's tracking table shows, in table order."""
    return [column for m in table_order() for column in m.report]
