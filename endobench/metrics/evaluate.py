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
from endobench.metrics.boundary import DEFAULT_BOUND_TH, jaccard_and_boundary
from endobench.metrics.davis import (
    MAX_PROPOSALS,
    VOID_ID,
    check_protocol,
    db_statistics,
    hungarian_match,
    object_ids,
    scored_frames,
)
from endobench.metrics.hausdorff import hausdorff, hd95
from endobench.metrics.region import dice

#: Metric names accepted by ``metrics=`` (lower case), mapped to what they add. J and F (with
#: precision and recall) are always computed: the protocols and the table need them.
METRIC_TOKENS: dict[str, tuple[str, ...]] = {
    "jf": ("J", "F"),
    "j": ("J",),
    "f": ("F",),
    "dice": ("dice",),
    "hd95": ("hd95",),
    "t": ("T",),
}
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
    """Canonical metric names from ``"jf,t,dice"`` or an iterable of tokens (case-insensitive)."""
    tokens = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    out: set[str] = {"J", "F"}
    for token in tokens:
        key = str(token).strip().lower()
        if not key:
            continue
        if key == "tc":
            raise ValueError(
                "metric 'tc' needs the video frames for optical flow; use "
                "endobench.metrics.flow_warped_consistency or `endobench eval --metrics tc`"
            )
        if key not in METRIC_TOKENS:
            raise ValueError(f"unknown metric {token!r}; expected some of {sorted(METRIC_TOKENS)}")
        out.update(METRIC_TOKENS[key])
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


def _extra_scores(
    g: np.ndarray, p: np.ndarray, wanted: frozenset[str], dice_empty: float, hd95_definition: str
) -> dict[str, float]:
    out: dict[str, float] = {}
    if "dice" in wanted:
        out["dice"] = dice(g, p, empty=dice_empty)
    if "hd95" in wanted:
        out["hd95"] = hd95(g, p, definition=hd95_definition)  # type: ignore[arg-type]
        out["hausdorff"] = hausdorff(g, p)
    return out


def _semi_supervised_rows(
    gt_masks,
    pred_masks,
    objects,
    frames,
    frame_names,
    sequence,
    bound_th,
    wanted,
    dice_empty,
    hd_def,
) -> list[dict[str, Any]]:
    rows = []
    for i in frames:
        name = _frame_name(frame_names, i)
        gt, pred = _load_pair(gt_masks, pred_masks, i, name, sequence)
        gt = np.where(gt == VOID_ID, 0, gt)  # void counts as background in this protocol
        top = int(pred.max(initial=0))
        if top > len(objects):
            extra = sorted(int(v) for v in np.unique(pred) if v > len(objects))
            raise ValueError(
                f"{sequence}/{name}: prediction has object id(s) {extra} but the first "
                f"ground-truth frame has {len(objects)} object(s) (ids 1..{len(objects)})"
            )
        for k in objects:
            g, p = gt == k, pred == k
            j, precision, recall, f = jaccard_and_boundary(g, p, None, bound_th)
            row = {"sequence": sequence, "frame": name, "frame_index": i, "object": k}
            row |= {"pred_object": k, "J": j, "F": f, "precision": precision, "recall": recall}
            rows.append(row | _extra_scores(g, p, wanted, dice_empty, hd_def))
    return rows


def _unsupervised_rows(
    gt_masks,
    pred_masks,
    objects,
    frames,
    frame_names,
    sequence,
    bound_th,
    wanted,
    dice_empty,
    hd_def,
    max_proposals,
) -> list[dict[str, Any]]:
    n_gt, n_frames = len(objects), len(frames)
    # scores[pred_id][t] -> (n_gt, 4) array of (J, precision, recall, F); empty[t] likewise for
    # an absent prediction, which is what every id missing from a frame scores.
    scores: dict[int, dict[int, np.ndarray]] = {}
    empty = np.zeros((n_frames, n_gt, 4))
    n_pred = 0
    for t, i in enumerate(frames):
        name = _frame_name(frame_names, i)
        gt, pred = _load_pair(gt_masks, pred_masks, i, name, sequence)
        void = gt == VOID_ID
        present = [int(v) for v in np.unique(pred) if v != 0]
        if present and present[-1] > max_proposals:
            raise ValueError(
                f"{sequence}/{name}: prediction has id(s) {[v for v in present if v > max_proposals]}"
                f"; the unsupervised protocol allows ids 1..{max_proposals}"
            )
        n_pred = max(n_pred, present[-1] if present else 0)
        blank = np.zeros_like(void)
        for c, k in enumerate(objects):
            g = gt == k
            empty[t, c] = jaccard_and_boundary(g, blank, void, bound_th)
            for j in present:
                scores.setdefault(j, {}).setdefault(t, np.zeros((n_gt, 4)))
                scores[j][t][c] = jaccard_and_boundary(g, pred == j, void, bound_th)
    n_rows = max(n_pred, n_gt)
    table = np.repeat(empty[None], n_rows, axis=0)  # (n_rows, n_frames, n_gt, 4)
    for j, per_frame in scores.items():
        for t, values in per_frame.items():
            table[j - 1, t] = values
    if n_gt == 0 or n_frames == 0:
        return []
    mean_jf = (table[..., 0].mean(axis=1) + table[..., 3].mean(axis=1)) / 2  # (n_rows, n_gt)
    pred_rows, gt_cols = hungarian_match(mean_jf)
    rows = []
    for r, c in sorted(zip(pred_rows, gt_cols, strict=True), key=lambda rc: rc[1]):
        pred_id = int(r) + 1 if r < n_pred else 0  # 0: padding, no prediction left
        for t, i in enumerate(frames):
            j, precision, recall, f = table[r, t, c]
            row = {"sequence": sequence, "frame": _frame_name(frame_names, i), "frame_index": i}
            row |= {"object": objects[c], "pred_object": pred_id, "J": j, "F": f}
            row |= {"precision": precision, "recall": recall}
            if wanted & {"dice", "hd95"}:
                gt, pred = _load_pair(gt_masks, pred_masks, i, row["frame"], sequence)
                row |= _extra_scores(
                    gt == objects[c],
                    pred == pred_id if pred_id else np.zeros(gt.shape, bool),
                    wanted,
                    dice_empty,
                    hd_def,
                )
            rows.append(row)
    return rows


