"""`endobench track` writes DAVIS-layout palette PNGs and track.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from endobench.cli import main
from endobench.data import read_label_png


@pytest.fixture(scope="module")
def registry(samples: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reg") / "datasets.yaml"
    path.write_text(f"datasets:\n  davis:\n    format: davis\n    root: {samples / 'DAVIS'}\n")
    return path


def test_track_writes_davis_layout(registry: Path, samples: Path, tmp_path: Path):
    out = tmp_path / "out"
    code = main([
        "track", "--dataset", "davis", "--datasets", str(registry), "--sequence", "car-shadow",
        "--propagation", "flow:dis", "--keyframes", "every:15", "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    frames = sorted(p.stem for p in (samples / "DAVIS/JPEGImages/480p/car-shadow").glob("*.jpg"))
    written = sorted(p.stem for p in (out / "car-shadow").glob("*.png"))
    assert written == frames and len(frames) == 40
    record = json.loads((out / "track.json").read_text())
    clip = record["clips"]["car-shadow"]
    assert clip["keyframes"] == [0, 15, 30] and clip["frames"] == 40
    assert len(clip["confidence"]) == 40 and clip["timings_s"]["flow"] > 0
    assert record["parameters"]["keyframes"] == "every:15"
    assert record["propagator"]["name"] == "flow:dis:ultrafast"
    assert record["propagator"]["weights"]["source"].startswith("opencv")
    with Image.open(out / "car-shadow" / "00015.png") as im:
        assert im.mode == "P" and im.size == (854, 480)
    gt = read_label_png(samples / "DAVIS/Annotations/480p/car-shadow/00015.png")
    np.testing.assert_array_equal(read_label_png(out / "car-shadow" / "00015.png"), gt)
    pred = read_label_png(out / "car-shadow" / "00020.png")
    gt20 = read_label_png(samples / "DAVIS/Annotations/480p/car-shadow/00020.png")
    inter, union = np.logical_and(pred, gt20).sum(), np.logical_or(pred, gt20).sum()
    assert inter / union > 0.8


def test_track_usage_errors(registry: Path, tmp_path: Path, capsys):
    base = ["track", "--dataset", "davis", "--datasets", str(registry), "--out", str(tmp_path)]
    assert main([*base, "--keyframes", "every:0"]) == 2
    assert "every:K" in capsys.readouterr().err
    assert main([*base, "--sequence", "nope"]) == 2
    assert "blackswan" in capsys.readouterr().err
    assert main([*base, "--keyframe-source", "model"]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_track_model_keyframes_from_a_checkpoint(tmp_path: Path):
    """End to end with a tiny (random-init, 1 epoch) trained checkpoint: keyframes segmented by the
    network, segmenter blended on every frame (--fusion), provenance recorded."""
    from endobench.training.config import TrainConfig
    from endobench.training.loop import fit

    config = TrainConfig(
        dataset_overrides={"num_clips": 1, "num_frames": 2, "seed": 5, "height": 48, "width": 64},
        backbone_kwargs={"depth": 2, "embed_dim": 48, "num_heads": 2},
        head="linear", size=28, epochs=1, batch_size=2, pretrained=False,
        cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "run"),
    )  # fmt: skip
    checkpoint = fit(config, progress=False).last_checkpoint
    registry = tmp_path / "datasets.yaml"
    registry.write_text(
        "datasets:\n  syn:\n    format: synthetic\n    num_clips: 1\n    seed: 0\n"
        "    config: {height: 48, width: 64, num_frames: 8, num_objects: 2}\n"
    )
    out = tmp_path / "out"
    code = main([
        "track", "--dataset", "syn", "--datasets", str(registry), "--keyframe-source", "model",
        "--checkpoint", str(checkpoint), "--keyframes", "every:4", "--fusion", "--out", str(out),
        "--no-progress",
    ])  # fmt: skip
    assert code == 0
    record = json.loads((out / "track.json").read_text())
    (name,) = record["clips"]
    assert record["clips"][name]["keyframes"] == [0, 4]
    assert record["clips"][name]["timings_s"]["segment"] > 0
    assert len(record["parameters"]["checkpoint"]["sha256"]) == 64
    masks = sorted((out / name).glob("*.png"))
    assert len(masks) == 8
    assert read_label_png(masks[0]).shape == (48, 64)
