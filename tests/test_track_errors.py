"""`endobench track` user errors: exit 2, one line naming the problem, no traceback, no half clip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from endobench.cli import main


@pytest.fixture(scope="module")
def files(samples: Path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("track_errors")
    # A 12-frame DAVIS copy of car-shadow whose frame 00008 is a truncated JPEG.
    davis = root / "DAVIS"
    for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        src = samples / "DAVIS" / kind / "480p" / "car-shadow"
        dst = davis / kind / "480p" / "car-shadow"
        dst.mkdir(parents=True)
        for i in range(12):
            shutil.copy(src / f"{i:05d}.{ext}", dst)
    bad = davis / "JPEGImages/480p/car-shadow/00008.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    paths = {
        "good": root / "good.yaml",
        "broken": root / "broken.yaml",
        "missing": root / "missing.yaml",
        "a_file": root / "a_file",
        "text_ckpt": root / "text.pt",
    }
    paths["good"].write_text(f"datasets:\n  d:\n    format: davis\n    root: {davis}\n")
    paths["broken"].write_text("datasets: [unclosed\n")
    paths["missing"].write_text(f"datasets:\n  d:\n    format: davis\n    root: {root / 'nope'}\n")
    paths["a_file"].write_text("x")
    paths["text_ckpt"].write_text("not a checkpoint")
    return paths


CASES = [
    # (id, argument builder, text the one line must contain)
    ("unknown dataset", lambda f: ["--dataset", "nope", "--datasets", f["good"]], "'nope'"),
    ("broken registry", lambda f: ["--dataset", "d", "--datasets", f["broken"]], "broken.yaml"),
    ("missing root", lambda f: ["--dataset", "d", "--datasets", f["missing"]], "nope"),
    (
        "unknown flow method",
        lambda f: ["--dataset", "d", "--datasets", f["good"], "--propagation", "flow:pwc"],
        "flow method 'pwc'",
    ),
    (
        "missing RAFT weights",
        lambda f: [
            "--dataset",
            "d",
            "--datasets",
            f["good"],
            "--propagation",
            "flow:raft_small",
            "--weights",
            f["a_file"].with_name("none.pth"),
        ],
        "none.pth",
    ),  # fmt: skip
    (
        "bad keyframe list",
        lambda f: ["--dataset", "d", "--datasets", f["good"], "--keyframes", "list:4,2"],
        "list:4,2",
    ),
    (
        "text checkpoint",
        lambda f: [
            "--dataset",
            "d",
            "--datasets",
            f["good"],
            "--keyframe-source",
            "model",
            "--checkpoint",
            f["text_ckpt"],
        ],
        "text.pt",
    ),  # fmt: skip
    ("corrupt frame mid-clip", lambda f: ["--dataset", "d", "--datasets", f["good"]], "00008.jpg"),
]


@pytest.mark.parametrize("case, build, expected", CASES, ids=[c[0] for c in CASES])
def test_track_user_error_is_one_line(files, tmp_path: Path, capsys, case, build, expected):
    # In-process through the CLI's own entry point and error boundary (cli.main).
    out = tmp_path / "out"
    args = [str(a) for a in build(files)]
    code = main(["track", *args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("endobench track: error: "), err
    assert expected in lines[0] and "Traceback" not in err
    if out.is_dir():  # nothing half-written: no clip folder, no temp folder
        assert [p.name for p in out.iterdir()] == []


def test_out_being_a_file_in_a_real_process(files):
    proc = subprocess.run(
        [sys.executable, "-m", "endobench.cli", "track", "--dataset", "d", "--datasets",
         str(files["good"]), "--out", str(files["a_file"]), "--no-progress"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"endobench track: error: --out {files['a_file']}: exists and is not a folder "
        "(expected an output folder)"
    )
    assert files["a_file"].read_text() == "x"


def test_corrupt_frame_keeps_earlier_clips_and_leaves_no_half_clip(files, tmp_path: Path, capsys):
    out = tmp_path / "out"
    (out / "car-shadow").mkdir(parents=True)
    (out / "car-shadow" / "old.png").write_bytes(b"previous run")
    assert main(["track", "--dataset", "d", "--datasets", str(files["good"]), "--out", str(out),
                 "--no-progress"]) == 2  # fmt: skip
    assert "00008.jpg" in capsys.readouterr().err
    # The previous complete output is untouched and no temp folder is left behind.
    assert sorted(p.name for p in out.rglob("*")) == ["car-shadow", "old.png"]
