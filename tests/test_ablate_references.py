"""Reference tracks shared by a sweep's runs: same scores as tracking them, each computed once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from endobench.ablate.plan import StageTask
from endobench.ablate.references import reference_methods, reference_scores
from endobench.ablate.runner import kernel_parameters
from endobench.data import open_dataset
from endobench.metrics import summarize
from endobench.propagation import track_and_score

CLIP = {"seed": 7, "num_clips": 1, "num_frames": 8, "height": 48, "width": 64}
OPTIONS = {"flow_confidence": "photometric", "weights": None, "device": None, "progress": False}


def clips(**changes):
    return open_dataset("synthetic", overrides={**CLIP, **changes}).clips()


def test_labels_name_the_runs_flow_or_dis() -> None:
    assert reference_methods("flow:dis") == [
        ("copy", "gt keyframes + copy", "copy", False),
        ("forward", "gt keyframes + forward DIS", "flow:dis", False),
        ("bidirectional", "gt keyframes + bidirectional DIS", "flow:dis", True),
    ]
    assert [m[1:3] for m in reference_methods("flow:farneback")][1:] == [
        ("gt keyframes + forward Farneback", "flow:farneback"),
        ("gt keyframes + bidirectional Farneback", "flow:farneback"),
    ]
    assert reference_methods("copy")[1][2] == "flow:dis"  # no flow of its own: DIS


def test_scores_are_those_of_tracking_from_ground_truth_keyframes() -> None:
    scores = reference_scores(clips(), "flow:dis", "every:3", **OPTIONS)
    assert list(scores) == ["copy", "forward", "bidirectional"]
    for method, _, spec, bidi in reference_methods("flow:dis"):
        results, rows = track_and_score(clips(), spec, "every:3", bidirectional=bidi, **OPTIONS)
        expected = float(summarize(rows).loc["global", "J&F-Mean"])
        assert scores[method].jf_mean == expected, method
        assert scores[method].keyframes_per_100 == pytest.approx(100 * 3 / 8)  # frames 0, 3, 6
    assert scores["copy"].jf_mean < scores["forward"].jf_mean  # flow carries the masks better


def test_cache_computes_each_reference_once_per_key(tmp_path: Path) -> None:
    first = reference_scores(clips(), "flow:dis", "every:3", tmp_path, **OPTIONS)
    assert len(list(tmp_path.glob("*.json"))) == 3
    again = reference_scores(clips(), "flow:dis", "every:3", tmp_path, **OPTIONS)
    # Reused, not tracked again: even the measured seconds per frame are the stored ones.
    assert again == first
    assert len(list(tmp_path.glob("*.json"))) == 3
    reference_scores(clips(), "flow:dis", "first", tmp_path, **OPTIONS)  # another policy
    reference_scores(clips(seed=8), "flow:dis", "every:3", tmp_path, **OPTIONS)  # other pixels
    reference_scores(clips(), "flow:dis", "every:3", tmp_path, **{**OPTIONS, "device": "cpu"})
    assert len(list(tmp_path.glob("*.json"))) == 12
    # A run whose own propagation is copy has the same references as one with flow:dis.
    reference_scores(clips(), "copy", "every:3", tmp_path, **OPTIONS)
    assert len(list(tmp_path.glob("*.json"))) == 12


def test_damaged_or_edited_entries_are_computed_again(tmp_path: Path) -> None:
    truth = reference_scores(clips(), "flow:dis", "every:3", tmp_path, **OPTIONS)
    entries = sorted(tmp_path.glob("*.json"))
    edited = json.loads(entries[0].read_text())
    edited["score"]["J&F-Mean"] = 1.0  # the recorded sha256 no longer matches
    entries[0].write_text(json.dumps(edited))
    entries[1].write_text(entries[1].read_text()[:20])  # truncated
    again = reference_scores(clips(), "flow:dis", "every:3", tmp_path, **OPTIONS)
    assert {m: s.jf_mean for m, s in again.items()} == {m: s.jf_mean for m, s in truth.items()}
    assert all(json.loads(p.read_text())["score"]["J&F-Mean"] < 1.0 for p in entries[:2])


def test_a_sweep_gives_its_tracking_runs_one_shared_folder(tmp_path: Path) -> None:
    def task(stage_dir: str, params: dict) -> StageTask:
        out = tmp_path / "demo" / stage_dir / "abc123"
        return StageTask("s", "abc123", Path("nb.ipynb"), out, params, record={})

    assert kernel_parameters(task("runs", {"reference": True, "policy": "first"})) == {
        "reference": True,
        "policy": "first",
        "run_dir": str(tmp_path / "demo" / "runs" / "abc123"),
        "reference_cache": str(tmp_path / "demo" / "references"),
    }
    assert kernel_parameters(task("runs", {"reference": False})) == {
        "reference": False,
        "run_dir": str(tmp_path / "demo" / "runs" / "abc123"),
    }
    given = {"reference": True, "reference_cache": "/elsewhere"}  # the grid's own choice wins
    assert kernel_parameters(task("runs", given))["reference_cache"] == "/elsewhere"
    assert "reference_cache" not in kernel_parameters(task("checkpoints", {"epochs": 1}))
