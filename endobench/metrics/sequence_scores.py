"""Streaming scores of one video: frames go in one at a time, tidy per-frame rows come out.

:class:`SequenceScorer` holds what a video's score needs between frames (the object ids of the
first ground-truth frame, the per-frame J/F values, the previous frame's T descriptors) and never
a mask, so memory stays flat in the clip's length. :meth:`SequenceScorer.score` is a pure
function of one frame's pair of label maps (safe to call from several threads at once);
:meth:`SequenceScorer.add` accumulates its result, frames in increasing index order.
:func:`endobench.metrics.evaluate_sequence` is a loop over the two, and folder / dataset
evaluation (:mod:`endobench.evaluation`) drives the same two calls from decoded files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from endobench.metrics.boundary import (
    DEFAULT_BOUND_TH,
    jaccard_and_boundary,
    jaccard_and_boundary_per_id,
)
from endobench.metrics.davis import (
    MAX_PROPOSALS,
    VOID_ID,
    check_protocol,
    hungarian_match,
    object_ids,
    scored_frames,
)
from endobench.metrics.per_frame import PerFrameMetric, frame_metrics
from endobench.metrics.stability import T_SCALE, contour_descriptor, descriptor_matching_cost

#: Columns every row has, in order (then the asked per-frame metrics' columns, by metric name,
#: e.g. ``dice``, ``hd95``, ``hausdorff``, and ``T`` last).
ROW_COLUMNS: tuple[str, ...] = (
    "sequence",
    "frame",
    "frame_index",
    "object",
    "pred_object",
    "J",
    "F",
    "precision",
    "recall",
)


@dataclass(frozen=True)
class ScoringOptions:
    """How frames are scored: protocol, metric names (``parse_metrics``: names registered in
    :data:`endobench.registry.METRICS`), F tolerance
    (``bound_th``: fraction of the diagonal if < 1, else pixels), Dice of two empty masks, HD95
    definition (``monai`` | ``medpy``) and the unsupervised protocol's proposal limit."""

    protocol: str = "semi-supervised"
    wanted: frozenset[str] = frozenset({"jf"})
    bound_th: float = DEFAULT_BOUND_TH
    dice_empty: float = 1.0
    hd95_definition: str = "monai"
    max_proposals: int = MAX_PROPOSALS


@dataclass
class FrameScores:
    """What one frame contributes. Semi-supervised: finished ``rows``. Unsupervised: ``scores``
    ``{pred id: (n_objects, 4)}`` of (J, precision, recall, F) per present id, ``empty`` for an
    absent prediction, and ``extras`` ``{(pred id or 0 = none, object column): {dice, ...}}``.
    ``descriptors`` ``{pred id: shape-context histograms or None}`` for T (interior frames)."""

    index: int
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    present: tuple[int, ...] = ()
    scores: dict[int, np.ndarray] = field(default_factory=dict)
    empty: np.ndarray | None = None
    extras: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)
    descriptors: dict[int, np.ndarray | None] | None = None


def _extra_scores(
    g: np.ndarray, p: np.ndarray, metrics: list[PerFrameMetric], opts: ScoringOptions
) -> dict[str, float]:
    """The row columns of the asked per-frame metrics for one object (``g``, ``p``: bool)."""
    out: dict[str, float] = {}
    for m in metrics:
        assert m.score is not None
        values = m.score(g, p, opts)
        if len(values) != len(m.columns):
            raise ValueError(
                f"metric with columns {m.columns}: its score returned {len(values)} value(s)"
            )
        out |= dict(zip(m.columns, values, strict=True))
    return out


