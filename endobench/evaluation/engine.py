"""Score sequence sources frame by frame: decode, score and accumulate, never a whole video.

Each scored frame is one job (decode ground truth and prediction, J/F and the other per-frame
metrics) run on a thread pool: OpenCV's PNG decoder and the numba metric kernels release the
GIL, so threads share the work without the start-up and pickling costs of processes. At most
``WINDOW_PER_WORKER * workers`` jobs are in flight; their results (scores, no masks) are
accumulated in frame order by :class:`~endobench.metrics.sequence_scores.SequenceScorer`, so
memory stays flat in the clip's length. Jobs run across sequence boundaries, so a short
sequence never leaves a thread idle.
"""

from __future__ import annotations

import math
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from endobench.evaluation.errors import EvaluationError
from endobench.evaluation.sources import SequenceSource
from endobench.metrics.davis import scored_frames
from endobench.metrics.sequence_scores import (
    ROW_COLUMNS,
    FrameScores,
    ScoringOptions,
    SequenceScorer,
)

#: Jobs in flight per thread: enough to keep every thread busy, few enough to keep memory flat.
WINDOW_PER_WORKER = 4
#: Default thread count: the CPUs this process may use, at most this many.
MAX_DEFAULT_WORKERS = 8
#: The ``--metrics`` token that is not a per-frame metric: flow-warped temporal consistency.
TC_TOKEN = "tc"


def metric_choices() -> list[str]:
    """``--metrics`` tokens: every registered metric and its extra tokens
    (:func:`~endobench.metrics.per_frame.metric_tokens`), then ``tc``."""
    from endobench.metrics.per_frame import metric_tokens

    return [*metric_tokens(), TC_TOKEN]


def resolve_workers(workers: int | None) -> int:
    """Threads to score with: None = the usable CPUs (at most 8), 0 = the calling thread only."""
    if workers is None:
        return min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0)) or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise EvaluationError(
            f"workers {workers!r}: expected 0 (score in the calling thread) or a positive "
            "number of threads"
        )
    return workers


def scoring_options(
    metrics: str | Sequence[str] | None,
    protocol: str,
    bound_th: float,
    dice_empty: float,
    hd95_definition: str,
) -> tuple[ScoringOptions, bool]:
    """Validated options and whether temporal consistency (``tc``) was asked for."""
    from endobench.metrics.davis import PROTOCOLS
    from endobench.metrics.evaluate import parse_metrics

    tokens = metrics.split(",") if isinstance(metrics, str) else list(metrics or ["jf"])
    tokens = [t.strip().lower() for t in tokens if t.strip()]
    choices = metric_choices()
    unknown = [t for t in tokens if t not in choices]
    if unknown:
        raise EvaluationError(f"metrics: unknown {unknown}; expected some of {choices}")
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol {protocol!r}: expected one of {list(PROTOCOLS)}")
    if not (isinstance(bound_th, (int, float)) and math.isfinite(bound_th) and bound_th > 0):
        raise EvaluationError(
            f"bound_th {bound_th!r}: expected a number > 0 (a fraction of the image diagonal "
            "if < 1, else pixels)"
        )
    if hd95_definition not in ("monai", "medpy"):
        raise EvaluationError(f"hd95 definition {hd95_definition!r}: expected monai or medpy")
    wanted = parse_metrics([t for t in tokens if t != TC_TOKEN])
    options = ScoringOptions(protocol, wanted, bound_th, dice_empty, hd95_definition)
    return options, TC_TOKEN in tokens


def _score_frame(src: SequenceSource, scorer: SequenceScorer, i: int) -> FrameScores:
    gt, pred = src.load_gt(i), src.load_pred(i)
    if gt.shape != pred.shape:
        raise EvaluationError(
            f"{src.pred_name(i)}: size {pred.shape[1]}x{pred.shape[0]} but ground truth "
            f"{src.gt_name(i)} is {gt.shape[1]}x{gt.shape[0]}"
        )
    try:
        return scorer.score(i, gt, pred, src.frame_names[i])
    except ValueError as exc:
        raise EvaluationError(f"{src.context}: {exc}") from None


