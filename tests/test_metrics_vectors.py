"""Every number in shared/testdata/metrics, reproduced (J/F/stats/T 1e-9, Dice/HD 1e-6)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from endobench.data.label_png import read_label_png
from endobench.metrics import (
    db_statistics,
    dice,
    evaluate_sequence,
    hausdorff,
    hd95,
    object_statistics,
    summarize,
)

SYNTHETIC_CASES = [
    "all_empty_after_first",
    "binary255_shift5",
    "dilate3",
    "drift3",
    "empty_gt",
    "empty_pred",
    "fullframe_gt",
    "identical",
    "long300",
    "morph_disc_square",
    "multi_object",
    "shift20",
    "shift5",
    "void_band",
]
DAVIS_VARIANTS = ["dilate", "dis", "drop", "erode", "fp", "shift"]
DAVIS_SEQUENCES = ["blackswan", "car-shadow", "dog", "drift-chicane"]
PROTOCOLS = ["semi-supervised", "unsupervised"]


def _read_folder(folder: Path) -> tuple[list[str], list[np.ndarray]]:
    files = sorted(folder.glob("*.png"))
    assert files, f"no PNGs in {folder}"
    return [f.stem for f in files], [read_label_png(f) for f in files]


@pytest.fixture(scope="module")
def davis_gt(samples: Path) -> dict[str, tuple[list[str], list[np.ndarray]]]:
    root = samples / "DAVIS" / "Annotations" / "480p"
    return {seq: _read_folder(root / seq) for seq in DAVIS_SEQUENCES}


def _bound_th(expected: dict) -> float:
    # The vectors record the pixel tolerance the reference used (0.008 of the diagonal).
    return 0.008


def _check_against(expected: dict, df, tol: float = 1e-9) -> None:
    """Per-frame J/F, per-object statistics and the global table of one expected JSON."""
    assert sorted(df["frame"].unique()) == expected["frames"]
    stats = object_statistics(df).set_index("object")
    assert sorted(stats.index) == sorted(int(o) for o in expected["objects"])
    for obj, exp in expected["objects"].items():
        rows = df[df["object"] == int(obj)].set_index("frame")
        for key in ("J", "F"):
            got = rows[key].reindex(list(exp[key])).to_numpy()
            np.testing.assert_allclose(got, list(exp[key].values()), rtol=0, atol=tol)
            for short, name in (("M", "Mean"), ("R", "Recall"), ("D", "Decay")):
                want = exp[f"{key}_stats"][short]
                if want is None:  # reference decay broken for >= 256 frames
                    want = exp["nonofficial_decay_int64"][key]
                assert stats.loc[int(obj), f"{key}-{name}"] == pytest.approx(want, abs=tol)
    table = summarize(df)
    seq = df["sequence"].iloc[0]
    for col, want in expected["global"].items():
        if want is None:
            continue
        assert table.loc[seq, col] == pytest.approx(want, abs=tol), col
        assert table.loc["global", col] == pytest.approx(want, abs=tol), col


@pytest.mark.parametrize("case", SYNTHETIC_CASES)
def test_synthetic_case_both_protocols(metric_vectors: Path, case: str) -> None:
    folder = metric_vectors / "synthetic" / case
    names, gt = _read_folder(folder / "gt")
    pred_names, pred = _read_folder(folder / "pred")
    assert pred_names == names
    for protocol in PROTOCOLS:
        expected = json.loads((folder / f"expected-{protocol}.json").read_text())
        assert expected["task"] == protocol
        df = evaluate_sequence(gt, pred, protocol, frame_names=names, sequence=case)
        _check_against(expected, df)


@pytest.mark.parametrize("variant", DAVIS_VARIANTS)
def test_davis_variant(metric_vectors: Path, davis_gt, variant: str) -> None:
    for seq in DAVIS_SEQUENCES:
        names, gt = davis_gt[seq]
        pred_names, pred = _read_folder(metric_vectors / "davis" / variant / seq)
        assert pred_names == names
        expected = json.loads((metric_vectors / "davis" / variant / f"{seq}.json").read_text())
        df = evaluate_sequence(gt, pred, "semi-supervised", frame_names=names, sequence=seq)
        _check_against(expected, df)


def _expected_number(value) -> float:
    if value is None:
        return math.nan
    if value == "inf":
        return math.inf
    return float(value)


def _assert_close(got: float, want: float, tol: float = 1e-6) -> None:
    if math.isnan(want):
        assert math.isnan(got)
    elif math.isinf(want):
        assert got == want
    else:
        assert got == pytest.approx(want, abs=tol)


@pytest.mark.parametrize("case", SYNTHETIC_CASES)
def test_dice_and_hausdorff_both_definitions(metric_vectors: Path, case: str) -> None:
    folder = metric_vectors / "synthetic" / case
    expected = json.loads((folder / "expected-dice-hd.json").read_text())
    names, gt = _read_folder(folder / "gt")
    _, pred = _read_folder(folder / "pred")
    assert names == expected["frames"]
    for obj, exp in expected["objects"].items():
        k = int(obj)
        for t, (g_map, p_map) in enumerate(zip(gt, pred, strict=True)):
            g, p = g_map == k, p_map == k
            both_empty = not g.any() and not p.any()
            # Dice: medpy's value; both empty -> our configurable default 1.0 (medpy/numpy 1.x).
            want_dc = _expected_number(exp["medpy_dc"][t])
            _assert_close(dice(g, p), 1.0 if both_empty else want_dc)
            if both_empty:
                assert math.isnan(dice(g, p, empty=math.nan))
            _assert_close(
                dice(g, p),
                _expected_number(exp["monai_dice_not_ignore_empty"][t]) if not both_empty else 1.0,
            )
            _assert_close(hd95(g, p, "medpy"), _expected_number(exp["medpy_hd95"][t]))
            # MONAI returns float32 and its last bits depend on torch's float32 interpolation;
            # 1e-6 absolute is below float32 resolution above 8 px, so compare relatively.
            want_monai = _expected_number(exp["monai_hd95"][t])
            got_monai = hd95(g, p, "monai")
            if math.isnan(want_monai):
                assert math.isnan(got_monai)
            else:
                assert got_monai == pytest.approx(want_monai, rel=1e-6, abs=1e-6)
            # MONAI's Hausdorff is a float32 cast of the same maximum: compare to float32.
            want_hd = _expected_number(exp["monai_hd"][t])
            got_hd = hausdorff(g, p)
            if both_empty or math.isinf(want_hd):
                _assert_close(got_hd, math.nan if both_empty else want_hd)
            else:
                assert got_hd == pytest.approx(want_hd, rel=1e-6, abs=1e-6)
            if exp["medpy_hd"][t] is not None:
                _assert_close(got_hd, float(exp["medpy_hd"][t]))


def _object_masks(label_maps: list[np.ndarray], k: int) -> list[np.ndarray]:
    return [m == k for m in label_maps]


def test_temporal_stability_vectors_through_evaluate(metric_vectors: Path) -> None:
    """T of synthetic expected-T.json files through evaluate_sequence's ``t`` metric (the
    temporal helper's tests cover the rest of the T vectors)."""
    cases = [metric_vectors / "synthetic" / c for c in ("drift3", "empty_pred")]
    for folder in cases:
        expected = json.loads((folder / "expected-T.json").read_text())
        names, gt = _read_folder(folder / "gt")
        _, pred = _read_folder(folder / "pred")
        df = evaluate_sequence(gt, pred, "semi-supervised", "jf,t", frame_names=names)
        for obj, exp in expected["objects"].items():
            got = df.loc[df["object"] == int(obj), "T"].iloc[0]
            assert got == pytest.approx(exp["T-Mean"], abs=1e-9)


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_decay_deviation_for_long_sequences(metric_vectors: Path) -> None:
    """N >= 256: the reference's uint8 bin indices break decay; ours uses wide ints."""
    folder = metric_vectors / "synthetic" / "long300"
    expected = json.loads((folder / "expected-semi-supervised.json").read_text())
    assert expected["objects"]["1"]["J_stats"]["D"] is None  # the reference's broken value
    names, gt = _read_folder(folder / "gt")
    _, pred = _read_folder(folder / "pred")
    df = evaluate_sequence(gt, pred, frame_names=names)
    assert len(df) == 298
    for key in ("J", "F"):
        decay = db_statistics(df[key].to_numpy())["decay"]
        assert decay == pytest.approx(
            expected["objects"]["1"]["nonofficial_decay_int64"][key], abs=1e-9
        )
        # What uint8 indices would give: bins from wrapped indices, not the real quarters.
        values = df[key].to_numpy()
        ids = (np.round(np.linspace(1, values.size, 5) + 1e-10) - 1).astype(np.uint8)
        wrapped = np.nanmean(values[ids[0] : ids[1] + 1]) - np.nanmean(values[ids[3] : ids[4] + 1])
        assert wrapped != pytest.approx(decay, abs=1e-09)
