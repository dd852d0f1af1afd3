"""The papermill runner on a real 2x2 grid of tiny notebooks written here.

Grid: backbone [alpha, beta] x policy [first, every]; stage ``train`` (declares backbone) is
shared by the two policies; stage ``track`` raises for beta/every. One sweep is interrupted
after three notebooks, resumed, then re-run with and without --rerun-failed; a log file the
notebooks append to tells exactly which notebooks executed.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import write_notebook

import endobench.ablate.runner as runner
from endobench.ablate import load_grid, load_results, plan_sweep, run_sweep
from endobench.ablate import run_files as rf
from endobench.cli import main

TRAIN = """\
import pandas as pd
from pathlib import Path
from endobench.ablate.run_files import write_run_outputs
with open(log, "a") as f:
    f.write(f"train {backbone}\\n")
Path(run_dir, "checkpoint.txt").write_text(backbone)
dice = {"alpha": 0.5, "beta": 0.75}[backbone]
write_run_outputs(run_dir, pd.DataFrame({"epoch": [1], "dice": [dice]}), {"dice": dice})
"""

TRACK = """\
import pandas as pd
from pathlib import Path
from endobench.ablate.run_files import write_run_outputs
with open(log, "a") as f:
    f.write(f"track {backbone} {policy}\\n")
model = Path(checkpoint).read_text()
if f"{model}/{policy}" == fail_on:
    raise RuntimeError(f"planned failure for {model}/{policy}")
score = {"first": 0.25, "every": 0.5}[policy] + (0.125 if model == "beta" else 0.0)
write_run_outputs(run_dir, pd.DataFrame({"frame": [0, 1], "J": [score, score]}), {"J&F-Mean": score})
"""


def write_grid(root: Path, name: str, axes: dict, fail_on: str = "") -> Path:
    """Tiny train -> track grid under ``root``; returns the grid file."""
    nbs = root / "nbs"
    nbs.mkdir(exist_ok=True)
    write_notebook(nbs / "train.ipynb", 'run_dir = ""\nbackbone = "alpha"\nlog = ""', TRAIN)
    write_notebook(
        nbs / "track.ipynb",
        'run_dir = ""\ncheckpoint = ""\nbackbone = "alpha"\npolicy = "first"\nlog = ""\nfail_on = ""',
        TRACK,
    )
    grid = {
        "name": name,
        "stages": [
            {"name": "train", "notebook": "nbs/train.ipynb", "dir": "checkpoints"},
            {
                "name": "track",
                "notebook": "nbs/track.ipynb",
                "inputs": {"checkpoint": "train/checkpoint.txt"},
            },
        ],
        "axes": axes,
        "fixed": {"log": str(root / f"{name}.log"), "fail_on": fail_on},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def executed(root: Path, name: str) -> list[str]:
    """Lines the notebooks appended, then clear the log."""
    log = root / f"{name}.log"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(lines)


class Interrupt(KeyboardInterrupt):
    """Stands in for Ctrl-C arriving while the fourth notebook runs."""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Interrupted, resumed, resumed again, then --rerun-failed: what each step executed."""
    root = tmp_path_factory.mktemp("sweep")
    grid = load_grid(
        write_grid(
            root,
            "g22",
            {"backbone": ["alpha", "beta"], "policy": ["first", "every"]},
            fail_on="beta/every",
        )
    )
    results = root / "results"
    steps: dict = {"root": root, "grid": grid, "results": results}

    calls = []
    real = runner.execute_stage

    def interrupting(task, options):
        calls.append(task.key)
        if len(calls) == 4:  # the 4th notebook is "running" when Ctrl-C arrives
            task.out_dir.mkdir(parents=True, exist_ok=True)
            rf.write_status(task.out_dir, rf.RUNNING)
            raise Interrupt
        return real(task, options)

    runner.execute_stage = interrupting
    try:
        with pytest.raises(runner.SweepInterrupted, match="1 notebook.s. in flight marked interr"):
            run_sweep(grid, results, progress=False)
    finally:
        runner.execute_stage = real
    steps["interrupted"] = executed(root, "g22")
    steps["interrupted_statuses"] = {
        r.run_id: rf.read_status(r.run_dir) for r in plan_sweep(grid, results).runs
    }
    steps["resumed"] = run_sweep(grid, results, progress=False)
    steps["resumed_log"] = executed(root, "g22")
    steps["again"] = run_sweep(grid, results, progress=False)
    steps["again_log"] = executed(root, "g22")
    steps["table"] = load_results(results / "g22")
    steps["rerun"] = run_sweep(grid, results, rerun_failed=True, progress=False)
    steps["rerun_log"] = executed(root, "g22")
    return steps


