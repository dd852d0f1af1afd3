"""The four notebooks: structure (parameters cell, stripped outputs, no logic of their own) and
execution with small parameters through papermill.

Notebook 04 runs ``configs/smoke.yaml`` through the real runner, so notebooks 02 and 03 execute
inside that sweep (train once, track with policies ``first`` and ``all``).
(``pytest`` also runs 01-03 with their defaults through nbval: see pyproject.toml; 04's defaults
are the smoke sweep below, with its results in a temp folder.)
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

from endobench.ablate import load_results

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NAMES = [
    "01_explore_data.ipynb",
    "02_train_segmentation.ipynb",
    "03_propagate_track.ipynb",
    "04_report.ipynb",
]


def test_the_four_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assigned = [node.targets[0].id for node in ast.parse(tagged[0].source).body]
    # papermill must read every parameter (it silently skips lines it cannot parse).
    assert list(papermill.inspect_notebook(str(path))) == assigned
    assert "run_dir" in assigned
    assert any(c.cell_type == "markdown" for c in nb.cells)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [] and cell.execution_count is None, "outputs must be stripped"
        tree = ast.parse(cell.source)
        defined = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        assert not defined, "notebooks call the library; they define no functions or classes"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("endobench"):
                __import__(node.module)  # every library module the notebook uses exists


def test_git_filter_strips_outputs_on_add(tmp_path: Path) -> None:
    """tools/setup-git in a fresh clone: a notebook saved with outputs is staged without them."""
    clone = tmp_path / "clone"
    (clone / "tools").mkdir(parents=True)
    shutil.copy(REPO / "tools" / "setup-git", clone / "tools")
    shutil.copy(REPO / ".gitattributes", clone)
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    subprocess.run(["bash", "tools/setup-git"], cwd=clone, check=True, env=env)
    clean = (REPO / "notebooks" / "01_explore_data.ipynb").read_text(encoding="utf-8")
    nb = nbformat.reads(clean, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[0].outputs = [nbformat.v4.new_output("stream", text="saved output\n")]
    code[0].execution_count = 7
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, clone / "01.ipynb")
    subprocess.run(["git", "add", "01.ipynb"], cwd=clone, check=True, env=env)
    staged = subprocess.run(
        ["git", "show", ":01.ipynb"], cwd=clone, check=True, capture_output=True, text=True
    ).stdout
    assert "saved output" in (clone / "01.ipynb").read_text()  # the work tree keeps them
    assert staged == clean  # outputs, counts and widget state gone; cell ids kept


def _execute(name: str, out_dir: Path, **parameters: object) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(REPO / "notebooks" / name),
        str(out_dir / name),
        parameters={"run_dir": str(out_dir), **parameters},
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
        kernel_name="python3",
    )
    return out_dir


def test_explore_data_notebook(tmp_path: Path) -> None:
    run_dir = _execute(
        "01_explore_data.ipynb",
        tmp_path / "01",
        overrides={"num_clips": 1, "num_frames": 5, "height": 48, "width": 64},
        sheet_images=3,
        strip_frames=3,
        interactive=False,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == {
        "dataset": "synthetic",
        "kind": "video",
        "classes": {"1": "polyp", "2": "instrument"},
        "clips": 1,
        "frames": 5,
        "annotated_frames": 5,
    }
    table = pd.read_csv(run_dir / "metrics.csv")
    assert table[["frames", "height", "width"]].values.tolist() == [[5, 48, 64]]
    assert (run_dir / "contact_sheet.png").is_file() and (run_dir / "strip.png").is_file()


def test_track_notebook_with_ground_truth_keyframes_and_references(tmp_path: Path) -> None:
    """Every frame a ground-truth keyframe (policy ``all``): the run and each reference (copy,
    forward, bidirectional) reproduce the ground truth exactly (J&F 1) at 100 keyframes per 100
    frames; ``reference_cache`` unset: nothing is shared."""
    run_dir = _execute(
        "03_propagate_track.ipynb",
        tmp_path / "03",
        eval_overrides={"num_clips": 1, "num_frames": 4, "height": 48, "width": 64},
        max_clips=1,
        policy="all",
        propagation="copy",
        reference=True,
        strip_frames=2,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["keyframes_per_100"] == 100.0 and summary["J&F-Mean"] == 1.0
    assert summary["frames"] == 4 and summary["clips"] == 1 and "weights" not in summary
    assert {m: r["label"] for m, r in summary["reference"].items()} == {
        "copy": "gt keyframes + copy",
        "forward": "gt keyframes + forward DIS",
        "bidirectional": "gt keyframes + bidirectional DIS",
    }
    for r in summary["reference"].values():
        assert r["J&F-Mean"] == 1.0 and r["keyframes_per_100"] == 100.0
        assert r["seconds_per_frame"] > 0
    rows = pd.read_csv(run_dir / "metrics.csv")
    assert {"frame", "object", "J", "F", "dice"} <= set(rows.columns)
    assert (run_dir / "qualitative.png").is_file()
    assert not (tmp_path / "references").exists()


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Notebook 04 running configs/smoke.yaml (hence 02 once and 03 twice) into a temp root."""
    root = tmp_path_factory.mktemp("nb04")
    _execute(
        "04_report.ipynb",
        root / "04",
        config=str(REPO / "configs" / "smoke.yaml"),
        results=str(root / "results"),
    )
    return root


def test_report_notebook_runs_and_reports_the_smoke_sweep(smoke_sweep: Path) -> None:
    summary = json.loads((smoke_sweep / "04" / "summary.json").read_text())
    assert summary["runs"] == 2 and summary["runs_done"] == 2
    report = (smoke_sweep / "results" / "smoke" / "report.md").read_text()
    assert "| policy | J&F |" in report
    assert (smoke_sweep / "results" / "smoke" / "figures" / "cost_accuracy.png").is_file()


def test_train_notebook_output_in_the_sweep(smoke_sweep: Path) -> None:
    df = load_results(smoke_sweep / "results" / "smoke")
    (train_id,) = df["train_id"].unique()  # two policies, one training
    ckpt_dir = smoke_sweep / "results" / "smoke" / "checkpoints" / train_id
    assert (ckpt_dir / "best.pt").is_file()
    summary = json.loads((ckpt_dir / "summary.json").read_text())
    assert 0.0 <= summary["dice"] <= 1.0 and summary["best_epoch"] == 1
    assert summary["weights"]["source"] == "random-init"
    assert len(pd.read_csv(ckpt_dir / "metrics.csv")) == 1  # one row per epoch


def test_track_notebook_output_in_the_sweep(smoke_sweep: Path) -> None:
    df = load_results(smoke_sweep / "results" / "smoke").set_index("policy")
    # smoke.yaml tracks one 8-frame clip: "first" segments frame 0 only, "all" every frame.
    assert df.loc["first", "keyframes_per_100"] == 12.5
    assert df.loc["all", "keyframes_per_100"] == 100.0
    assert df["J&F-Mean"].between(0, 1).all() and df["T-Mean"].notna().all()
    assert (df["weights.source"] == "random-init").all()
    for run_id in df["run_id"]:
        assert (smoke_sweep / "results" / "smoke" / "runs" / run_id / "qualitative.png").is_file()
