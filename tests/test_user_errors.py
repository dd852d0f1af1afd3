"""Every user mistake of train / ablate / report / synth / datasets: exit 2, one line, no traceback, no debris.

One row per case: the command line (``{tmp}`` is the test's folder), the files to write first,
and text the one line must contain. Each case also checks that nothing half-written is left:
no temporary files, and no file or folder other than those the case wrote.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from endobench.cli import main

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_02 = REPO / "notebooks" / "02_train_segmentation.ipynb"
NOTEBOOK_03 = REPO / "notebooks" / "03_propagate_track.ipynb"
# A TrainConfig that builds in about a second: tiny ViT, 2 synthetic frames of 48 x 64.
TINY_TRAIN = """\
pretrained: false
backbone_kwargs: {depth: 1, embed_dim: 24, num_heads: 2}
dataset_overrides: {num_clips: 2, num_frames: 2, height: 48, width: 64}
head: linear
size: 28
epochs: 1
batch_size: 2
use_feature_cache: false
"""


def grid_yaml(fixed: str = "epochs: 1", axes: str = "policy: [first]") -> str:
    """A train -> track grid over the shipped notebooks 02 and 03."""
    return f"""\
name: g
stages:
  - {{name: train, notebook: {NOTEBOOK_02}, dir: checkpoints}}
  - name: track
    notebook: {NOTEBOOK_03}
    inputs: {{checkpoint: train/best.pt}}