def _jobs(
    sources: Sequence[SequenceSource], options: ScoringOptions
) -> Iterator[tuple[SequenceSource, SequenceScorer, int | None]]:
    """``(source, scorer, frame index)`` per scored frame, then ``(source, scorer, None)``."""
    for src in sources:
        scorer = SequenceScorer(src.load_gt(0), len(src.frame_names), options, src.name)
        for i in scorer.frames:
            yield src, scorer, i
        yield src, scorer, None


def _in_order(
    sources: Sequence[SequenceSource], options: ScoringOptions, workers: int
) -> Iterator[tuple[SequenceSource, SequenceScorer, FrameScores | None]]:
    """The jobs' results in job order, at most ``WINDOW_PER_WORKER * workers`` in flight."""
    executor = ThreadPoolExecutor(workers, thread_name_prefix="eval") if workers > 0 else None
    window = WINDOW_PER_WORKER * max(workers, 1)
    pending: deque[tuple[SequenceSource, SequenceScorer, Future | None]] = deque()

    def submit(src: SequenceSource, scorer: SequenceScorer, i: int) -> Future:
        if executor is not None:
            return executor.submit(_score_frame, src, scorer, i)
        done: Future = Future()
        done.set_result(_score_frame(src, scorer, i))
        return done

    try:
        for src, scorer, i in _jobs(sources, options):
            pending.append((src, scorer, None if i is None else submit(src, scorer, i)))
            while len(pending) > window:
                src_, scorer_, future = pending.popleft()
                yield src_, scorer_, None if future is None else future.result()
        while pending:
            src_, scorer_, future = pending.popleft()
            yield src_, scorer_, None if future is None else future.result()
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def evaluate_sources(
    sources: Sequence[SequenceSource],
    options: ScoringOptions,
    *,
    temporal_consistency: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> tuple[Any, Any]:
    """Score every source; returns ``(per-frame rows, DAVIS table)`` as pandas DataFrames.

    Rows: :data:`~endobench.metrics.sequence_scores.ROW_COLUMNS` plus the asked metrics; table:
    :func:`~endobench.metrics.summarize` plus ``TC-Pred, TC-GT, Flicker-Pred, TC-Gap`` with
    ``temporal_consistency``. Errors are :class:`EvaluationError` naming the file.
    """
    import pandas as pd
    from tqdm import tqdm

    from endobench.metrics.evaluate import summarize

    n_workers = resolve_workers(workers)
    total = sum(len(scored_frames(len(s.frame_names), options.protocol)) for s in sources)
    rows: list[dict[str, Any]] = []
    extras: dict[str, dict[str, float]] = {}
    with tqdm(total=total, desc="eval", unit="frame", disable=not progress, file=sys.stderr) as bar:
        for src, scorer, frame in _in_order(sources, options, n_workers):
            if frame is not None:
                scorer.add(frame)
                bar.update(1)
                continue
            seq_rows = scorer.rows()
            rows.extend(seq_rows)
            if temporal_consistency:
                from endobench.evaluation.temporal import sequence_temporal_consistency

                extras[src.name] = sequence_temporal_consistency(src, seq_rows, options.protocol)
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(ROW_COLUMNS))
    df.attrs["protocol"] = options.protocol
    table = summarize(df)
    if extras:
        extra = pd.DataFrame.from_dict(extras, orient="index")
        extra.loc["global"] = extra.mean(axis=0)
        table = table.join(extra)
    return df, table


def table_to_json(table: Any) -> dict[str, Any]:
    """``{"sequences": {seq: {column: value}}, "global": {...}}`` of a DAVIS table; NaN -> null."""

    def value(x: Any) -> Any:
        if isinstance(x, (float, np.floating)):
            return None if math.isnan(x) else float(x)
        return x

    rows = {str(name): {str(k): value(v) for k, v in row.items()} for name, row in table.iterrows()}
    glob = rows.pop("global", {})
    return {"sequences": rows, "global": glob}
