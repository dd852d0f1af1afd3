"""Sweep integrity on a real 2-run grid of tiny notebooks: identity, verified reuse, repair.

Grid: dataset [a, b] (two registry entries in a registry file written here); stage ``train``
writes ``best.pt``, stage ``track`` reads it. After the first sweep:

- changing dataset b's entry in the registry file makes exactly b's two notebooks stale;
- a truncated ``best.pt`` of a and a deleted ``summary.json`` of b's run are found before
  reuse, and a plain ``endobench ablate`` re-executes exactly the stages concerned, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_notebook

from endobench.ablate import load_grid, plan_sweep, run_sweep
from endobench.ablate import run_files as rf
from endobench.ablate.identity import data_fingerprint
from endobench.ablate.runner import tasks_to_execute
from endobench.cli import main

TRAIN = """\
from pathlib import Path
import pandas as pd
from endobench.ablate.run_files import write_run_outputs
with open(log, "a") as f:
    f.write(f"train {dataset}\\n")
Path(run_dir, "best.pt").write_bytes(f"weights of {dataset} ".encode() * 64)
write_run_outputs(run_dir, pd.DataFrame({"epoch": [1]}), {"dice": 0.5})
"""
TRACK = """\
from pathlib import Path
import pandas as pd
from endobench.ablate.run_files import write_run_outputs
with open(log, "a") as f:
    f.write(f"track {dataset}\\n")