axes: {{{axes}}}
fixed: {{{fixed}}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CASES = {
    # train --config
    "train config not YAML": (
        ["train", "--config", "{tmp}/c.yaml"],
        {"c.yaml": "epochs: [1, 2\nlr: 3\n"},
        "c.yaml: not valid YAML: line 2",
    ),
    "train config python tag": (
        ["train", "--config", "{tmp}/c.yaml"],
        {"c.yaml": "epochs: !!python/object/apply:os.system ['touch {tmp}/PWNED']\n"},
        "YAML tags are not allowed",
    ),
    "train config duplicate key": (
        ["train", "--config", "{tmp}/c.yaml"],
        {"c.yaml": "epochs: 1\nlr: 0.1\nepochs: 2\n"},
        "c.yaml: not valid YAML: duplicate key 'epochs' on lines 1 and 3",
    ),
    "train config wrong type": (
        ["train", "--config", "{tmp}/c.yaml"],
        {"c.yaml": "epochs: ten\npretrained: false\n"},
        "field 'epochs': value 'ten': Input should be a valid integer",
    ),
    "train config unknown field": (
        ["train", "--config", "{tmp}/c.yaml"],
        {"c.yaml": "epoch: 1\npretrained: false\n"},
        "field 'epoch': unknown field",
    ),
    "train config missing": (
        ["train", "--config", "{tmp}/nope.yaml"],
        {},
        "nope.yaml: file not found",
    ),
    "train out is a file": (
        ["train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/out"],
        {"c.yaml": TINY_TRAIN, "out": "a file"},
        "--out {tmp}/out: is a file, expected a folder",
    ),
    "train unknown dataset": (
        ["train", "--config", "{tmp}/c.yaml", "--dataset", "kvasir-nope", "--out", "{tmp}/o"],
        {"c.yaml": TINY_TRAIN},
        "no dataset named 'kvasir-nope'; known:",
    ),
    "train registry duplicate dataset": (
        ["train", "--config", "{tmp}/c.yaml", "--datasets", "{tmp}/r.yaml", "--out", "{tmp}/o"],
        {
            "c.yaml": TINY_TRAIN,
            "r.yaml": "datasets:\n  a: {format: synthetic}\n  a: {format: synthetic, seed: 2}\n",
        },
        "r.yaml: not valid YAML: duplicate key 'a' on lines 2 and 3",
    ),
    "train resume from a text file": (
        ["train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/o", "--resume"],
        {"c.yaml": TINY_TRAIN, "o/last.pt": "epoch 3 of 10\n"},
        "checkpoint {tmp}/o/last.pt: a text file (14 bytes), not a torch file",
    ),
    "train resume from a truncated checkpoint": (
        ["train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/o", "--resume"],
        {"c.yaml": TINY_TRAIN, "o/last.pt": b"PK\x03\x04" + b"\x00" * 60},
        "checkpoint {tmp}/o/last.pt: the file is truncated or corrupt (64 bytes",
    ),
    "train weights from a text file": (
        ["train", "--config", "{tmp}/c.yaml", "--weights", "{tmp}/w.pth", "--out", "{tmp}/o"],
        {"c.yaml": TINY_TRAIN.replace("pretrained: false\n", ""), "w.pth": "not weights"},
        "weights file {tmp}/w.pth: cannot be read with torch.load(weights_only=True): a text file (11 bytes)",
    ),
    # ablate
    "ablate results is a file": (
        ["ablate", "{tmp}/g.yaml", "--results", "{tmp}/res"],
        {"g.yaml": grid_yaml(), "res": "a file"},
        "--results {tmp}/res: {tmp}/res is a file, expected a folder",
    ),
    "ablate grid missing": (
        ["ablate", "{tmp}/none.yaml", "--dry-run"],
        {},
        "none.yaml: grid file not found (resolved: {tmp}/none.yaml, working directory",
    ),
    "ablate grid duplicate key": (
        ["ablate", "{tmp}/g.yaml", "--dry-run"],
        {"g.yaml": grid_yaml() + "name: h\n"},
        "g.yaml: not valid YAML: duplicate key 'name' on lines 1 and 9",
    ),
    "ablate epochs ten": (
        ["ablate", "{tmp}/g.yaml", "--dry-run"],
        {"g.yaml": grid_yaml('epochs: "ten"')},
        "stage train: field 'epochs': value 'ten': Input should be a valid integer",
    ),
    "ablate epochs negative": (
        ["ablate", "{tmp}/g.yaml", "--dry-run"],
        {"g.yaml": grid_yaml("epochs: -1")},
        "stage train: field 'epochs': value -1: Input should be greater than or equal to 1",
    ),
    "ablate bogus augmentation": (
        ["ablate", "{tmp}/g.yaml", "--dry-run"],
        {"g.yaml": grid_yaml("augmentation: bogus")},
        "field 'augmentation': value 'bogus': unknown augmentation preset 'bogus'; expected one "
        "of ['basic', 'classic', 'endoscopic', 'none']",
    ),
    "ablate unknown backbone": (
        ["ablate", "{tmp}/g.yaml", "--dry-run"],
        {"g.yaml": grid_yaml(axes="backbone: [resnet50, dinov2_vitxx]")},
        "(backbone=dinov2_vitxx), stage train: field 'backbone': value "
        "'dinov2_vitxx': unknown backbone 'dinov2_vitxx'; expected one of dinov2_vits14,",
    ),
    "ablate policy every:0": (
        ["ablate", "{tmp}/g.yaml", "--dry-run"],
        {"g.yaml": grid_yaml(axes='policy: [first, "every:0"]')},
        "stage track: field 'policy': value 'every:0': keyframe policy 'every:0': every:K needs "
        "an integer K >= 1",
    ),
    "ablate unknown propagation": (
        ["ablate", "{tmp}/g.yaml", "--dry-run"],
        {"g.yaml": grid_yaml('propagation: "affinity:dinov3"')},
        "field 'propagation': value 'affinity:dinov3': unknown backbone 'dinov3'",
    ),
    "ablate max_clips zero": (
        ["ablate", "{tmp}/g.yaml", "--dry-run"],
        {"g.yaml": grid_yaml("max_clips: 0")},
        "field 'max_clips': value 0: Input should be greater than or equal to 1",
    ),
    "ablate workers zero": (
        ["ablate", "{tmp}/g.yaml", "--workers", "0"],
        {"g.yaml": grid_yaml()},
        "--workers 0: expected an integer >= 1",
    ),
    # report / synth
    "report not a sweep": (
        ["report", "{tmp}/empty"],
        {"empty/notes.txt": "x"},
        "{tmp}/empty/plan.json: not found (resolved: {tmp}/empty/plan.json); expected a sweep",
    ),
    "synth out is a file": (
        ["synth", "--out", "{tmp}/f", "--frames", "2"],
        {"f": "a file"},
        "--out {tmp}/f: {tmp}/f is a file, expected a folder",
    ),
    # datasets
    "datasets list registry not YAML": (
        ["datasets", "list", "--datasets", "{tmp}/r.yaml"],
        {"r.yaml": "datasets: [a\n"},
        "r.yaml: not valid YAML: line 2, column 1",
    ),
    "datasets check unknown name": (
        ["datasets", "check", "nope", "--datasets", "{tmp}/r.yaml"],
        {"r.yaml": "datasets:\n  a: {format: synthetic}\n"},
        "no dataset named 'nope'; known: a",
    ),
    "datasets preview count zero": (
        ["datasets", "preview", "a", "--out", "{tmp}/s.png", "--count", "0"],
        {},
        "--count 0: expected an integer >= 1",
    ),
    "datasets preview columns zero": (
        ["datasets", "preview", "a", "--out", "{tmp}/s.png", "--columns", "0"],
        {},
        "--columns 0: expected an integer >= 1",
    ),
}


def _write(tmp: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{tmp}", str(tmp)))


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _assert_one_clean_line(code: int, err: str, command: str, expected: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"endobench {command}: error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_user_error_is_one_line_with_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, files, expected = CASES[case]
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, files)
    before = _tree(tmp_path)
    capsys.readouterr()
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    _assert_one_clean_line(code, err, argv[0], expected.replace("{tmp}", str(tmp_path)))
    left = _tree(tmp_path) - before
    # A failed train may leave its (empty) output folder; nothing else, and no file in it.
    assert all((tmp_path / p).is_dir() and not any((tmp_path / p).iterdir()) for p in left), left
    assert not (tmp_path / "PWNED").exists()  # the YAML tag did not run


def test_unreachable_scheduler_fails_within_seconds_naming_the_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, {"g.yaml": grid_yaml()})
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.perf_counter()
    code = main(["ablate", str(tmp_path / "g.yaml"), "--scheduler", address, "--results",
                 str(tmp_path / "results")])  # fmt: skip
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    _assert_one_clean_line(code, err, "ablate", f"--scheduler {address}: no Dask scheduler")
    assert seconds < 20  # 5 s connect timeout plus planning on a loaded machine
    assert not (tmp_path / "results").exists()  # nothing written before connecting
