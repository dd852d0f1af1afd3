"""The files of one run (or shared stage) folder, and atomic writers for them.

Layout of ``results/<grid>/runs/<run_id>/`` (and ``results/<grid>/<stage dir>/<stage_id>/``)::

    params.json        the run's parameters (for a shared stage: the parameters it was given)
    run.json           provenance: ids, identity (what the result depends on, see identity.py),
                       sha256 of every output file, code version, host, timings
    <notebook>.ipynb   the executed notebook (kept, partial, when the run failed)
    metrics.csv        tidy rows, written by the notebook (``write_run_outputs``)
    summary.json       one flat-ish dict of headline numbers, written by the notebook
    *.png              images the notebook saves (e.g. ``qualitative.png``)
    status             "running", then "done", "failed" or "interrupted" (Ctrl-C); with
                       run.json's checksums, the only truth about completion
    traceback.txt      why a failed run failed

Every file is written atomically (temp + rename), and ``status`` is written last, so an
interrupted sweep never leaves a folder that looks complete.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from endobench.io_utils import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    sha256_file,
)

PARAMS_FILE = "params.json"
RUN_INFO_FILE = "run.json"
STATUS_FILE = "status"
TRACEBACK_FILE = "traceback.txt"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
QUALITATIVE_IMAGE = "qualitative.png"

DONE, FAILED, RUNNING, PENDING = "done", "failed", "running", "pending"
INTERRUPTED = "interrupted"
# Files a new attempt removes first, so that nothing from a previous attempt looks current.
OUTPUT_FILES = (STATUS_FILE, TRACEBACK_FILE, METRICS_FILE, SUMMARY_FILE)
# Files of a folder that are bookkeeping, not results: never checksummed.
_BOOKKEEPING = {STATUS_FILE, TRACEBACK_FILE, RUN_INFO_FILE, PARAMS_FILE}


def read_status(run_dir: str | Path) -> str:
    """``done`` / ``failed`` / ``interrupted`` / ``running`` (in progress, or its process was
    killed), ``pending`` if none."""
    path = Path(run_dir) / STATUS_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or PENDING
    except FileNotFoundError:
        return PENDING


def write_status(run_dir: str | Path, status: str, traceback: str | None = None) -> None:
    """Record ``status``; for ``failed`` the traceback goes to traceback.txt first."""
    run_dir = Path(run_dir)
    if traceback is not None:
        atomic_write_text(run_dir / TRACEBACK_FILE, traceback)
    atomic_write_text(run_dir / STATUS_FILE, status + "\n")


def clear_outputs(run_dir: str | Path) -> None:
    """Remove the status and outputs of a previous attempt (the notebook is overwritten)."""
    for name in OUTPUT_FILES:
        (Path(run_dir) / name).unlink(missing_ok=True)


def write_run_outputs(
    run_dir: str | Path,
    metrics: pd.DataFrame,
    summary: dict[str, Any],
    images: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a notebook's results into its run folder (atomically); returns the folder.

    metrics: tidy rows (any columns) -> ``metrics.csv``.
    summary: headline numbers, JSON-serialisable (numpy scalars allowed) -> ``summary.json``.
    images: name -> ``H x W x 3`` uint8 RGB (or ``H x W`` uint8) -> ``<name>.png``.
    """
    from PIL import Image

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, array in (images or {}).items():
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
        atomic_write_bytes(run_dir / f"{name}.png", buffer.getvalue())
    atomic_write_text(run_dir / METRICS_FILE, metrics.to_csv(index=False))
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    return run_dir


def output_checksums(run_dir: str | Path) -> dict[str, str]:
    """sha256 of every result file under ``run_dir`` (relative path -> hex digest).

    Left out: bookkeeping (status, run.json, params.json, traceback.txt), hidden files (locks,
    temporaries) and the executed notebook (a log of the run, not a result).
    """
    run_dir = Path(run_dir)
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if (
            not path.is_file()
            or any(part.startswith(".") for part in rel.parts)
            or str(rel) in _BOOKKEEPING
            or path.suffix == ".ipynb"
        ):
            continue
        out[str(rel)] = sha256_file(path)
    return out


def output_problem(run_dir: str | Path, recorded: dict[str, str] | None) -> str | None:
    """Why the recorded outputs of ``run_dir`` cannot be trusted, or None when they verify."""
    if not recorded:
        return "no recorded output checksums (run by an older endobench)"
    run_dir = Path(run_dir)
    for name, sha in sorted(recorded.items()):
        path = run_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256_file(path) != sha:
            return f"{name} does not match its recorded sha256 (truncated or modified)"
    return None
