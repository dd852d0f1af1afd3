"""`endobench datasets list | check | preview` through `endobench.cli.main`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from endobench.cli import main


@pytest.fixture()
def registry_file(samples: Path, tmp_path: Path) -> Path:
    good = tmp_path / "pairs"
    for folder in ("images", "masks"):
        (good / folder).mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.full((5, 6, 3), 40 * k, np.uint8)).save(good / "images" / f"{k}.png")
        mask = np.zeros((5, 6), np.uint8)
        mask[1:4, 1:3] = 255
        Image.fromarray(mask).save(good / "masks" / f"{k}.png")
    path = tmp_path / "datasets.yaml"
    path.write_text(
        "datasets:\n"
        "  pairs: {format: pairs, root: pairs, description: three tiny pairs}\n"
        f"  bagls: {{format: bagls, root: {samples}/BAGLS}}\n"
        "  missing: {format: davis, root: nowhere}\n"
    )
    return path


def test_list(registry_file, capsys):
    assert main(["datasets", "list", "--datasets", str(registry_file)]) == 0
    out = capsys.readouterr().out
    assert f"registry: {registry_file.resolve()}" in out
    assert "pairs" in out and "three tiny pairs" in out
    assert "nowhere  [missing]" in out
    assert "synthetic" in out and "(built-in)" in out


def test_check_clean_dataset(registry_file, capsys):
    assert main(["datasets", "check", "bagls", "--datasets", str(registry_file)]) == 0
    out = capsys.readouterr().out
    assert "groups of images: 3; frames read: 150; masks read: 150" in out
    assert "no problems found" in out


def test_check_reports_every_problem_and_exits_1(registry_file, tmp_path, capsys):
    (tmp_path / "pairs" / "images" / "1.png").write_bytes(b"\x89PNG broken")
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "pairs" / "masks" / "2.png")
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "pairs" / "masks" / "9.png")
    assert main(["datasets", "check", "pairs", "--datasets", str(registry_file)]) == 1
    out = capsys.readouterr().out
    assert "frames read: 1; masks read: 1" in out
    assert "3 problem(s):" in out
    assert "masks/9.png: mask has no image with the same name" in out
    assert "images/1.png: not a readable image" in out
    assert "masks/2.png: mask size 2x2 (WxH) differs from image 2.png size 6x5" in out


def test_check_missing_root_and_unknown_name_exit_2_like_every_command(registry_file, capsys):
    # A user's mistake: one line and exit 2 (cli.run_command); exit 1 means problems were found.
    assert main(["datasets", "check", "missing", "--datasets", str(registry_file)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("endobench datasets: error: ")
    assert "nowhere: dataset root folder not found" in line
    assert main(["datasets", "check", "nope", "--datasets", str(registry_file)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("endobench datasets: error: ")
    assert "no dataset named 'nope'; known: pairs, bagls, missing, synthetic" in line


def test_preview_writes_a_contact_sheet(registry_file, tmp_path, capsys):
    out = tmp_path / "sheets" / "sheet.png"
    args = ["datasets", "preview", "bagls", "--out", str(out), "--count", "6", "--columns", "3"]
    assert main([*args, "--datasets", str(registry_file)]) == 0
    sheet = np.asarray(Image.open(out))
    # 2 rows x 3 columns of 180 x 240 tiles with 4 px gaps
    assert sheet.shape == (2 * 180 + 3 * 4, 3 * 240 + 4 * 4, 3)
    assert f"wrote {out} (6 frames of 'bagls')" in capsys.readouterr().out
    assert not list(out.parent.glob(".*tmp"))


def test_check_synthetic_built_in(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(
        "datasets:\n  synthetic: {format: synthetic, num_clips: 1, config: {num_frames: 4, height: 48, width: 64}}\n"
    )
    assert main(["datasets", "check", "synthetic", "--datasets", str(path)]) == 0
    assert "clips: 1; frames read: 4; masks read: 4" in capsys.readouterr().out
