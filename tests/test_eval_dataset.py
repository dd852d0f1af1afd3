"""`endobench eval --dataset`: scores through the registry reader equal folder-mode scores of the
same masks written out as PNGs (CholecSeg8k multi-class with void, CVC-ClinicDB, a sparsely
annotated folder dataset), in the same --json layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from endobench.cli import main
from endobench.data import load_registry, write_palette_png
from endobench.metrics import evaluate_sequence, summarize


@pytest.fixture(scope="module")
def registry_file(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sparse")
    _sparse_folder_dataset(root / "data")
    path = root / "datasets.yaml"
    path.write_text(
        "datasets:\n"
        f"  cholecseg8k: {{format: cholecseg8k, root: {samples}/CholecSeg8k}}\n"
        f"  cvc: {{format: cvc-clinicdb, root: {samples}/CVC-ClinicDB}}\n"
        f"  sparse: {{format: folder, root: {root}/data, classes: {{1: a, 2: b}}}}\n"
    )
    return path


SPARSE_ANNOTATED = (0, 2, 3, 6, 7)


def _disc(shape: tuple[int, int], cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def _sparse_folder_dataset(root: Path) -> None:
    """8 frames of 40x60, two objects, masks only on SPARSE_ANNOTATED (void 255 on one)."""
    from PIL import Image

    for t in range(8):
        (root / "images" / "clip").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 60, 3), 10 * t, np.uint8)).save(
            root / "images" / "clip" / f"f{t:02d}.png"
        )
        if t in SPARSE_ANNOTATED:
            m = np.zeros((40, 60), np.uint8)
            m[_disc((40, 60), 20, 15 + 2 * t, 8)] = 1
            m[_disc((40, 60), 10, 45, 5)] = 2
            if t == 3:
                m[:, 58:] = 255
            write_palette_png(root / "masks" / "clip" / f"f{t:02d}.png", m)


def _eval_json(capsys, *argv: str) -> dict:
    assert main(["eval", *argv, "--json", "--workers", "2"]) == 0
    return json.loads(capsys.readouterr().out)


def _write_clip(folder: Path, masks: dict[str, np.ndarray]) -> None:
    for stem, m in masks.items():
        write_palette_png(folder / f"{stem}.png", m)


def test_cholecseg8k_dataset_mode_equals_folder_mode(registry_file, tmp_path, capsys) -> None:
    (clip,) = load_registry(registry_file).open("cholecseg8k").clips()
    stems = clip.frame_names
    gts = {s: clip.mask(i) for i, s in enumerate(stems)}
    # prediction: the previous frame's labels (void -> background), a "copy last mask" tracker
    preds = {s: np.where(gts[stems[max(i - 1, 0)]] == 255, 0, gts[stems[max(i - 1, 0)]])
             for i, s in enumerate(stems)}  # fmt: skip
    _write_clip(tmp_path / "pred" / clip.name, preds)
    _write_clip(tmp_path / "gt" / clip.name, gts)
    by_dataset = _eval_json(
        capsys, "--dataset", "cholecseg8k", "--datasets", str(registry_file),
        "--pred", str(tmp_path / "pred"), "--metrics", "jf,dice",
    )  # fmt: skip
    by_folder = _eval_json(
        capsys, "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
        "--metrics", "jf,dice",
    )  # fmt: skip
    assert by_dataset == by_folder
    assert list(by_dataset["sequences"]) == ["video48_00561"]
    # objects 1..10 (max id of the first frame); independent check with evaluate_sequence
    rows = evaluate_sequence(
        list(gts.values()), list(preds.values()), metrics="jf,dice", sequence=clip.name
    )
    assert sorted(rows["object"].unique()) == list(range(1, 11))
    want = summarize(rows).loc["global"]
    for key, value in by_dataset["global"].items():
        assert value == pytest.approx(float(want[key]), abs=1e-12), key
    assert 0.5 < by_dataset["global"]["J&F-Mean"] < 1.0


def test_cvc_dataset_mode_equals_folder_mode(registry_file, tmp_path, capsys) -> None:
    clips = {c.name: c for c in load_registry(registry_file).open("cvc").clips()}
    for name in ("seq04", "seq10"):
        clip = clips[name]
        gts = {s: clip.mask(i) for i, s in enumerate(clip.frame_names)}
        _write_clip(tmp_path / "gt" / name, gts)
        _write_clip(tmp_path / "pred" / name, {s: np.roll(m, 9, axis=1) for s, m in gts.items()})
    by_dataset = _eval_json(
        capsys, "--dataset", "cvc", "--datasets", str(registry_file),
        "--pred", str(tmp_path / "pred"), "--sequences", "seq04,seq10",
    )  # fmt: skip
    by_folder = _eval_json(capsys, "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"))
    assert by_dataset == by_folder
    assert list(by_dataset["sequences"]) == ["seq04", "seq10"]
    assert 0.3 < by_dataset["global"]["J-Mean"] < 0.95


def test_sparse_annotations_score_annotated_frames_only(registry_file, tmp_path, capsys) -> None:
    (clip,) = load_registry(registry_file).open("sparse").clips()
    assert clip.annotated == list(SPARSE_ANNOTATED)
    # predictions for every frame, as `endobench track` writes them; annotated ones shifted
    preds = {}
    for i, stem in enumerate(clip.frame_names):
        gt = clip.mask(i)
        preds[stem] = np.zeros((40, 60), np.uint8) if gt is None else np.roll(gt % 255, 2, 1)
    _write_clip(tmp_path / "pred" / "clip", preds)
    _write_clip(
        tmp_path / "gt" / "clip", {clip.frame_names[i]: clip.mask(i) for i in clip.annotated}
    )
    out = tmp_path / "rows.csv"
    assert (
        main(
            [
                "eval",
                "--dataset",
                "sparse",
                "--datasets",
                str(registry_file),
                "--pred",
                str(tmp_path / "pred"),
                "--workers",
                "0",
                "--out",
                str(out),
                "--json",
            ]
        )  # fmt: skip
        == 0
    )
    by_dataset = json.loads(capsys.readouterr().out)
    # semi-supervised on the annotated frames: first (f00) and last (f07) not scored
    frames = [line.split(",")[1] for line in out.read_text().splitlines()[1:]]
    assert frames == ["f02", "f02", "f03", "f03", "f06", "f06"]
    by_folder = _eval_json(capsys, "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"))
    assert by_dataset == by_folder


def test_dataset_mode_temporal_consistency_uses_the_clip_frames(registry_file, tmp_path, capsys):
    (clip,) = load_registry(registry_file).open("sparse").clips()
    for i, stem in enumerate(clip.frame_names):
        gt = clip.mask(i)
        m = np.zeros((40, 60), np.uint8) if gt is None else gt % 255
        write_palette_png(tmp_path / "pred" / "clip" / f"{stem}.png", m)
    glob = _eval_json(
        capsys, "--dataset", "sparse", "--datasets", str(registry_file),
        "--pred", str(tmp_path / "pred"), "--metrics", "jf,tc",
    )["global"]  # fmt: skip
    # predictions equal the ground truth (void as background) on the scored frames
    assert glob["J&F-Mean"] == 1.0
    assert 0.5 < glob["TC-Pred"] <= 1.0 and 0.5 < glob["TC-GT"] <= 1.0
    assert glob["TC-Gap"] == pytest.approx(glob["TC-GT"] - glob["TC-Pred"], abs=1e-12)
