"""Benchmark the ablation layer: planning, per-notebook overhead, resume, store and report.

Prints JSON (medians over ``--repeats``):
- ``plan_paper_s``: expand + plan configs/paper.yaml (720 runs, 864 notebook executions);
- ``run_ids_per_s``: run ids hashed per second;
- ``notebook_overhead_s``: wall time per trivial notebook through the runner (kernel start,
  papermill, status files), in-process executor;
- ``resume_noop_s``: a rerun of that finished sweep (everything skipped);
- ``store_720_runs_s`` / ``report_720_runs_s``: load_results / write_report on a fake sweep
  folder the size of paper.yaml.

    python bench/bench_ablate.py [--repeats 3] [--notebooks 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

from endobench.ablate import load_grid, load_results, plan_sweep, run_id, run_sweep
from endobench.ablate.run_files import write_run_outputs, write_status
from endobench.report import write_report

REPO = Path(__file__).resolve().parents[1]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _trivial_grid(root: Path, n: int) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell('run_dir = ""\ni = 0', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import pandas as pd\nfrom endobench.ablate import write_run_outputs\n"
            "write_run_outputs(run_dir, pd.DataFrame({'i': [i]}), {'i': i})"
        ),
    ]
    nbformat.write(nb, root / "nb.ipynb")
    grid = {
        "name": "bench",
        "stages": [{"name": "s", "notebook": "nb.ipynb"}],
        "axes": {"i": list(range(n))},
    }
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def _fake_paper_sweep(root: Path) -> Path:
    """plan.json + summaries for every run of paper.yaml (no notebooks executed)."""
    plan = plan_sweep(load_grid(REPO / "configs" / "paper.yaml"), root)
    plan.grid_dir.mkdir(parents=True)
    (plan.grid_dir / "plan.json").write_text(json.dumps(plan.to_dict()))
    rng = np.random.default_rng(0)
    for task in plan.tasks.values():
        summary = {"dice": float(rng.random())} if task.stage == "train" else {
            "J&F-Mean": float(rng.random()), "T-Mean": float(rng.random()),
            "keyframes_per_100": float(rng.integers(1, 100)),
        }  # fmt: skip
        write_run_outputs(task.out_dir, pd.DataFrame({"x": [0]}), summary)
        write_status(task.out_dir, "done")
    return plan.grid_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--notebooks", type=int, default=4)
    args = parser.parse_args()
    paper = load_grid(REPO / "configs" / "paper.yaml")
    out: dict = {
        "benchmark": "ablation_layer",
        "comparison": "none: absolute times of planning, runner overhead, resume, store, report",
    }
    with tempfile.TemporaryDirectory() as tmp:
        out["plan_paper_s"] = _median_time(lambda: plan_sweep(paper, tmp), args.repeats)
        params = [{"backbone": "dinov2_vitl14", "seed": i, "lr": 1e-3} for i in range(10_000)]
        out["run_ids_per_s"] = len(params) / _median_time(
            lambda: [run_id(p) for p in params], args.repeats
        )
        grid = load_grid(_trivial_grid(Path(tmp), args.notebooks))
        start = time.perf_counter()
        run_sweep(grid, Path(tmp) / "results", progress=False)
        out["notebook_overhead_s"] = (time.perf_counter() - start) / args.notebooks
        out["resume_noop_s"] = _median_time(
            lambda: run_sweep(grid, Path(tmp) / "results", progress=False), args.repeats
        )
        grid_dir = _fake_paper_sweep(Path(tmp) / "paper")
        out["store_720_runs_s"] = _median_time(lambda: load_results(grid_dir), args.repeats)
        out["report_720_runs_s"] = _median_time(lambda: write_report(grid_dir), 1)
    out["machine"] = machine_facts()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