def test_interrupted_sweep_executed_three_notebooks(sweep: dict) -> None:
    # Plan order: both trainings first, then tracks in run order.
    assert sweep["interrupted"] == ["track alpha first", "train alpha", "train beta"]
    assert sorted(sweep["interrupted_statuses"].values()) == [
        "done",
        "interrupted",
        "pending",
        "pending",
    ]


def test_resume_executes_only_missing_notebooks(sweep: dict) -> None:
    assert sweep["resumed_log"] == ["track alpha every", "track beta every", "track beta first"]
    assert sweep["again_log"] == []  # nothing left: failed runs are not retried by default
    assert sweep["again"].outcomes == {}


def test_training_is_shared_between_policies(sweep: dict) -> None:
    table = sweep["table"]
    assert table["train_id"].nunique() == 2
    assert (sweep["results"] / "g22" / "checkpoints").is_dir()
    assert len(list((sweep["results"] / "g22" / "checkpoints").iterdir())) == 2
    for _, row in table.iterrows():
        ckpt = sweep["results"] / "g22" / "checkpoints" / row["train_id"] / "checkpoint.txt"
        assert ckpt.read_text() == row["backbone"]


def test_failure_is_isolated_and_recorded(sweep: dict) -> None:
    table = sweep["table"].set_index(["backbone", "policy"])
    assert table.loc[("beta", "every"), "status"] == "failed"
    assert (table.drop(index=("beta", "every"))["status"] == "done").all()
    run_dir = sweep["results"] / "g22" / "runs" / table.loc[("beta", "every"), "run_id"]
    tb = (run_dir / rf.TRACEBACK_FILE).read_text()
    assert "RuntimeError: planned failure for beta/every" in tb
    assert "\x1b[" not in tb  # ANSI colours stripped
    assert table.loc[("beta", "every"), "error"] == "RuntimeError: planned failure for beta/every"
    partial = nbformat.read(run_dir / "track.ipynb", as_version=4)  # the partial notebook is kept
    assert any(
        o.get("ename") == "RuntimeError" for c in partial.cells for o in c.get("outputs", [])
    )
    assert not (run_dir / rf.SUMMARY_FILE).exists()


def test_rerun_failed_executes_only_the_failed_run(sweep: dict) -> None:
    assert sweep["rerun_log"] == ["track beta every"]
    (outcome,) = sweep["rerun"].outcomes.values()
    assert outcome.status == "failed"


def test_run_folders_hold_params_outputs_status_and_provenance(sweep: dict) -> None:
    table = sweep["table"].set_index(["backbone", "policy"])
    row = table.loc[("beta", "first")]
    run_dir = sweep["results"] / "g22" / "runs" / row["run_id"]
    params = json.loads((run_dir / rf.PARAMS_FILE).read_text())
    assert params == {
        "backbone": "beta",
        "policy": "first",
        "log": str(sweep["root"] / "g22.log"),
        "fail_on": "beta/every",
    }
    assert rf.read_status(run_dir) == "done"
    assert (run_dir / "track.ipynb").is_file()
    assert json.loads((run_dir / rf.SUMMARY_FILE).read_text()) == {"J&F-Mean": 0.375}
    info = json.loads((run_dir / rf.RUN_INFO_FILE).read_text())
    assert info["stage"] == "track" and info["seconds"] > 0
    assert row["dice"] == 0.75 and row["J&F-Mean"] == 0.375  # upstream + own summaries
    assert row["code.endobench"] == "0.1.0"
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))


