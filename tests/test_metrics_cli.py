"""`endobench eval`: DAVIS table, --json schema, --out files, and clear input errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from endobench.cli import main
from endobench.data.label_png import read_label_png, write_palette_png

TABLE_KEYS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]


def test_cli_json_matches_reference_vectors(
    samples: Path, metric_vectors: Path, capsys, tmp_path
) -> None:
    out = tmp_path / "rows.csv"
    rc = main(
        [
            "eval",
            "--gt",
            str(samples / "DAVIS"),
            "--pred",
            str(metric_vectors / "davis" / "dis"),
            "--sequences",
            "blackswan,dog",
            "--json",
            "--workers",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"sequences", "global"}
    assert list(result["sequences"]) == ["blackswan", "dog"]
    for seq in ("blackswan", "dog"):
        want = json.loads((metric_vectors / "davis" / "dis" / f"{seq}.json").read_text())["global"]
        assert list(result["sequences"][seq]) == TABLE_KEYS
        for key in TABLE_KEYS:
            assert result["sequences"][seq][key] == pytest.approx(want[key], abs=1e-9)
    assert result["global"]["J-Mean"] == pytest.approx(
        np.mean([result["sequences"][s]["J-Mean"] for s in ("blackswan", "dog")]), abs=1e-12
    )
    assert out.is_file() and (tmp_path / "rows-table.csv").is_file()
    assert len(out.read_text().splitlines()) == 1 + 48 + 58


def test_cli_table_plain_folder_pair(samples: Path, metric_vectors: Path, capsys) -> None:
    rc = main(
        [
            "eval",
            "--gt",
            str(samples / "DAVIS" / "Annotations" / "480p" / "car-shadow"),
            "--pred",
            str(metric_vectors / "davis" / "shift" / "car-shadow"),
            "--workers",
            "0",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "Global results for semi-supervised" in text and "car-shadow" in text
    want = json.loads((metric_vectors / "davis" / "shift" / "car-shadow.json").read_text())[
        "global"
    ]
    assert f"{want['J&F-Mean']:.6f}" in text


def _small_sequence(root: Path, n: int = 4, ids=(1,)) -> Path:
    for i in range(n):
        m = np.zeros((16, 24), np.uint8)
        for k in ids:
            m[2 + 3 * k : 5 + 3 * k, 2 + i : 8 + i] = k
        write_palette_png(root / f"{i:05d}.png", m)
    return root


def test_cli_errors(tmp_path: Path, capsys) -> None:
    gt = _small_sequence(tmp_path / "gt")
    pred = tmp_path / "pred"
    shutil.copytree(gt, pred)
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--workers", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["global"]["J-Mean"] == 1.0

    (pred / "00001.png").unlink()
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "prediction file(s) missing" in err and "00001.png" in err

    write_palette_png(pred / "00001.png", np.zeros((10, 10), np.uint8))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--workers", "0"]) == 2
    assert "00001.png: size 10x10" in capsys.readouterr().err

    extra = read_label_png(gt / "00001.png").copy()
    extra[0, 0] = 2
    write_palette_png(pred / "00001.png", extra)
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--workers", "0"]) == 2
    assert "object id(s) [2]" in capsys.readouterr().err

    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--metrics", "jf,xyz"]) == 2
    assert "unknown" in capsys.readouterr().err


def test_cli_temporal_consistency_on_dis_flow(samples: Path, metric_vectors: Path, capsys) -> None:
    rc = main(
        [
            "eval",
            "--gt",
            str(samples / "DAVIS"),
            "--pred",
            str(metric_vectors / "davis" / "dis"),
            "--sequences",
            "car-shadow",
            "--metrics",
            "jf,tc",
            "--json",
            "--workers",
            "0",
        ]
    )
    assert rc == 0
    glob = json.loads(capsys.readouterr().out)["global"]
    # ground truth is smoother under the flow than a propagated prediction, both in (0.5, 1]
    assert 0.5 < glob["TC-Pred"] <= 1.0 and 0.5 < glob["TC-GT"] <= 1.0
    assert glob["TC-Gap"] == pytest.approx(glob["TC-GT"] - glob["TC-Pred"])
    assert 0.0 <= glob["Flicker-Pred"] < 0.5
