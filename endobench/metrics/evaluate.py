"""Evaluate a predicted mask sequence against ground truth: tidy per-frame rows, DAVIS tables.

:func:`evaluate_sequence` returns one row per (scored frame, object) with the columns
``sequence, frame, frame_index, object, pred_object, J, F, precision, recall`` and, when asked,
``dice``, ``hd95``, ``hausdorff`` (pixels) and ``T`` (DAVIS-2016 temporal stability of the
object's predicted masks over the whole sequence: one value per object, repeated on its rows).
:func:`summarize` turns such rows (one or many sequences) into the DAVIS table per sequence plus
a ``global`` row; :func:`object_statistics` gives the per-object statistics behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from endobench.metrics._arrays import as_label_map
from endobench.metrics.boundary import DEFAULT_BOUND_TH
from endobench.metrics.davis import MAX_PROPOSALS, check_protocol, db_statistics
from endobench.metrics.per_frame import metric_tokens, table_order
from endobench.metrics.sequence_scores import ROW_COLUMNS, ScoringOptions, SequenceScorer
from endobench.registry import METRICS

#: Columns of the DAVIS table, in the toolkit's order.
DAVIS_COLUMNS: tuple[str, ...] = (
    "J&F-Mean",
    "J-Mean",
    "J-Recall",
    "J-Decay",
    "F-Mean",
    "F-Recall",
    "F-Decay",
)


def parse_metrics(metrics: str | Iterable[str]) -> frozenset[str]:
    """Registered metric names (:data:`endobench.registry.METRICS`) from ``"jf,t,dice"`` or an
    iterable of tokens (case-insensitive); the always-on ones (``jf``) are always included."""
    tokens = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    known = metric_tokens()
    out: set[str] = {e.name for e in METRICS.entries() if e.obj.always}
    for token in tokens:
        key = str(token).strip().lower()
        if not key:
            continue
        if key == "tc":
            raise ValueError(
                "metric 'tc' needs the video frames for optical flow; use "
                "endobench.metrics.flow_warped_consistency or `endobench eval --metrics tc`"
            )
        if key not in known:
            raise ValueError(f"unknown metric {token!r}; expected some of {sorted(known)}")
        out.add(known[key])
    return frozenset(out)


def _frame_name(frame_names: Sequence[str] | None, i: int) -> str:
    return str(frame_names[i]) if frame_names is not None else f"{i:05d}"


def _load_pair(
    gt_masks: Sequence[Any], pred_masks: Sequence[Any], i: int, name: str, sequence: str
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and prediction of frame ``i`` as uint8 label maps, checked for size."""
    pred = pred_masks[i]
    if pred is None:
        raise ValueError(f"{sequence}/{name}: prediction missing for a scored frame")
    gt = as_label_map(gt_masks[i], f"{sequence}/{name} ground truth")
    pred = as_label_map(pred, f"{sequence}/{name} prediction")
    if gt.shape != pred.shape:
        raise ValueError(
            f"{sequence}/{name}: size mismatch, ground truth {gt.shape[1]}x{gt.shape[0]} vs "
            f"prediction {pred.shape[1]}x{pred.shape[0]} (width x height)"
        )
    return gt, pred


