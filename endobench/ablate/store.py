"""The results store: every run of a sweep as one row of a tidy DataFrame.

Columns, in order: ``run_id``, ``status`` (done / failed / running / pending), the run's
parameters, ``<stage>_id`` for each stage, the headline numbers of every stage's summary.json
(nested dicts flattened with dots, e.g. ``weights.sha256``; an upstream key that the last stage
also reports is kept as ``<stage>.<key>``), then provenance: ``code.endobench``,
``code.git_commit``, ``code.git_dirty`` (uncommitted code changes, not notebook outputs),
``notebook_code_sha256``, ``identity_sha256`` (see endobench.ablate.identity), ``seconds`` (sum over stages),
and ``error`` (first line of the traceback of a failed run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from endobench.ablate import run_files as rf
from endobench.ablate.plan import PLAN_FILE, RUNS_DIR
from endobench.errors import UserError


class SweepFolderError(UserError, FileNotFoundError):
    """A folder given as a sweep's results is not one (no plan.json)."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def load_plan(grid_dir: str | Path) -> dict[str, Any]:
    """The sweep's plan.json (axes, stages, runs); error naming the file if it is missing."""
    path = Path(grid_dir) / PLAN_FILE
    if not path.is_file():
        raise SweepFolderError(
            f"{path}: not found (resolved: {path.resolve()}); expected a sweep folder written by "
            "`endobench ablate`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _error_line(run_dir: Path) -> str | None:
    try:
        lines = (run_dir / rf.TRACEBACK_FILE).read_text(encoding="utf-8").strip().splitlines()
    except FileNotFoundError:
        return None
    # The most telling line of a Python traceback is its last one ("KeyError: 'x'").
    return lines[-1] if lines else None


def stage_dir(
    grid_dir: str | Path, plan: dict[str, Any], run: dict[str, Any], stage: dict[str, Any]
) -> Path:
    """The folder of ``stage``'s outputs for ``run``: the run folder for the last stage, else the
    stage's shared folder (``<grid>/<stage dir>/<stage id>``)."""
    if stage["name"] == plan["stages"][-1]["name"]:
        return Path(grid_dir) / RUNS_DIR / run["run_id"]
    return Path(grid_dir) / stage["dir"] / run["stage_ids"][stage["name"]]


def _run_row(grid_dir: Path, plan: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    stages = plan["stages"]
    row: dict[str, Any] = {"run_id": run["run_id"]}
    run_dir = grid_dir / RUNS_DIR / run["run_id"]
    row["status"] = rf.read_status(run_dir)
    row.update(
        {
            k: v if not isinstance(v, list | dict) else json.dumps(v)
            for k, v in run["params"].items()
        }
    )
    row.update({f"{s['name']}_id": run["stage_ids"][s["name"]] for s in stages})
    metrics: dict[str, Any] = {}
    origin: dict[str, str] = {}  # metric -> stage that reported it
    seconds = 0.0
    info: dict[str, Any] = {}
    for stage in stages:
        folder = stage_dir(grid_dir, plan, run, stage)
        for key, value in _flatten(_read_json(folder / rf.SUMMARY_FILE)).items():
            if key in metrics:  # the later stage's value wins; keep the earlier one prefixed
                metrics[f"{origin[key]}.{key}"] = metrics[key]
            metrics[key] = value
            origin[key] = stage["name"]
        stage_info = _read_json(folder / rf.RUN_INFO_FILE)
        seconds += float(stage_info.get("seconds", 0.0))
        info = stage_info or info
    row.update(metrics)
    code = info.get("code", {})
    row.update({f"code.{k}": code.get(k) for k in ("endobench", "git_commit", "git_dirty")})
    row["notebook_code_sha256"] = info.get("notebook_code_sha256")
    row["identity_sha256"] = info.get("identity_sha256")
    row["seconds"] = seconds
    row["error"] = _error_line(run_dir) if row["status"] == rf.FAILED else None
    return row


def load_results(grid_dir: str | Path) -> pd.DataFrame:
    """All runs of the sweep in ``grid_dir`` (``results/<grid>``), one row each, plan order."""
    grid_dir = Path(grid_dir)
    plan = load_plan(grid_dir)
    rows = [_run_row(grid_dir, plan, run) for run in plan["runs"]]
    return pd.DataFrame(rows)