def _add_temporal_stability(
    rows: list[dict[str, Any]], pred_masks: Sequence[Any], shape: tuple[int, ...]
) -> None:
    """Set column ``T`` of each object's rows to T of its predicted masks over all frames."""
    from endobench.metrics.stability import temporal_stability_t

    blank = np.zeros(shape, bool)
    done: dict[int, float] = {}
    for row in rows:
        pred_id = row["pred_object"]
        if pred_id not in done:
            masks = (
                [
                    blank if m is None else as_label_map(m, "prediction") == pred_id
                    for m in pred_masks
                ]
                if pred_id
                else [blank] * len(pred_masks)
            )
            done[pred_id] = float(temporal_stability_t(masks))
        row["T"] = done[pred_id]


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
    first and last predictions are not read (they may be None). ``metrics``: tokens among
    ``jf, j, f, dice, hd95, t`` (J and F are always computed). ``bound_th``: F tolerance.
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
    columns = [
        "sequence",
        "frame",
        "frame_index",
        "object",
        "pred_object",
        "J",
        "F",
        "precision",
        "recall",
    ]
    if n == 0:
        return pd.DataFrame(columns=columns)
    first = as_label_map(gt_masks[0], f"{sequence} first ground-truth frame")
    objects = object_ids(first)
    frames = scored_frames(n, protocol)
    args = (
        gt_masks,
        pred_masks,
        objects,
        frames,
        frame_names,
        sequence,
        bound_th,
        wanted,
        dice_empty,
        hd95_definition,
    )
    if protocol == "semi-supervised":
        rows = _semi_supervised_rows(*args)
    else:
        rows = _unsupervised_rows(*args, max_proposals)
    if "T" in wanted:
        _add_temporal_stability(rows, pred_masks, first.shape)
    df = pd.DataFrame(rows, columns=None if rows else columns)
    df.attrs["protocol"] = protocol
    return df


#: The name used in the architecture notes; same function.
evaluate_clip = evaluate_sequence


def object_statistics(df: pd.DataFrame) -> pd.DataFrame:
    """Per (sequence, object) DAVIS statistics of tidy rows: J/F Mean, Recall, Decay (+ T, Dice,
    HD95 means when those columns exist), frames in ``frame_index`` order."""
    records = []
    for (seq, obj), rows in df.sort_values("frame_index").groupby(
        ["sequence", "object"], sort=True
    ):
        record: dict[str, Any] = {"sequence": seq, "object": obj}
        for key in ("J", "F"):
            stats = db_statistics(rows[key].to_numpy(dtype=np.float64))
            record |= {
                f"{key}-Mean": stats["mean"],
                f"{key}-Recall": stats["recall"],
                f"{key}-Decay": stats["decay"],
            }
        if "T" in rows:
            record["T-Mean"] = float(rows["T"].iloc[0])
        if "dice" in rows:
            record["Dice-Mean"] = _nanmean(rows["dice"])
        if "hd95" in rows:
            record["HD95-Mean"] = _nanmean(rows["hd95"])
        records.append(record)
    return pd.DataFrame(records)


def _nanmean(values: Any) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _table_row(objects: pd.DataFrame) -> dict[str, float]:
    """DAVIS table entries from per-object statistics: means over objects (equal weights)."""
    row = {c: float(np.mean(objects[c])) for c in DAVIS_COLUMNS[1:]}
    row = {"J&F-Mean": (row["J-Mean"] + row["F-Mean"]) / 2} | row
    for extra in ("T-Mean", "Dice-Mean", "HD95-Mean"):
        if extra in objects:
            row[extra] = _nanmean(objects[extra])
    return row


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """DAVIS table: one row per sequence and a final ``global`` row (index), columns
    ``J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay`` (+ ``T-Mean``,
    ``Dice-Mean``, ``HD95-Mean`` when present). Every object of every sequence weighs the same;
    ``J&F-Mean`` = (J-Mean + F-Mean) / 2."""
    objects = object_statistics(df)
    if objects.empty:
        return pd.DataFrame(columns=list(DAVIS_COLUMNS))
    table = {seq: _table_row(rows) for seq, rows in objects.groupby("sequence", sort=True)}
    table["global"] = _table_row(objects)
    out = pd.DataFrame.from_dict(table, orient="index")
    out.index.name = "sequence"
    return out
