"""Plan a sweep: split every run of a grid into stage tasks, sharing identical upstream stages.

Each stage notebook receives only the grid parameters it declares in its ``parameters`` cell
(read with ``papermill.inspect_notebook``), plus ``run_dir`` and its ``inputs``. An upstream
stage's id hashes exactly what it receives, so runs that differ only in parameters of later
stages (e.g. the keyframe policy) share one upstream folder: a 3-policy sweep trains each model
once, under ``results/<grid>/<stage dir>/<stage_id>/``. The last stage of run ``r`` writes into
``results/<grid>/runs/<run_id(r)>/``.

Planning validates every task's parameters (``endobench.ablate.stage_params``) and computes its
identity (``endobench.ablate.identity``), so a bad value or an unknown dataset stops the sweep
before any kernel starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endobench.ablate.grid import GridConfig, GridConfigError, expand_grid, run_id
from endobench.ablate.identity import IdentityResolver, digest
from endobench.ablate.papermill_import import papermill
from endobench.ablate.stage_params import stage_cost, validate_stage_params

RUNS_DIR = "runs"
GRID_FILE = "grid.yaml"
PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class StageTask:
    """One notebook execution: ``params`` (without ``run_dir``) into ``out_dir``."""

    stage: str
    stage_id: str
    notebook: Path
    out_dir: Path
    params: dict[str, Any]
    record: dict[str, Any]  # written to params.json (the full run for the last stage)
    upstream: tuple[Path, ...] = ()
    identity: dict[str, Any] = field(default_factory=dict)  # see endobench.ablate.identity
    cost: float = 0.0  # estimated compute, for scheduling (endobench.ablate.stage_params)

    @property
    def key(self) -> str:
        """Unique name of the task within a sweep."""
        return f"{self.stage}-{self.stage_id}"


@dataclass
class PlannedRun:
    """One run of the grid: its parameters and the tasks (one per stage, in order)."""

    run_id: str
    params: dict[str, Any]
    tasks: list[StageTask]

    @property
    def run_dir(self) -> Path:
        return self.tasks[-1].out_dir


@dataclass
class SweepPlan:
    """All runs of a grid and the distinct stage tasks they need (upstream tasks first)."""

    grid: GridConfig
    grid_dir: Path
    runs: list[PlannedRun]
    tasks: dict[str, StageTask] = field(default_factory=dict)
    stage_params: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON record of the plan (saved as plan.json; read by the store and the report)."""
        return {
            "grid": self.grid.name,
            "axes": {k: v for k, v in self.grid.axes.items()},
            "fixed": self.grid.fixed,
            "stages": [
                {
                    "name": s.name,
                    "notebook": str(self.grid.notebook_path(s)),
                    "dir": _stage_dir(s.name, s.dir, last=s is self.grid.stages[-1]),
                    "params": self.stage_params[s.name],
                }
                for s in self.grid.stages
            ],
            "runs": [
                {
                    "run_id": r.run_id,
                    "params": r.params,
                    "stage_ids": {t.stage: t.stage_id for t in r.tasks},
                }
                for r in self.runs
            ],
        }


def _describe(grid: GridConfig, params: dict[str, Any]) -> str:
    """``backbone=resnet50, policy=first``: the axis values of a run."""
    return ", ".join(f"{k}={params[k]}" for k in grid.axes) or "the only run"


def _stage_dir(name: str, dir_name: str | None, last: bool) -> str:
    return RUNS_DIR if last else (dir_name or name)


def notebook_parameters(path: Path) -> list[str]:
    """Names declared in a notebook's cell tagged ``parameters`` (error if it has none)."""
    pm = papermill()  # imported on first use: slow to import

    declared = list(pm.inspect_notebook(str(path)))
    if "run_dir" not in declared:
        raise GridConfigError(
            f"{path}: expected a cell tagged 'parameters' declaring run_dir (found {declared})"
        )
    return declared


def plan_sweep(grid: GridConfig, results_root: str | Path) -> SweepPlan:
    """Expand ``grid`` into runs and stage tasks under ``results_root/<grid.name>/``."""
    grid_dir = (Path(results_root) / grid.name).resolve()
    where = str(grid.source or "<grid>")
    declared = {s.name: notebook_parameters(grid.notebook_path(s)) for s in grid.stages}
    used = set()
    stage_params: dict[str, list[str]] = {}
    for stage in grid.stages:
        names = declared[stage.name]
        for param in stage.inputs:
            if param not in names:
                raise GridConfigError(
                    f"{where}: field 'stages.{stage.name}.inputs.{param}': expected a parameter "
                    f"of {grid.notebook_path(stage).name} (it declares {names})"
                )
        stage_params[stage.name] = [p for p in names if p in grid.parameter_names]
        used.update(stage_params[stage.name])
    for key in sorted(grid.parameter_names - used):
        section = "axes" if key in grid.axes else "fixed"
        raise GridConfigError(
            f"{where}: field '{section}.{key}': expected a parameter declared by one of the "
            f"stage notebooks ({', '.join(f'{n}: {v}' for n, v in declared.items())})"
        )

    plan = SweepPlan(grid=grid, grid_dir=grid_dir, runs=[], stage_params=stage_params)
    resolver = IdentityResolver()
    for params in expand_grid(grid):
        rid = run_id(params)
        tasks: list[StageTask] = []
        by_name: dict[str, StageTask] = {}
        for stage in grid.stages:
            last = stage is grid.stages[-1]
            given = {k: params[k] for k in stage_params[stage.name]}
            inputs = {}
            for param, ref in stage.inputs.items():
                upstream_name, _, rel = ref.partition("/")
                up_dir = by_name[upstream_name].out_dir
                inputs[param] = str(up_dir / rel) if rel else str(up_dir)
            # Stages run in pipeline order: each depends on every earlier stage of its run, and
            # their ids enter its hash, so a stage is shared only if its whole past is too.
            sid = (
                rid
                if last
                else run_id(
                    {"stage": stage.name, "params": given, "after": [t.stage_id for t in tasks]}
                )
            )
            key = f"{stage.name}-{sid}"
            if key in plan.tasks:  # shared with an earlier run: same inputs, same identity
                task = plan.tasks[key]
                by_name[stage.name] = task
                tasks.append(task)
                continue
            notebook = grid.notebook_path(stage)
            received = {**resolver.notebook(notebook)[1], **given, **inputs}
            validate_stage_params(
                notebook,
                received,
                f"{where}: run {rid} ({_describe(grid, params)}), stage {stage.name}",
            )
            # Inputs enter the identity relative to the sweep folder: moving results/ keeps it.
            relative = {k: str(Path(v).relative_to(grid_dir)) for k, v in inputs.items()}
            identity = resolver.stage(
                notebook, {**given, **relative}, [digest(t.identity) for t in tasks]
            )
            task = StageTask(
                stage=stage.name,
                stage_id=sid,
                notebook=notebook,
                out_dir=grid_dir / _stage_dir(stage.name, stage.dir, last) / sid,
                params={**given, **inputs},
                record=params if last else {**given, **inputs},
                upstream=tuple(t.out_dir for t in tasks),
                identity=identity,
                cost=stage_cost(notebook, received),
            )
            plan.tasks[task.key] = task
            by_name[stage.name] = task
            tasks.append(task)
        plan.runs.append(PlannedRun(run_id=rid, params=params, tasks=tasks))
    # Upstream stages first (insertion order is run order; sort is stable).
    order = {s.name: i for i, s in enumerate(grid.stages)}
    plan.tasks = dict(sorted(plan.tasks.items(), key=lambda kv: order[kv[1].stage]))
    return plan
