"""Every user error of `endobench eval` is one line on stderr, exit code 2, no traceback and no
output file; ignored prediction files and folders give one warning line each (issue 10)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from endobench.cli import main
from endobench.data import write_palette_png

H, W = 16, 24


def _mask(i: int, ids: tuple[int, ...] = (1,)) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    for k in ids:
        m[2 + 3 * k : 5 + 3 * k, 2 + i : 8 + i] = k
    return m


@pytest.fixture()
def case(tmp_path: Path) -> Path:
    """``gt/seq/0000i.png`` (DAVIS-like folder of sequences), identical ``pred/``, a folder
    dataset ``data/`` of the same masks with a registry file ``datasets.yaml``."""
    from PIL import Image

    for i in range(4):
        write_palette_png(tmp_path / "gt" / "seq" / f"{i:05d}.png", _mask(i))
        (tmp_path / "data" / "images" / "seq").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(
            tmp_path / "data" / "images" / "seq" / f"{i:05d}.png"
        )
        write_palette_png(tmp_path / "data" / "masks" / "seq" / f"{i:05d}.png", _mask(i))
    shutil.copytree(tmp_path / "gt", tmp_path / "pred")
    (tmp_path / "datasets.yaml").write_text(
        f"datasets:\n  mine: {{format: folder, root: {tmp_path / 'data'}, classes: {{1: polyp}}}}\n"
    )
    return tmp_path


FOLDER = ["--gt", "{t}/gt", "--pred", "{t}/pred"]
DATASET = ["--dataset", "mine", "--datasets", "{t}/datasets.yaml", "--pred", "{t}/pred"]


def _remove_frame(t: Path) -> None:
    (t / "pred" / "seq" / "00001.png").unlink()


def _frame_is_dir(t: Path) -> None:
    (t / "pred" / "seq" / "00001.png").unlink()
    (t / "pred" / "seq" / "00001.png").mkdir()


def _small_frame(t: Path) -> None:
    write_palette_png(t / "pred" / "seq" / "00001.png", np.zeros((10, 10), np.uint8))


def _extra_object(t: Path) -> None:
    write_palette_png(t / "pred" / "seq" / "00002.png", _mask(2, (1, 2)))


def _out_dir(t: Path) -> None:
    (t / "rows.csv").mkdir()


def _out_under_file(t: Path) -> None:
    (t / "afile").write_text("x")


def _no_clip(t: Path) -> None:
    shutil.rmtree(t / "pred" / "seq")


def _foreign_class(t: Path) -> None:
    m = _mask(1)
    m[0, 0] = 7
    write_palette_png(t / "pred" / "seq" / "00001.png", m)


ERRORS = [
    # (id, mode args, extra args, setup, what the one line contains)
    ("workers", FOLDER, ["--workers", "-1"], None,
     "--workers -1: expected 0 (score in the calling thread) or a positive number of threads"),
    ("bound-th-negative", FOLDER, ["--bound-th", "-1"], None,
     "--bound-th -1: expected a number > 0"),
    ("bound-th-zero", FOLDER, ["--bound-th", "0"], None, "--bound-th 0: expected a number > 0"),
    ("bound-th-nan", FOLDER, ["--bound-th", "nan"], None, "--bound-th nan: expected a number > 0"),
    ("metric", FOLDER, ["--metrics", "jf,xyz"], None, "metrics: unknown ['xyz']; expected some of"),
    ("out-is-dir", FOLDER, [], _out_dir, "rows.csv is a directory; expected a CSV file path"),
    ("out-under-file", FOLDER, [], _out_under_file, "{t}/afile is a file, not a folder"),
    ("gt-missing", ["--gt", "{t}/nope", "--pred", "{t}/pred"], [], None,
     "{t}/nope: ground-truth folder not found"),
    ("pred-missing", ["--gt", "{t}/gt", "--pred", "{t}/nope"], [], None,
     "{t}/nope: prediction folder not found"),
    ("frame-missing", FOLDER, [], _remove_frame,
     "sequence seq: 1 prediction file(s) missing: {t}/pred/seq/00001.png"),
    ("frame-is-dir", FOLDER, [], _frame_is_dir,
     "{t}/pred/seq/00001.png: is a directory, expected a prediction PNG file"),
    ("size", FOLDER, [], _small_frame,
     "{t}/pred/seq/00001.png: size 10x10 but ground truth {t}/gt/seq/00001.png is 24x16"),
    ("object-id", FOLDER, [], _extra_object,
     "{t}/pred/seq: seq/00002: prediction has object id(s) [2] but the first ground-truth "
     "frame has 1 object(s) (ids 1..1)"),
    ("tc-no-frames", FOLDER, ["--metrics", "tc"], None,
     "sequence seq: --metrics tc needs the video frames at ROOT/JPEGImages/480p/<seq>"),
    ("split-with-gt", FOLDER, ["--split", "val"], None, "--datasets and --split go with --dataset"),
    ("dataset-unknown", ["--dataset", "nope", "--datasets", "{t}/datasets.yaml", "--pred",
                         "{t}/pred"], [], None, "no dataset named 'nope'; known: mine"),
    ("dataset-clip-missing", DATASET, [], _no_clip,
     "{t}/pred/seq: prediction folder missing for clip seq of dataset mine"),
    ("dataset-frame-missing", DATASET, [], _remove_frame,
     "sequence seq: 1 prediction file(s) missing: {t}/pred/seq/00001.png"),
    ("dataset-class", DATASET, [], _foreign_class,
     "{t}/pred/seq/00001.png: class id(s) [7] that dataset mine does not have "
     "(0 background, 1 polyp)"),
    ("dataset-size", DATASET, [], _small_frame,
     "{t}/pred/seq/00001.png: size 10x10 but ground truth dataset mine clip seq frame 00001 "
     "is 24x16"),
    ("dataset-sequence", DATASET, ["--sequences", "other"], None,
     "dataset mine: no clip(s) ['other']; available: seq"),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "extra", "setup", "line"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])  # fmt: skip
def test_user_error_is_one_line(case: Path, capsys, mode, extra, setup, line) -> None:
    if setup is not None:
        setup(case)
    out = case / ("afile/rows.csv" if setup is _out_under_file else "rows.csv")
    argv = [a.format(t=case) for a in mode + extra]
    workers = [] if "--workers" in extra else ["--workers", "0"]
    assert main(["eval", *argv, "--out", str(out), *workers]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("endobench eval: error: ")
    assert line.format(t=case) in lines[0]
    assert "Traceback" not in captured.err
    assert not (case / "rows-table.csv").exists()
    assert out.is_dir() if setup is _out_dir else not out.exists()


def test_workers_zero_and_positive_are_accepted(case: Path, capsys) -> None:
    for workers in ("0", "1", "3"):
        argv = ["eval", "--gt", f"{case}/gt", "--pred", f"{case}/pred", "--json"]
        assert main([*argv, "--workers", workers]) == 0
        assert '"J&F-Mean": 1.0' in capsys.readouterr().out


def test_extra_predictions_warn_one_line_each(case: Path, capsys) -> None:
    write_palette_png(case / "pred" / "seq" / "00009.png", _mask(0))
    write_palette_png(case / "pred" / "seq" / "extra.png", _mask(0))
    write_palette_png(case / "pred" / "other" / "00000.png", _mask(0))
    out = case / "rows.csv"
    for mode in (FOLDER, DATASET):
        argv = [a.format(t=case) for a in mode]
        assert main(["eval", *argv, "--workers", "0", "--json", "--out", str(out)]) == 0
        captured = capsys.readouterr()
        assert '"J&F-Mean": 1.0' in captured.out
        lines = captured.err.splitlines()
        assert len(lines) == 2, captured.err
        assert lines[0] == (
            f"endobench eval: warning: {case}/pred/other: prediction folder ignored, no "
            + ("ground-truth sequence" if mode is FOLDER else "clip of dataset mine")
            + " of that name"
        )
        assert lines[1] == (
            f"endobench eval: warning: {case}/pred/seq: 2 prediction file(s) ignored, no frame "
            "of sequence seq has their name: 00009.png, extra.png"
        )
        assert len(out.read_text().splitlines()) == 1 + 2


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--pred", "p"], "one of the arguments --gt --dataset is required"),
        (["--gt", "g", "--dataset", "d", "--pred", "p"], "argument --dataset: not allowed with"),
        (["--gt", "g", "--pred", "p", "--workers", "two"], "argument --workers: invalid int"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, line) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["eval", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("endobench eval: error: "), err
    assert line in err and err.rstrip().endswith("(see endobench eval --help)")