class SequenceScorer:
    """Accumulates the scores of one video, one frame at a time.

    ``first_gt``: the first ground-truth ``H x W`` uint8 label map (its ids ``1..max`` are the
    objects; 255 = void); ``n_frames``: the video's length (the protocol scores
    ``scored_frames(n_frames, protocol)``). Call :meth:`score` for each scored frame (any thread,
    any order), :meth:`add` with the results in index order, then :meth:`rows`.
    """

    def __init__(
        self,
        first_gt: np.ndarray,
        n_frames: int,
        options: ScoringOptions = ScoringOptions(),
        sequence: str = "sequence",
    ) -> None:
        check_protocol(options.protocol)
        self.options = options
        self.sequence = sequence
        self.n_frames = n_frames
        self.objects = object_ids(first_gt)
        self.frames = scored_frames(n_frames, options.protocol)
        self._want_t = "t" in options.wanted
        self._extras = frame_metrics(options.wanted)
        self._rows: list[dict[str, Any]] = []
        self._frame_scores: list[FrameScores] = []
        self._n_pred = 0
        self._previous: dict[int, np.ndarray | None] | None = None
        self._t_values: dict[int, list[float]] = {}
        self._n_pairs = 0

    # ---- one frame (pure) ------------------------------------------------------------------
    def score(self, index: int, gt: np.ndarray, pred: np.ndarray, name: str) -> FrameScores:
        """Scores of frame ``index`` (``gt``, ``pred``: same-size uint8 label maps).

        Raises ValueError naming ``sequence/name`` for predicted ids the protocol forbids.
        """
        if self.options.protocol == "semi-supervised":
            out = self._semi_supervised(index, gt, pred, name)
            ids: tuple[int, ...] = tuple(self.objects)
        else:
            out = self._unsupervised(index, gt, pred, name)
            ids = out.present
        if self._want_t and 1 <= index <= self.n_frames - 2:
            out.descriptors = {k: contour_descriptor(pred == k) for k in ids}
        return out

    def _semi_supervised(
        self, index: int, gt: np.ndarray, pred: np.ndarray, name: str
    ) -> FrameScores:
        objects, opts = self.objects, self.options
        top = int(pred.max(initial=0))
        if top > len(objects):
            extra = sorted(int(v) for v in np.unique(pred) if v > len(objects))
            raise ValueError(
                f"{self.sequence}/{name}: prediction has object id(s) {extra} but the first "
                f"ground-truth frame has {len(objects)} object(s) (ids 1..{len(objects)})"
            )
        rows = []
        # Void (255) counts as background in this protocol; objects are 1..254, so `gt == k`
        # is the same with or without void set to 0 first.
        scores = jaccard_and_boundary_per_id(gt, pred, objects, opts.bound_th)
        for k, (j, precision, recall, f) in zip(objects, scores, strict=True):
            row = {"sequence": self.sequence, "frame": name, "frame_index": index, "object": k}
            row |= {"pred_object": k, "J": j, "F": f, "precision": precision, "recall": recall}
            if self._extras:
                row |= _extra_scores(gt == k, pred == k, self._extras, opts)
            rows.append(row)
        return FrameScores(index, name, rows=rows)

    def _unsupervised(self, index: int, gt: np.ndarray, pred: np.ndarray, name: str) -> FrameScores:
        objects, opts = self.objects, self.options
        void = gt == VOID_ID
        present = tuple(int(v) for v in np.unique(pred) if v != 0)
        if present and present[-1] > opts.max_proposals:
            raise ValueError(
                f"{self.sequence}/{name}: prediction has id(s) "
                f"{[v for v in present if v > opts.max_proposals]}"
                f"; the unsupervised protocol allows ids 1..{opts.max_proposals}"
            )
        blank = np.zeros_like(void)
        empty = np.zeros((len(objects), 4))
        scores = {j: np.zeros((len(objects), 4)) for j in present}
        extras: dict[tuple[int, int], dict[str, float]] = {}
        want_extras = bool(self._extras)
        masks = {j: pred == j for j in present}
        for c, k in enumerate(objects):
            g = gt == k
            empty[c] = jaccard_and_boundary(g, blank, void, opts.bound_th)
            for j in present:
                scores[j][c] = jaccard_and_boundary(g, masks[j], void, opts.bound_th)
            if want_extras:
                extras[(0, c)] = _extra_scores(g, np.zeros(gt.shape, bool), self._extras, opts)
                for j in present:
                    extras[(j, c)] = _extra_scores(g, masks[j], self._extras, opts)
        return FrameScores(index, name, present=present, scores=scores, empty=empty, extras=extras)

    # ---- accumulation ----------------------------------------------------------------------
    def add(self, frame: FrameScores) -> None:
        """Accumulate one frame's scores (frames in increasing index order)."""
        if self.options.protocol == "semi-supervised":
            self._rows.extend(frame.rows)
        else:
            self._n_pred = max(self._n_pred, frame.present[-1] if frame.present else 0)
            self._frame_scores.append(frame)
        if frame.descriptors is not None:
            if self._previous is not None:
                # One value per consecutive interior pair and id (NaN where either side has no
                # contour), as temporal_stability_pairs gives them, so the nanmean is the same.
                for k in set(self._previous) | set(frame.descriptors):
                    values = self._t_values.setdefault(k, [])
                    values.extend([float("nan")] * (self._n_pairs - len(values)))
                    cost = descriptor_matching_cost(self._previous.get(k), frame.descriptors.get(k))
                    values.append(T_SCALE * cost)
                self._n_pairs += 1
            self._previous = frame.descriptors

    def _t_of(self, pred_id: int) -> float:
        """DAVIS-2016 T of one predicted id over the interior frames (NaN without any pair)."""
        values = np.full(self._n_pairs, np.nan)
        known = self._t_values.get(pred_id, []) if pred_id else []
        values[: len(known)] = known
        if values.size == 0 or np.all(np.isnan(values)):
            return float("nan")
        return float(np.nanmean(values))

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (columns :data:`ROW_COLUMNS` plus the asked extras and ``T``)."""
        if self.options.protocol == "semi-supervised":
            rows = self._rows
        else:
            rows = self._unsupervised_rows()
        if self._want_t:
            for row in rows:
                row["T"] = self._t_of(row["pred_object"])
        return rows

    def _unsupervised_rows(self) -> list[dict[str, Any]]:
        frames, objects = self._frame_scores, self.objects
        n_gt, n_frames, n_pred = len(objects), len(frames), self._n_pred
        if n_gt == 0 or n_frames == 0:
            return []
        n_rows = max(n_pred, n_gt)
        empties = cast("list[np.ndarray]", [f.empty for f in frames])  # set on every one here
        table = np.repeat(np.stack(empties)[None], n_rows, axis=0)
        for t, frame in enumerate(frames):
            for j, values in frame.scores.items():
                table[j - 1, t] = values
        mean_jf = (table[..., 0].mean(axis=1) + table[..., 3].mean(axis=1)) / 2
        pred_rows, gt_cols = hungarian_match(mean_jf)
        rows = []
        for r, c in sorted(zip(pred_rows, gt_cols, strict=True), key=lambda rc: rc[1]):
            pred_id = int(r) + 1 if r < n_pred else 0  # 0: padding, no prediction left
            for t, frame in enumerate(frames):
                j, precision, recall, f = table[r, t, c]
                row: dict[str, Any] = {"sequence": self.sequence, "frame": frame.name}
                row |= {"frame_index": frame.index, "object": objects[c], "pred_object": pred_id}
                row |= {"J": j, "F": f, "precision": precision, "recall": recall}
                if frame.extras:
                    key = pred_id if pred_id in frame.scores else 0
                    row |= frame.extras[(key, c)]
                rows.append(row)
        return rows
