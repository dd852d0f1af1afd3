"""Ablations: grid expansion, run ids, papermill runner, executors, results store."""

from endobench.ablate.grid import GridConfig, GridConfigError, expand_grid, load_grid, run_id
from endobench.ablate.plan import SweepPlan, plan_sweep
from endobench.ablate.run_files import read_status, write_run_outputs
from endobench.ablate.runner import SweepResult, run_sweep
from endobench.ablate.store import load_results

__all__ = [
    "GridConfig",
    "GridConfigError",
    "SweepPlan",
    "SweepResult",
    "expand_grid",
    "load_grid",
    "load_results",
    "plan_sweep",
    "read_status",
    "run_id",
    "run_sweep",
    "write_run_outputs",
]
