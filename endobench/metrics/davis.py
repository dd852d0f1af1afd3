"""DAVIS statistics (mean, recall, decay) and the two DAVIS protocols' frame/object rules.

Protocols (docs/METRICS.md):

- ``semi-supervised`` (DAVIS 2017 default): objects are ids ``1..max`` of the FIRST ground-truth
  frame (void 255 -> 0); every frame but the first and the last is scored; void counts as
  background; a predicted id above the object count is an error.
- ``unsupervised``: every frame is scored with void pixels excluded; up to 20 predicted ids are
  matched one-to-one to ground-truth objects by the Hungarian method on the mean over frames of
  ``(J + F) / 2``. Rows are reported under the ground-truth id (the reference toolkit numbers
  them by the matched proposals' order instead; the per-object set of values is the same).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

Protocol = Literal["semi-supervised", "unsupervised"]
PROTOCOLS: tuple[str, ...] = ("semi-supervised", "unsupervised")
VOID_ID = 255
#: Most predicted ids the unsupervised protocol accepts (DAVIS 2017 challenge rule).
MAX_PROPOSALS = 20
DECAY_BINS = 4


def decay_bin_edges(n: int) -> np.ndarray:
    """Start indices of the decay bins plus the last index: ``round(linspace(1, n, 5)) - 1``.

    int64, so correct for any ``n``. The DAVIS 2017 toolkit stores these as uint8, which wraps
    for ``n >= 256`` and makes its decay NaN or wrong; this is endobench's one documented
    deviation from it (identical for ``n < 256``). ``+ 1e-10`` makes ``.5`` round up.
    """
    return np.round(np.linspace(1, n, DECAY_BINS + 1) + 1e-10).astype(np.int64) - 1


def db_statistics(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """DAVIS statistics of one object's per-frame scores (J or F) over the scored frames.

    ``mean`` = nanmean; ``recall`` = share of frames with a score strictly above 0.5 (NaN
    counts as not above); ``decay`` = nanmean of the first quarter minus nanmean of the last,
    on bins ``v[e[i] : e[i+1] + 1]`` (neighbouring bins share a frame), see
    :func:`decay_bin_edges`. No frames: all NaN.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return {"mean": float("nan"), "recall": float("nan"), "decay": float("nan")}
    edges = decay_bin_edges(v.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN bins give NaN
        mean = np.nanmean(v)
        first = np.nanmean(v[edges[0] : edges[1] + 1])
        last = np.nanmean(v[edges[DECAY_BINS - 1] : edges[DECAY_BINS] + 1])
    return {"mean": float(mean), "recall": float(np.mean(v > 0.5)), "decay": float(first - last)}


def check_protocol(protocol: str) -> str:
    """The protocol name, validated."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol


def scored_frames(n_frames: int, protocol: str) -> range:
    """Indices of the frames a protocol scores: all but first and last (semi) or all (unsup)."""
    if check_protocol(protocol) == "semi-supervised":
        return range(1, n_frames - 1)
    return range(n_frames)


def object_ids(first_gt: np.ndarray) -> list[int]:
    """Ground-truth objects: ``1..max id`` of the first frame, void (255) not an object."""
    labels = np.where(first_gt == VOID_ID, 0, first_gt)
    return list(range(1, int(labels.max(initial=0)) + 1))


def hungarian_match(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-score one-to-one matching of predicted ids (rows) to objects (columns).

    ``scores``: ``n_pred x n_gt`` mean ``(J + F) / 2``. Returns ``(pred_rows, gt_cols)``, the
    rows sorted; with fewer predictions than objects the caller pads with empty predictions.
    """
    rows, cols = linear_sum_assignment(-np.asarray(scores, dtype=np.float64))
    return rows, cols