def evaluate_sequence(
    gt_masks: Sequence[Any],
    pred_masks: Sequence[Any],
    protocol: str = "semi-supervised",
    metrics: str | Iterable[str] = ("jf",),
    *,
    bound_th: float = DEFAULT_BOUND_TH,
    frame_names: Sequence[str] | None = None,
    sequence: str = "sequence",
    dice_empty: float = 1.0,
    hd95_definition: str = "monai",
    max_proposals: int = MAX_PROPOSALS,
) -> pd.DataFrame:
    """Score one video's predicted label maps against its ground truth, one row per frame/object.

    ``gt_masks``, ``pred_masks``: equally long sequences of ``H x W`` uint8 label maps (object
    ids; 255 = void in the ground truth), numpy or torch. In the semi-supervised protocol the
    first and last predictions are not read (they may be None). ``metrics``: tokens of
    :data:`endobench.registry.METRICS` (built in: ``jf, j, f, dice, hd95, t``; J and F are
    always computed). ``bound_th``: F tolerance.
    ``dice_empty``: Dice when both masks are empty. ``hd95_definition``: ``monai`` | ``medpy``.
    Raises ValueError naming the frame for size mismatches, missing predictions and ids above
    the ground-truth object count (semi-supervised) or ``max_proposals`` (unsupervised).
    """
    check_protocol(protocol)
    wanted = parse_metrics(metrics)
    n = len(gt_masks)
    if len(pred_masks) != n:
        raise ValueError(f"{sequence}: {n} ground-truth frames but {len(pred_masks)} predictions")
    if frame_names is not None and len(frame_names) != n:
        raise ValueError(f"{sequence}: {len(frame_names)} frame names for {n} frames")
    if n == 0:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    first = as_label_map(gt_masks[0], f"{sequence} first ground-truth frame")
    options = ScoringOptions(protocol, wanted, bound_th, dice_empty, hd95_definition, max_proposals)
    scorer = SequenceScorer(first, n, options, sequence)
    for i in scorer.frames:
        name = _frame_name(frame_names, i)
        gt, pred = _load_pair(gt_masks, pred_masks, i, name, sequence)
        scorer.add(scorer.score(i, gt, pred, name))
    rows = scorer.rows()
    df = pd.DataFrame(rows, columns=None if rows else list(ROW_COLUMNS))
    df.attrs["protocol"] = protocol
    return df


#: The name used in the architecture notes; same function.
evaluate_clip = evaluate_sequence


def object_statistics(df: pd.DataFrame) -> pd.DataFrame:
    """Per (sequence, object) statistics of tidy rows, one column per table entry of each metric
    present (:mod:`endobench.metrics.per_frame`): J/F Mean, Recall, Decay, then T, Dice, HD95
    means when those columns exist; frames in ``frame_index`` order."""
    present = [stat for m in table_order() for stat in m.statistics if stat.column in df.columns]
    records = []
    for (seq, obj), rows in df.sort_values("frame_index").groupby(
        ["sequence", "object"], sort=True
    ):
        record: dict[str, Any] = {"sequence": seq, "object": obj}
        for stat in present:
            values = rows[stat.column]
            if stat.kind == "davis":
                stats = db_statistics(values.to_numpy(dtype=np.float64))
                record |= {
                    f"{stat.label}-Mean": stats["mean"],
                    f"{stat.label}-Recall": stats["recall"],
                    f"{stat.label}-Decay": stats["decay"],
                }
            elif stat.kind == "first":
                record[f"{stat.label}-Mean"] = float(values.iloc[0])
            else:
                record[f"{stat.label}-Mean"] = _nanmean(values)
        records.append(record)
    return pd.DataFrame(records)


def _nanmean(values: Any) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _table_row(objects: pd.DataFrame) -> dict[str, float]:
    """DAVIS table entries from per-object statistics: means over objects (equal weights; DAVIS
    statistics with ``np.mean``, the other metrics ignoring NaN)."""
    row: dict[str, float] = {}
    for m in table_order():
        for stat in m.statistics:
            for column in stat.table_columns:
                if column in objects:
                    values = objects[column]
                    row[column] = (
                        float(np.mean(values)) if stat.kind == "davis" else _nanmean(values)
                    )
    return {"J&F-Mean": (row["J-Mean"] + row["F-Mean"]) / 2} | row


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """DAVIS table: one row per sequence and a final ``global`` row (index), columns
    ``J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay`` (+ ``T-Mean``,
    ``Dice-Mean``, ``HD95-Mean`` and any other registered metric's columns when present). Every object of every sequence weighs the same;
    ``J&F-Mean`` = (J-Mean + F-Mean) / 2."""
    objects = object_statistics(df)
    if objects.empty:
        return pd.DataFrame(columns=list(DAVIS_COLUMNS))
    table = {seq: _table_row(rows) for seq, rows in objects.groupby("sequence", sort=True)}
    table["global"] = _table_row(objects)
    out = pd.DataFrame.from_dict(table, orient="index")
    out.index.name = "sequence"
    return out
