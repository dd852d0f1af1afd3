"""Ground-truth-keyframe reference tracks (notebook 03 ``reference: true``), computed once a sweep.

A tracking run with ``reference: true`` also tracks its clips from ground-truth keyframes with
its keyframe policy, carried by copy, forward flow and bidirectional flow. Those three tracks do
not depend on the run's model, so in a sweep every run with the same clips and policy would
compute the same three tracks (the demo grid: 12 runs, 3 policies). :func:`reference_scores`
keeps each reference's score in ``cache_dir`` under a key of everything it depends on:

- the reference (method, propagation spec, keyframe policy, bidirectional) and the tracking
  options (flow confidence, device, the sha256 of a local weights file);
- the clips' content: name, frame names, annotated frames, classes, void id, field-of-view mask
  and the sha256 of every frame and mask as read;
- the code: the sha256 of every ``.py`` file of the imported ``endobench`` package and the
  versions of numpy, OpenCV, numba, scipy and torch.

So a changed input or a code edit gives a new key, never a stale score. An entry is one JSON file
``<key>.json`` with the score and the sha256 of its canonical JSON, written atomically; an entry
that does not parse or does not match its sha256 is computed again. A lock file per key makes
concurrent kernels wait for the one computing it. A reused entry carries the cost
(``seconds_per_frame``) measured when it was computed. Without ``cache_dir`` nothing is shared.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

import endobench
from endobench.ablate.identity import digest
from endobench.data.clip import Clip
from endobench.io_utils import atomic_write_json, sha256_file
from endobench.propagation.summary import ReferenceMethod, ReferenceScore, reference_score

FORMAT_VERSION = 1
FLOW_NAMES = {"dis": "DIS", "farneback": "Farneback", "raft_small": "RAFT-small"}


def reference_methods(propagation: str) -> list[tuple[ReferenceMethod, str, str, bool]]:
    """(method, label, propagation spec, bidirectional) of the three references of a run whose
    own propagation is ``propagation`` (its flow when it is one, else DIS)."""
    flow = propagation if propagation.startswith("flow") else "flow:dis"
    name = FLOW_NAMES.get(flow.split(":")[1], flow)
    return [
        ("copy", "gt keyframes + copy", "copy", False),
        ("forward", f"gt keyframes + forward {name}", flow, False),
        ("bidirectional", f"gt keyframes + bidirectional {name}", flow, True),
    ]


def reference_scores(
    clips: Sequence[Clip],
    propagation: str,
    policy: str,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> dict[ReferenceMethod, ReferenceScore]:
    """Score the copy / forward / bidirectional references of ``clips`` under ``policy``.

    ``options`` go to ``track_and_score`` (``flow_confidence``, ``weights``, ``device``,
    ``progress``). With ``cache_dir``, each score is read from there when its key (see the module
    docstring) is present and computed and stored otherwise.
    """
    methods = reference_methods(propagation)
    if cache_dir is None:
        return {
            m: _score(clips, spec, policy, bidi, label, options) for m, label, spec, bidi in methods
        }
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    base = {
        "format": FORMAT_VERSION,
        "policy": policy,
        "options": _options_record(options),
        "clips": [clip_digest(c) for c in clips],
        "code": code_digest(),
    }
    out: dict[ReferenceMethod, ReferenceScore] = {}
    for method, label, spec, bidi in methods:
        key = digest({**base, "method": method, "label": label, "spec": spec, "bidi": bidi})
        path = root / f"{key}.json"
        with _locked(root / f".{key}.lock"):
            score = read_entry(path)
            if score is None:
                score = _score(clips, spec, policy, bidi, label, options)
                write_entry(path, score)
        out[method] = score
    return out


def _score(
    clips: Sequence[Clip], spec: str, policy: str, bidi: bool, label: str, options: dict[str, Any]
) -> ReferenceScore:
    from endobench.metrics import summarize
    from endobench.propagation import track_and_score

    results, rows = track_and_score(clips, spec, policy, bidirectional=bidi, **options)
    return reference_score(label, summarize(rows), results)


def read_entry(path: Path) -> ReferenceScore | None:
    """The score stored at ``path``; None when missing, unreadable or not matching its sha256."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        score = entry["score"]
        if entry["sha256"] != digest(score):
            return None
        return ReferenceScore.model_validate(score)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_entry(path: Path, score: ReferenceScore) -> None:
    """Store ``score`` at ``path`` atomically, with the sha256 of its canonical JSON."""
    body = score.model_dump(mode="json", by_alias=True)
    atomic_write_json(path, {"score": body, "sha256": digest(body)})


def clip_digest(clip: Clip) -> str:
    """sha256 of what a track of ``clip`` reads: its description, every frame and every mask."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            [clip.name, clip.frame_names, clip.annotated, clip.classes, clip.void_id],
            sort_keys=True,
            default=str,
        ).encode("utf-8")
    )
    arrays = [clip.fov_mask] if clip.fov_mask is not None else []
    for array in (*arrays, *_pixels(clip)):
        h.update(repr((array.shape, array.dtype.str)).encode("ascii"))
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _pixels(clip: Clip) -> Iterator[np.ndarray]:
    for t in range(len(clip)):
        yield clip.frame(t)
        mask = clip.mask(t)
        if mask is not None:
            yield mask


@cache
def code_digest() -> str:
    """sha256 of every ``.py`` file of the imported endobench package and the numeric libraries'
    versions (computed once per process)."""
    import cv2
    import numba
    import scipy
    import torch

    root = Path(endobench.__file__).resolve().parent
    files = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*.py"))}
    versions = {
        "numpy": np.__version__,
        "cv2": cv2.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
    }
    return digest({"files": files, "versions": versions})


def _options_record(options: dict[str, Any]) -> dict[str, Any]:
    record = {k: v for k, v in options.items() if k != "progress"}
    weights = record.get("weights")
    if weights:
        path = Path(str(weights)).expanduser()
        record["weights"] = {"file": str(path), "sha256": sha256_file(path)}
    return record


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
