"""A sweep's runs for the report: typed summaries checked, numbers averaged over seeds.

The summary.json of each stage of a shipped notebook is read through its model, chosen by the
notebook's file name as the sweep planner chooses parameter models: ``02_train_segmentation``
-> :class:`~endobench.training.summary.TrainingSummary`, ``03_propagate_track`` ->
:class:`~endobench.propagation.summary.TrackingSummary`. A misspelt key or a wrongly typed value
in a finished run stops the report with a :class:`~endobench.propagation.summary.SummaryError`
naming the file and the field, instead of a column that silently never appears. Other
notebooks' summaries are taken as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from endobench.ablate.plan import RUNS_DIR
from endobench.ablate.run_files import DONE, SUMMARY_FILE, read_status
from endobench.ablate.store import stage_dir
from endobench.propagation.summary import TrackingSummary, read_summary
from endobench.training.summary import TrainingSummary

#: Notebook file name (stem) -> the model its summary.json is read with.
SUMMARY_MODELS: dict[str, type[BaseModel]] = {
    "02_train_segmentation": TrainingSummary,
    "03_propagate_track": TrackingSummary,
}


def summary_model(notebook: str) -> type[BaseModel] | None:
    """The summary model of a stage's notebook (a path), None for a notebook without one."""
    return SUMMARY_MODELS.get(Path(notebook).stem)


def check_summaries(grid_dir: str | Path, plan: dict[str, Any]) -> int:
    """Validate the summary.json of every stage of every finished run that has a model;
    returns how many files were checked. Raises SummaryError naming the file and the field."""
    checked: set[Path] = set()
    for run in plan["runs"]:
        if read_status(Path(grid_dir) / RUNS_DIR / run["run_id"]) != DONE:
            continue
        for stage in plan["stages"]:
            model = summary_model(stage["notebook"])
            path = stage_dir(grid_dir, plan, run, stage) / SUMMARY_FILE
            if model is not None and path not in checked:
                read_summary(path, model)
                checked.add(path)
    return len(checked)


def aggregate(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and sample std (ddof=1) of ``metrics`` per group of ``by`` (first-seen order).

    Returns columns ``by``, ``n`` (rows per group), ``<metric>_mean``, ``<metric>_std``
    (NaN for a group of one).
    """
    by = list(by)
    grouped = df.groupby(by, sort=False, dropna=False) if by else [((), df)]
    rows = []
    for key, group in grouped:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True)) | {"n": len(group)}
        for m in metrics:
            values = pd.to_numeric(group[m], errors="coerce").dropna()
            row[f"{m}_mean"] = values.mean() if len(values) else math.nan
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