def test_plain_rerun_with_failed_runs_hints_at_rerun_failed(
    sweep: dict, capsys: pytest.CaptureFixture
) -> None:
    argv = ["ablate", str(sweep["grid"].source), "--results", str(sweep["results"]), "--no-report"]
    assert main([*argv, "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "g22: 3 runs already done, 0 to run (train 0, track 0 notebooks)" in captured.err
    assert "1 failed notebook(s) are not executed again; add --rerun-failed" in captured.err
    assert "(failed runs are kept; add --rerun-failed to execute them again)" in captured.out
    assert executed(sweep["root"], "g22") == []


def test_dry_run_prints_the_table_without_executing(
    sweep: dict, capsys: pytest.CaptureFixture
) -> None:
    source = sweep["grid"].source
    assert main(["ablate", str(source), "--dry-run", "--results", str(sweep["results"])]) == 0
    out = capsys.readouterr().out
    assert "4 runs, 6 notebook executions" in out
    assert out.count("done") == 3 and out.count("failed") == 1
    assert executed(sweep["root"], "g22") == []


def test_dask_local_cluster_runs_the_grid_via_the_cli(tmp_path: Path) -> None:
    """Two Dask workers; three runs share one training; exit code 0; report written."""
    path = write_grid(tmp_path, "dask", {"backbone": ["alpha"], "policy": ["first", "every"]})
    code = main(["ablate", str(path), "--workers", "2", "--results", str(tmp_path / "results")])
    assert code == 0
    assert executed(tmp_path, "dask") == ["track alpha every", "track alpha first", "train alpha"]
    table = load_results(tmp_path / "results" / "dask")
    assert list(table["status"]) == ["done", "done"]
    assert sorted(table["J&F-Mean"]) == [0.25, 0.5]
    assert (tmp_path / "results" / "dask" / "report.md").is_file()


def test_cli_reports_bad_configs_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_grid(tmp_path, "bad", {"backbone": ["alpha"], "colour": ["red"]})
    assert main(["ablate", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "field 'axes.colour': expected a parameter declared by one of the stage notebooks" in err


def test_failed_shared_stage_fails_its_runs_with_the_root_cause(tmp_path: Path) -> None:
    """train raises for an unknown backbone: both runs fail without executing, naming why."""
    path = write_grid(tmp_path, "up", {"backbone": ["gamma"], "policy": ["first", "every"]})
    result = run_sweep(load_grid(path), tmp_path / "results", progress=False)
    assert executed(tmp_path, "up") == ["train gamma"]  # the tracks never started a kernel
    assert sorted(o.status for o in result.outcomes.values()) == ["failed"] * 3
    table = load_results(tmp_path / "results" / "up")
    assert list(table["status"]) == ["failed", "failed"]
    assert list(table["error"]) == ["KeyError: 'gamma'"] * 2
    run_tb = (
        tmp_path / "results" / "up" / "runs" / table["run_id"][0] / rf.TRACEBACK_FILE
    ).read_text()
    assert run_tb.startswith(f"upstream stage {tmp_path / 'results' / 'up' / 'checkpoints'}")


def test_changed_notebook_code_executes_its_runs_again_saved_outputs_do_not(sweep: dict) -> None:
    """Identity holds the code cells only: outputs saved by JupyterLab change nothing."""
    grid = sweep["grid"]
    notebook = grid.notebook_path(grid.stages[1])
    original = notebook.read_bytes()
    assert runner.tasks_to_execute(plan_sweep(grid, sweep["results"])).tasks == []
    nb = nbformat.read(notebook, as_version=4)
    try:
        nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="saved output\n")]
        nb.cells[1].execution_count = 7
        nb.metadata["widgets"] = {"state": {}}
        nbformat.write(nb, notebook)
        assert runner.tasks_to_execute(plan_sweep(grid, sweep["results"])).tasks == []
        nb.cells.append(nbformat.v4.new_code_cell("print('changed')"))
        nbformat.write(nb, notebook)
        todo = runner.tasks_to_execute(plan_sweep(grid, sweep["results"]))
    finally:
        notebook.write_bytes(original)
    reasons = {
        t.params["policy"] + "/" + t.params["backbone"]: todo.reasons[t.key] for t in todo.tasks
    }
    assert reasons == {  # every track, none of the trainings
        "every/alpha": "its inputs changed (notebook code)",
        "first/alpha": "its inputs changed (notebook code)",
        "first/beta": "its inputs changed (notebook code)",
        # a failed run is retried when what it depends on changed (the change may fix it)
        "every/beta": "its inputs changed since it failed (notebook code)",
    }
    assert todo.failed_kept == 0


def test_existing_scheduler_address(tmp_path: Path) -> None:
    """--scheduler: the sweep runs on a cluster it did not start (here an in-thread one)."""
    from distributed import LocalCluster

    path = write_grid(tmp_path, "sched", {"backbone": ["beta"], "policy": ["every"]})
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        code = main(
            [
                "ablate",
                str(path),
                "--scheduler",
                cluster.scheduler_address,
                "--no-report",
                "--results",
                str(tmp_path / "results"),
            ]  # fmt: skip
        )
    assert code == 0
    assert executed(tmp_path, "sched") == ["track beta every", "train beta"]
    assert not (tmp_path / "results" / "sched" / "report.md").exists()  # --no-report
