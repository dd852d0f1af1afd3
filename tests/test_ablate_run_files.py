"""Run folder files: atomic outputs, status life cycle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from endobench.ablate import run_files as rf


def test_write_run_outputs_writes_csv_json_and_png(tmp_path: Path) -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    image[1, 2] = (255, 0, 0)
    rf.write_run_outputs(
        tmp_path / "run",
        pd.DataFrame({"frame": [0, 1], "J": [0.5, 0.25]}),
        {"J&F-Mean": np.float32(0.5), "n": np.int64(2)},
        images={"qualitative": image},
    )
    assert (tmp_path / "run" / "metrics.csv").read_text() == "frame,J\n0,0.5\n1,0.25\n"
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == {"J&F-Mean": 0.5, "n": 2}
    assert np.array_equal(np.asarray(Image.open(tmp_path / "run" / "qualitative.png")), image)


def test_a_failed_write_leaves_the_previous_file_and_no_temporaries(tmp_path: Path) -> None:
    rf.write_run_outputs(tmp_path, pd.DataFrame({"a": [1]}), {"dice": 0.5})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        rf.write_run_outputs(tmp_path, pd.DataFrame({"a": [2]}), {"dice": object()})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"dice": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "summary.json"]


def test_status_life_cycle(tmp_path: Path) -> None:
    assert rf.read_status(tmp_path) == "pending"
    rf.write_status(tmp_path, rf.RUNNING)
    assert rf.read_status(tmp_path) == "running"
    rf.write_status(tmp_path, rf.FAILED, "Traceback...\nValueError: x\n")
    assert rf.read_status(tmp_path) == "failed"
    assert (tmp_path / rf.TRACEBACK_FILE).read_text().endswith("ValueError: x\n")
    rf.write_run_outputs(tmp_path, pd.DataFrame({"a": [1]}), {"dice": 0.5})
    (tmp_path / "run.ipynb").write_text("{}")
    rf.clear_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ipynb"]  # the notebook is kept
    assert rf.read_status(tmp_path) == "pending"
