"""`endobench train` end to end on the built-in synthetic dataset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from endobench.cli import main


def test_train_command_writes_checkpoint_and_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    config = tmp_path / "train.yaml"
    config.write_text("backbone_kwargs: {depth: 2, embed_dim: 48, num_heads: 2}\nlr: 0.005\n")
    argv = [
        "train", "--config", str(config), "--dataset", "synthetic",
        "--set", "num_clips=3", "--set", "num_frames=2", "--set", "height=48", "--set", "width=64",
        "--backbone", "dinov2_vits14", "--no-pretrained", "--head", "linear",
        "--augment", "none", "--epochs", "2", "--out", str(out), "--size", "42",
        "--batch-size", "2", "--seed", "4", "--cache-dir", str(tmp_path / "cache"), "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["feature_cache"]["used"] and summary["feature_cache"]["misses"] == 6
    with open(out / "metrics.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["epoch"] == summary["best_epoch"]
    assert ckpt["config"]["lr"] == 0.005 and ckpt["config"]["seed"] == 4
    assert ckpt["config"]["dataset_overrides"] == {
        "num_clips": 3, "num_frames": 2, "height": 48, "width": 64
    }  # fmt: skip
    assert (out / "last.pt").is_file()
    # Resuming a finished run changes nothing and succeeds.
    assert main([*argv, "--resume"]) == 0


def test_train_command_reports_configuration_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--backbone", "dinov2_vits14", "--epochs", "1"]) == 2
    assert "choose the backbone weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--augment", "heavy", "--no-pretrained"])
    assert "invalid choice: 'heavy'" in capsys.readouterr().err
