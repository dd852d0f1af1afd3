"""The table of per-frame metrics: the built-in entries, and a new metric added in one file.

The new metric, ``fg`` (the fraction of the frame predicted as the object), is registered here
the way a plugin module would register it; ``evaluate_sequence``, ``summarize``, ``endobench
eval`` and the sweep report then show it without any other change.

Hand case: 4 frames of 4 x 4, one object; the semi-supervised protocol scores frames 1 and 2,
where the prediction covers 4 and 8 of 16 pixels: fg 0.25 and 0.5, FG-Mean 0.375.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from endobench.ablate.run_files import write_run_outputs, write_status
from endobench.cli import main
from endobench.evaluation import metric_choices
from endobench.metrics import DAVIS_COLUMNS, evaluate_sequence, parse_metrics, summarize
from endobench.metrics.per_frame import (
    PerFrameMetric,
    Statistic,
    TableColumn,
    metric_tokens,
    table_columns,
)
from endobench.propagation.summary import TrackingSummary
from endobench.registry import METRICS
from endobench.report.columns import tracking_columns

FG = PerFrameMetric(
    columns=("fg",),
    score=lambda gt, pred, options: (float(pred.mean()),),
    statistics=(Statistic("fg", "FG"),),
    report=(TableColumn("FG-Mean", "foreground", higher_is_better=False),),
)


@pytest.fixture()
def fg_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fg`` registered for one test (the registry's names are restored afterwards)."""
    METRICS.names()  # the built-in metrics first
    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))
    METRICS.register("fg", FG, description="fraction of the frame predicted as the object")


def _clip() -> tuple[list[np.ndarray], list[np.ndarray]]:
    gt = [np.zeros((4, 4), np.uint8) for _ in range(4)]
    for g in gt:
        g[:2, :2] = 1
    pred = [g.copy() for g in gt]
    pred[2][2:, :2] = 1  # frame 2: 8 pixels
    return gt, pred


def test_builtin_table_keeps_the_davis_layout() -> None:
    assert table_columns() == [*DAVIS_COLUMNS, "T-Mean", "Dice-Mean", "HD95-Mean"]
    assert list(metric_tokens()) == ["jf", "j", "f", "t", "dice", "hd95"]
    assert metric_choices() == ["jf", "j", "f", "t", "dice", "hd95", "tc"]
    assert parse_metrics("J,dice") == {"jf", "dice"} and parse_metrics([]) == {"jf"}
    assert [c.key for c in tracking_columns()] == [
        "J&F-Mean", "J-Mean", "F-Mean", "J-Decay", "T-Mean", "keyframes_per_100",
        "seconds_per_frame",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown metric 'fg'; expected some of"):
        parse_metrics("fg")


def test_a_registered_metric_reaches_rows_and_table(fg_metric: None) -> None:
    gt, pred = _clip()
    rows = evaluate_sequence(gt, pred, metrics="jf,fg,dice")
    assert list(rows.columns[-2:]) == ["dice", "fg"]  # per-frame extras by metric name
    assert rows["fg"].tolist() == [0.25, 0.5] and rows["J"].tolist() == [1.0, 0.5]
    table = summarize(rows)
    assert table.loc["global", "FG-Mean"] == 0.375
    assert list(table.columns) == [*DAVIS_COLUMNS, "Dice-Mean", "FG-Mean"]
    unsupervised = evaluate_sequence(gt, pred, protocol="unsupervised", metrics="fg")
    assert unsupervised["fg"].tolist() == [0.25, 0.25, 0.5, 0.25]
    assert "fg" in metric_choices() and "FG-Mean" in table_columns()


def test_eval_command_scores_a_registered_metric(
    fg_metric: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    gt, pred = _clip()
    for name, masks in (("gt", gt), ("pred", pred)):
        (tmp_path / name).mkdir()
        for i, mask in enumerate(masks):
            Image.fromarray(mask).save(tmp_path / name / f"{i:05d}.png")
    argv = ["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")]
    assert main([*argv, "--metrics", "jf,fg", "--json", "--workers", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["global"]["FG-Mean"] == 0.375


def test_a_registered_metric_reaches_the_report(fg_metric: None, tmp_path: Path) -> None:
    grid = tmp_path / "fg"
    runs = []
    for policy, jf, fg in (("a", 0.5, 0.375), ("b", 0.6, 0.25)):
        summary = TrackingSummary.model_validate({"J&F-Mean": jf, "FG-Mean": fg}).to_json()
        write_run_outputs(grid / "runs" / policy, pd.DataFrame({"frame": [0]}), summary)
        write_status(grid / "runs" / policy, "done")
        runs.append(
            {"run_id": policy, "params": {"policy": policy}, "stage_ids": {"track": policy}}
        )
    stages = [{"name": "track", "notebook": "03_propagate_track.ipynb", "dir": "runs",
               "params": ["policy"]}]  # fmt: skip
    plan = {"grid": "fg", "axes": {"policy": ["a", "b"]}, "fixed": {}, "stages": stages,
            "runs": runs}  # fmt: skip
    (grid / "plan.json").write_text(json.dumps(plan))
    assert main(["report", str(grid)]) == 0
    expected = """\
| policy | J&F | foreground ↓ |
|---|---:|---:|
| a | 0.500 | 0.375 |
| b | **0.600** | **0.250** |
"""
    assert expected in (grid / "report.md").read_text()
