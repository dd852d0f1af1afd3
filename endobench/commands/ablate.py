"""`endobench ablate CONFIG`: run a grid of notebooks (resumable, parallel), then its report."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from endobench.errors import UserError

if TYPE_CHECKING:
    from endobench.ablate.grid import GridConfig
    from endobench.ablate.plan import SweepPlan


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``endobench ablate``."""
    parser = subparsers.add_parser(
        "ablate",
        help="run an ablation grid of notebooks with papermill, then write its report",
        description=(
            "Expand the grid in CONFIG, execute every run's notebooks into "
            "RESULTS/<grid>/runs/<run_id>/ (skipping runs already done), then write "
            "RESULTS/<grid>/report.md."
        ),
    )
    parser.add_argument("config", type=Path, help="grid YAML file, e.g. configs/demo.yaml")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=(
            "parallel workers (1: in this process; more: a Dask LocalCluster, one GPU each); "
            "default: one per GPU, else one per CPU core up to 4"
        ),
    )
    parser.add_argument(
        "--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786"
    )
    parser.add_argument("--rerun-failed", action="store_true", help="execute failed runs again")
    parser.add_argument("--dry-run", action="store_true", help="print the expanded grid and exit")
    parser.add_argument(
        "--results", type=Path, default=Path("results"), help="results root (default: results)"
    )
    parser.add_argument("--no-report", action="store_true", help="do not write the report")
    parser.set_defaults(func=run)


def plan_table(plan: SweepPlan) -> pd.DataFrame:
    """One row per run: id, status on disk, axis values and the ids of shared stages."""
    from endobench.ablate.run_files import read_status

    rows = []
    for r in plan.runs:
        row = {"run_id": r.run_id, "status": read_status(r.run_dir)}
        row.update({k: r.params[k] for k in plan.grid.axes})
        row.update({f"{t.stage}_id": t.stage_id for t in r.tasks[:-1]})
        rows.append(row)
    return pd.DataFrame(rows)


def default_workers() -> int:
    """One worker per GPU when GPUs exist, else one per CPU core, at most 4."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return max(1, min(4, os.cpu_count() or 1))


def run(args: argparse.Namespace) -> int:
    """Run the sweep; exit code 0 if every run is done, 1 if some failed, 2 on a bad config."""
    from endobench.ablate import jit_warmup, load_grid

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected an integer >= 1")
    existing = next(p for p in (args.results, *args.results.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(
            f"--results {args.results}: {existing} is a file, expected a folder for the results"
        )
    grid = load_grid(args.config)
    # numba kernels compile in the background while the planner works (on a scheduler's workers
    # they compile on their own machines)
    with jit_warmup.in_background(not (args.dry_run or args.scheduler)):
        return _plan_run_report(args, grid)


def _plan_run_report(args: argparse.Namespace, grid: GridConfig) -> int:
    """Plan ``grid``, run what is not done, write the report; ``run``'s exit code."""
    from endobench.ablate import plan_sweep, run_sweep

    if args.workers is None:
        args.workers = 1 if args.scheduler else default_workers()  # (imports torch)
    plan = plan_sweep(grid, args.results)  # validates every run: nothing runs on a bad value
    if args.dry_run:
        table = plan_table(plan)
        print(f"grid {grid.name!r}: {len(plan.runs)} runs, {len(plan.tasks)} notebook executions")
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(table.to_string(index=False))
        return 0
    result = run_sweep(
        grid,
        args.results,
        plan=plan,
        workers=args.workers,
        scheduler=args.scheduler,
        rerun_failed=args.rerun_failed,
    )
    statuses = result.run_statuses()
    failed = sorted(k for k, s in statuses.items() if s != "done")
    done = len(statuses) - len(failed)
    print(f"{grid.name}: {done}/{len(statuses)} runs done in {result.plan.grid_dir}")
    for rid in failed:
        print(f"  {rid}: {statuses[rid]} (see {result.plan.grid_dir / 'runs' / rid})")
    if any(statuses[rid] == "failed" for rid in failed) and not args.rerun_failed:
        print("  (failed runs are kept; add --rerun-failed to execute them again)")
    if not args.no_report and done:
        from endobench.report import write_report

        print(f"report: {write_report(result.plan.grid_dir)}")
    return 1 if failed else 0
