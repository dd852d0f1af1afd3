"""Notebook displays: plain numbers, compact results, relinked reports, one-line interrupts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from endobench.display import (
    Interrupted,
    one_line_interrupt,
    relink_markdown,
    results_view,
    settings_table,
    show_report,
    tidy,
)
from endobench.training.config import TrainConfig


def test_tidy_makes_numpy_scalars_plain_and_rounds() -> None:
    shown = tidy({"kf": np.float64(12.5), "jf": np.float32(0.123456), "n": np.int64(3),
                  "xs": (np.float64(1 / 3), [np.nan]), "name": "a", "arr": np.array([0.55555])})  # fmt: skip
    assert shown == {"kf": 12.5, "jf": 0.123, "n": 3, "xs": (0.333, [shown["xs"][1][0]]),
                     "name": "a", "arr": [0.556]}  # fmt: skip
    assert math.isnan(shown["xs"][1][0])
    assert repr(shown["kf"]) == "12.5" and type(shown["n"]) is int


def test_results_view_keeps_varying_settings_and_headline_metrics() -> None:
    df = pd.DataFrame(
        {
            "run_id": ["r1", "r2"],
            "status": ["done", "done"],
            "backbone": ["A", "A"],  # constant: not a setting that varies
            "policy": ["first", "all"],
            "J&F-Mean": [0.61234, 0.9],
            "keyframes_per_100": [12.5, 100.0],
            "dice": [0.70049, 0.70049],
            "weights.sha256": ["x", "x"],
            "T-Mean": [math.nan, math.nan],  # missing everywhere: left out
        }
    )
    view = results_view(df, ["backbone", "policy"])
    assert list(view.columns) == ["status", "policy", "J&F", "keyframes/100 fr.", "Dice"]
    assert view.index.tolist() == ["r1", "r2"]
    assert view.loc["r1", "J&F"] == 0.612 and view.loc["r2", "Dice"] == 0.7


def test_settings_table_lists_what_was_set() -> None:
    config = TrainConfig(
        dataset="synthetic", epochs=3, dataset_overrides={"num_clips": 2}, pretrained=False
    )
    table = settings_table(config)
    assert table.index.tolist() == ["dataset", "dataset_overrides", "pretrained", "epochs"]
    assert table["value"].tolist() == ["synthetic", "num_clips=2", "False", "3"]


def test_relink_markdown_from_the_sweep_folder_to_the_notebooks(tmp_path: Path) -> None:
    text = (
        "![Cost](figures/cost.png) [csv](results.csv) [web](https://x.org/a.png) "
        "[top](#report) [abs](/etc/hosts) [tb](runs/r1/traceback.txt)"
    )
    grid, notebooks = tmp_path / "results" / "smoke", tmp_path / "notebooks"
    out = relink_markdown(text, grid, notebooks)
    assert out == (
        "![Cost](../results/smoke/figures/cost.png) [csv](../results/smoke/results.csv) "
        "[web](https://x.org/a.png) [top](#report) [abs](/etc/hosts) "
        "[tb](../results/smoke/runs/r1/traceback.txt)"
    )
    assert relink_markdown(text, grid, grid) == text


def test_show_report_relinks_to_the_working_directory(tmp_path: Path) -> None:
    report = tmp_path / "results" / "g" / "report.md"
    report.parent.mkdir(parents=True)
    report.write_text("![a](figures/a.png)\n")
    assert show_report(report, cwd=tmp_path).data == "![a](results/g/figures/a.png)\n"


def test_interrupt_becomes_one_line() -> None:
    with pytest.raises(Interrupted) as caught, one_line_interrupt("sweep interrupted; resume"):
        raise KeyboardInterrupt
    assert caught.value._render_traceback_() == ["sweep interrupted; resume"]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with one_line_interrupt("unused"):
        pass  # no interrupt: nothing happens