assert Path(checkpoint).read_bytes().startswith(f"weights of {dataset}".encode())
write_run_outputs(run_dir, pd.DataFrame({"frame": [0]}), {"J&F-Mean": 0.25})
"""
PARAMS = 'run_dir = ""\ndataset = "a"\ndatasets = None\nlog = ""'


def executed(log: Path) -> list[str]:
    lines = sorted(log.read_text().splitlines()) if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("integrity")
    write_notebook(root / "train.ipynb", PARAMS, TRAIN)
    write_notebook(root / "track.ipynb", PARAMS + '\ncheckpoint = ""', TRACK)
    registry = root / "datasets.yaml"
    registry.write_text(
        "datasets:\n  a: {format: synthetic, seed: 1}\n  b: {format: synthetic, seed: 2}\n"
    )
    grid_file = root / "g.yaml"
    grid_file.write_text(
        yaml.safe_dump(
            {
                "name": "g",
                "stages": [
                    {"name": "train", "notebook": "train.ipynb", "dir": "checkpoints"},
                    {
                        "name": "track",
                        "notebook": "track.ipynb",
                        "inputs": {"checkpoint": "train/best.pt"},
                    },
                ],
                "axes": {"dataset": ["a", "b"]},
                "fixed": {"datasets": str(registry), "log": str(root / "log")},
            }
        )
    )
    old = os.umask(0o022)
    try:
        run_sweep(load_grid(grid_file), root / "results", progress=False)
    finally:
        os.umask(old)
    first = executed(root / "log")
    plan = plan_sweep(load_grid(grid_file), root / "results")
    tasks = {(t.stage, t.params["dataset"]): t for t in plan.tasks.values()}
    return {"root": root, "grid": grid_file, "registry": registry, "first": first, "tasks": tasks}


def test_first_sweep_records_identity_and_output_checksums(sweep: dict) -> None:
    assert sweep["first"] == ["track a", "track b", "train a", "train b"]
    train_a = sweep["tasks"][("train", "a")]
    info = json.loads((train_a.out_dir / rf.RUN_INFO_FILE).read_text())
    assert info["identity"]["datasets"]["a"]["entry"]["seed"] == 1
    assert info["identity"]["datasets"]["a"]["registry"] == str(sweep["registry"])
    assert info["identity"]["endobench"] == "0.1.0"
    assert sorted(info["outputs"]) == ["best.pt", "metrics.csv", "summary.json"]
    best = (train_a.out_dir / "best.pt").read_bytes()
    import hashlib

    assert info["outputs"]["best.pt"] == hashlib.sha256(best).hexdigest()
    # Files honour the umask (022 -> 0644), the kernel's outputs and the runner's records.
    for name in ("best.pt", "summary.json", rf.RUN_INFO_FILE, rf.STATUS_FILE):
        assert (train_a.out_dir / name).stat().st_mode & 0o777 == 0o644, name


def test_changed_registry_entry_makes_exactly_its_runs_stale(sweep: dict) -> None:
    registry: Path = sweep["registry"]
    original = registry.read_text()
    try:
        registry.write_text(original.replace("seed: 2", "seed: 3"))
        todo = tasks_to_execute(plan_sweep(load_grid(sweep["grid"]), sweep["root"] / "results"))
    finally:
        registry.write_text(original)
    assert sorted((t.stage, t.params["dataset"]) for t in todo.tasks) == [
        ("track", "b"),
        ("train", "b"),
    ]
    train_b = sweep["tasks"][("train", "b")]
    assert todo.reasons[train_b.key] == "its inputs changed (registry entry of dataset 'b')"


def test_plain_rerun_repairs_a_truncated_checkpoint_and_a_deleted_summary(
    sweep: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = sweep["tasks"]
    best = tasks[("train", "a")].out_dir / "best.pt"
    best.write_bytes(best.read_bytes()[:100])
    (tasks[("track", "b")].out_dir / rf.SUMMARY_FILE).unlink()
    code = main(["ablate", str(sweep["grid"]), "--results", str(sweep["root"] / "results"),
                 "--workers", "1", "--no-report"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    # Exactly the damaged stages. track a waits for train a, then finds the rebuilt best.pt
    # byte-identical to the one it used (this training is deterministic), so it is kept.
    assert executed(sweep["root"] / "log") == ["track b", "train a"]
    key = tasks[("train", "a")].key
    assert f"executing {key} again: best.pt does not match its recorded sha256" in err
    track_b = tasks[("track", "b")].key
    assert f"executing {track_b} again: summary.json is missing" in err
    assert "g: 0 runs already done, 2 to run (train 1, track 2 notebooks)" in err
    assert best.read_bytes() == b"weights of a " * 64
    assert (
        tasks_to_execute(plan_sweep(load_grid(sweep["grid"]), sweep["root"] / "results")).tasks
        == []
    )


def test_data_fingerprint_follows_file_list_sizes_and_mtimes(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    frame = tmp_path / "clip" / "00000.jpg"
    frame.write_bytes(b"abc")
    first = data_fingerprint(tmp_path)
    assert data_fingerprint(tmp_path) == first
    os.utime(frame, ns=(1, 1))
    touched = data_fingerprint(tmp_path)
    assert touched != first
    frame.write_bytes(b"abcd")
    os.utime(frame, ns=(1, 1))
    assert data_fingerprint(tmp_path) not in (first, touched)  # size alone changes it
    (tmp_path / "clip" / "00001.jpg").write_bytes(b"")
    assert len({first, touched, data_fingerprint(tmp_path)}) == 3


def test_ctrl_c_marks_the_notebook_in_flight_interrupted_in_one_line(tmp_path: Path) -> None:
    """SIGINT to `endobench ablate` while a notebook runs: exit 130, one line, status file."""
    started = tmp_path / "started"
    write_notebook(
        tmp_path / "slow.ipynb",
        'run_dir = ""\nstarted = ""',
        "import time\nfrom pathlib import Path\nPath(started).touch()\ntime.sleep(120)",
    )
    grid = {"name": "slow", "stages": [{"name": "slow", "notebook": "slow.ipynb"}],
            "fixed": {"started": str(started)}}  # fmt: skip
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    bin_dir = Path(sys.executable).parent
    proc = subprocess.Popen(
        [bin_dir / "endobench", "ablate", str(tmp_path / "g.yaml"), "--workers", "1",
         "--results", str(tmp_path / "results")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), "the notebook never started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert last.startswith("endobench ablate: interrupted: 1 notebook(s) in flight marked ")
    (run_dir,) = (tmp_path / "results" / "slow" / "runs").iterdir()
    assert rf.read_status(run_dir) == rf.INTERRUPTED
    assert f"(e.g. {run_dir})" in last


def test_a_moved_results_folder_is_reused_as_it_is(sweep: dict, tmp_path: Path) -> None:
    """Identity holds upstream folders relative to the sweep: moving results/ re-runs nothing."""
    moved = tmp_path / "elsewhere"
    shutil.copytree(sweep["root"] / "results", moved)
    assert tasks_to_execute(plan_sweep(load_grid(sweep["grid"]), moved)).tasks == []
