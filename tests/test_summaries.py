"""Typed summaries: built by the library, written as today's flat summary.json, read strictly.

Two summary.json files written by today's notebooks (the demo sweep, random-init dinov2_vits14,
no augmentation, policy adaptive) must keep validating; a misspelt key or a wrong type fails
with one line naming the file and the field, in the library and in ``endobench report``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from endobench.ablate.run_files import write_run_outputs, write_status
from endobench.cli import main
from endobench.data import open_dataset
from endobench.metrics import summarize
from endobench.propagation import track_and_score
from endobench.propagation.summary import (
    SummaryError,
    TrackingSummary,
    read_summary,
    reference_score,
    tracking_summary,
)
from endobench.report.collect import summary_model
from endobench.report.columns import SEGMENTATION_COLUMNS, tracking_columns
from endobench.training.summary import TrainingSummary

WEIGHTS = {
    "model_kwargs": {},
    "name": "vit_small_patch14_dinov2.lvd142m",
    "path": None,
    "sha256": "random-init",
    "source": "random-init",
}
DEMO_TRACK = {  # results/demo/runs/04d0a9123f2d/summary.json
    "Dice-Mean": 0.2510106815654919,
    "F-Decay": -0.04677364955124959,
    "F-Mean": 0.09071553086721777,
    "F-Recall": 0.0,
    "J&F-Mean": 0.13040382849328797,
    "J-Decay": 0.009065304411999958,
    "J-Mean": 0.17009212611935817,
    "J-Recall": 0.0,
    "T-Mean": 0.273851759202773,
    "bidirectional": False,
    "clips": 1,
    "frames": 48,
    "keyframes_per_100": 6.25,
    "reference": {
        "bidirectional": {
            "J&F-Mean": 0.8881619693422944,
            "keyframes_per_100": 6.25,
            "label": "gt keyframes + bidirectional DIS",
            "seconds_per_frame": 0.007331222437490699,
        },
        "copy": {
            "J&F-Mean": 0.5049787493928029,
            "keyframes_per_100": 2.0833333333333335,
            "label": "gt keyframes + copy",
            "seconds_per_frame": 0.0016143980417003452,
        },
        "forward": {
            "J&F-Mean": 0.8379013649666958,
            "keyframes_per_100": 6.25,
            "label": "gt keyframes + forward DIS",
            "seconds_per_frame": 0.0032343702708127844,
        },
    },  # fmt: skip
    "seconds_per_frame": 0.012518051750021186,
    "weights": WEIGHTS,
}
DEMO_TRAIN = {  # results/demo/checkpoints/010dc253a6e9/summary.json
    "best_epoch": 16,
    "checkpoint": "/work/ci2/results/demo/checkpoints/010dc253a6e9/best.pt",
    "dice": 0.7924111810136003,
    "iou": 0.6588238080225453,
    "train_seconds": 161.36108204599623,
    "weights": WEIGHTS,
}


def _written(tmp_path: Path, summary: dict) -> Path:
    write_run_outputs(tmp_path, pd.DataFrame({"frame": [0]}), summary)
    return tmp_path / "summary.json"


def test_todays_summary_files_read_and_write_back_unchanged(tmp_path: Path) -> None:
    track = read_summary(_written(tmp_path / "track", DEMO_TRACK), TrackingSummary)
    assert track.scores["J&F-Mean"] == 0.13040382849328797 and track.frames == 48
    assert (
        track.reference is not None
        and track.reference["copy"].keyframes_per_100 == 2.0833333333333335
    )
    assert track.weights is not None and track.weights.sha256 == "random-init"
    assert track.to_json() == DEMO_TRACK
    train = read_summary(_written(tmp_path / "train", DEMO_TRAIN), TrainingSummary)
    assert train.best_epoch == 16 and train.to_json() == DEMO_TRAIN


@pytest.mark.parametrize(
    ("model", "summary", "expected"),
    [
        (TrackingSummary, {"J&F-Mea": 0.5}, "field 'J&F-Mea': unknown field (misspelt?)"),
        (TrackingSummary, {"frames": "many"}, "field 'frames': Input should be a valid integer"),
        (
            TrackingSummary,
            {
                "reference": {
                    "copy": {
                        "label": "x",
                        "J&F-Mean": 1.0,
                        "keyframes_per_100": 5.0,
                        "seconds_per_frme": 0.1,
                    }
                }
            },
            "field 'reference.copy.seconds_per_frme': unknown field",
        ),  # fmt: skip
        (TrackingSummary, {"reference": {"backward": {}}}, "field 'reference.backward"),
        (TrainingSummary, {"dice": 0.8, "hd95": 3.0}, "field 'hd95': unknown field"),
        (TrainingSummary, {"weights": {"name": "w"}}, "field 'weights.source': Field required"),
    ],
)
def test_a_wrong_key_or_type_names_the_file_and_field(
    tmp_path: Path, model: type, summary: dict, expected: str
) -> None:
    path = _written(tmp_path, summary)
    with pytest.raises(SummaryError) as err:
        read_summary(path, model)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_tracking_summary_of_a_real_run() -> None:
    """Copy propagation on a 6-frame synthetic clip, keyframes every 2 frames: 0, 2, 4."""
    clips = open_dataset(
        "synthetic", overrides={"num_clips": 1, "num_frames": 6, "height": 48, "width": 64}
    ).clips()
    results, rows = track_and_score(clips, "copy", "every:2", metrics=("jf", "dice"))
    table = summarize(rows)
    summary = tracking_summary(table, results, bidirectional=False, weights=WEIGHTS)
    (result,) = results.values()
    assert summary.keyframes_per_100 == 50.0 and summary.frames == 6 and summary.clips == 1
    assert summary.seconds_per_frame == pytest.approx(result.timings["total"] / 6)
    out = summary.to_json()
    assert out["J&F-Mean"] == table.loc["global", "J&F-Mean"]
    assert out["Dice-Mean"] == table.loc["global", "Dice-Mean"]
    assert "reference" not in out and out["weights"] == WEIGHTS
    ref = reference_score("gt keyframes + copy", table, results)
    assert ref.model_dump(by_alias=True) == {
        "label": "gt keyframes + copy",
        "J&F-Mean": table.loc["global", "J&F-Mean"],
        "keyframes_per_100": 50.0,
        "seconds_per_frame": summary.seconds_per_frame,
    }
    with_ref = tracking_summary(table, results, bidirectional=True, reference={"copy": ref})
    assert with_ref.to_json()["reference"]["copy"]["J&F-Mean"] == out["J&F-Mean"]
    assert TrackingSummary.model_validate(with_ref.to_json()) == with_ref


def test_every_report_column_is_a_summary_field() -> None:
    """The report reads only keys the models know (hd95 is not a training summary field, so
    the segmentation table does not list it)."""
    tracking = TrackingSummary.model_validate({c.key: 0.5 for c in tracking_columns()})
    assert math.isclose(tracking.scores["J&F-Mean"], 0.5) and tracking.seconds_per_frame == 0.5
    keys = [c.key for c in SEGMENTATION_COLUMNS]
    assert keys == ["dice", "iou"] and set(keys) <= set(TrainingSummary.model_fields)
    assert summary_model("../notebooks/03_propagate_track.ipynb") is TrackingSummary
    assert summary_model("02_train_segmentation.ipynb") is TrainingSummary
    assert summary_model("my_notebook.ipynb") is None


def test_report_stops_at_a_misspelt_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    grid = tmp_path / "typo"
    runs = []
    for rid, summary in (("ok", {"J&F-Mean": 0.5}), ("bad", {"J&F-mean": 0.5})):
        write_run_outputs(grid / "runs" / rid, pd.DataFrame({"frame": [0]}), summary)
        write_status(grid / "runs" / rid, "done")
        runs.append({"run_id": rid, "params": {"policy": rid}, "stage_ids": {"track": rid}})
    stages = [{"name": "track", "notebook": "03_propagate_track.ipynb", "dir": "runs",
               "params": ["policy"]}]  # fmt: skip
    plan = {"grid": "typo", "axes": {"policy": ["ok", "bad"]}, "fixed": {}, "stages": stages,
            "runs": runs}  # fmt: skip
    (grid / "plan.json").write_text(json.dumps(plan))
    assert main(["report", str(grid)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(grid / "runs" / "bad" / "summary.json") in err
    assert "field 'J&F-mean': unknown field (misspelt?)" in err and "\n" not in err
    assert not (grid / "report.md").exists()
