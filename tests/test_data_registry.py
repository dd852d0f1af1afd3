"""datasets.yaml loading: validation errors, env expansion, relative roots, splits, targets,
resolution order, the built-in synthetic dataset, and lazy reading of a 10,000-frame clip."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import endobench.data.readers.base as reader_base
from endobench.data import (
    RegistryError,
    TargetSpec,
    build_label_lut,
    find_registry_path,
    load_registry,
    open_dataset,
)
from endobench.data.registry import expand_env

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    return path


def _pairs(root: Path, n: int = 3) -> None:
    for k in range(n):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / f"f{k}.png")
        mask = np.zeros((4, 4), np.uint8)
        mask[: k + 1, 0] = 255
        Image.fromarray(mask).save(root / "masks" / f"f{k}.png")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  d: {root: x}\n", r"dataset 'd': field format: required field is missing"),
        (
            "  d: {format: nifti, root: x}\n",
            r"dataset 'd': field format: .*unknown format 'nifti'; expected one of",
        ),
        ("  d: {format: davis}\n", r"dataset 'd': field root: required for format 'davis'"),
        (
            "  d: {format: davis, root: x, resolutoin: 480p}\n",
            r"dataset 'd': field resolutoin: unknown field; .*allowed for format 'davis': .*resolution",
        ),
        (
            "  d: {format: endovis2017, root: x, task: tpye}\n",
            r"dataset 'd': field task: Input should be 'type', 'parts' or 'binary' \(got 'tpye'\)",
        ),
        (
            "  d: {format: davis, root: x, fps: -1}\n",
            r"dataset 'd': field fps: Input should be greater than 0",
        ),
        (
            "  d: {format: davis, root: x, classes: {0: bg}}\n",
            r"dataset 'd': field classes: .*outside 1..254",
        ),
        (
            "  d: {format: davis, root: x, target: {classes: {}}}\n",
            r"dataset 'd': field target.classes: .*at least one target class",
        ),
        ("  d: [1, 2]\n", r"field datasets.d: Input should be a valid dictionary"),
    ],
)
def test_validation_errors_name_file_dataset_field_and_expectation(tmp_path, body, expected):
    path = _write(tmp_path, "datasets:\n" + body)
    with pytest.raises(RegistryError, match=expected) as info:
        load_registry(path)
    assert str(info.value).startswith(str(path))


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(RegistryError, match=r"not valid YAML"):
        load_registry(_write(tmp_path, "datasets: {a: [\n"))
    with pytest.raises(RegistryError, match=r"nope\.yaml: registry file not found"):
        load_registry(tmp_path / "nope.yaml")
    with pytest.raises(RegistryError, match=r"field datasets: required field is missing"):
        load_registry(_write(tmp_path, "sets: {}\n"))


def test_env_expansion_and_relative_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("EB_TEST_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("EB_TEST_UNSET", raising=False)
    assert expand_env("${EB_TEST_DATA}/x", "w") == f"{tmp_path}/elsewhere/x"
    assert expand_env("${EB_TEST_UNSET:-fallback}/x", "w") == "fallback/x"
    with pytest.raises(RegistryError, match=r"w: environment variable EB_TEST_UNSET is not set"):
        expand_env("${EB_TEST_UNSET}", "w")
    sub = tmp_path / "conf"
    sub.mkdir()
    _pairs(tmp_path / "data")
    path = _write(
        sub,
        "datasets:\n  rel: {format: kvasir, root: ../data}\n"
        "  env: {format: kvasir, root: '${EB_TEST_UNSET:-..}/data'}\n",
    )
    reg = load_registry(path)
    assert reg.root_of("rel") == (tmp_path / "data").resolve()
    assert reg.root_of("env") == (tmp_path / "data").resolve()
    assert reg.open("rel").num_frames() == 3


def test_splits_by_names_and_by_file(tmp_path):
    _pairs(tmp_path / "data")
    (tmp_path / "data" / "val.txt").write_text("# held out\nf2\n")
    reg = load_registry(
        _write(
            tmp_path,
            "datasets:\n  d:\n    format: kvasir\n    root: data\n"
            "    splits: {train: [f0, f1], val: val.txt, typo: [f9]}\n",
        )
    )
    assert [s.id.split("/")[1] for s in reg.open("d", split="train").images()] == ["f0", "f1"]
    assert [s.id.split("/")[1] for s in reg.open("d", split="val").images()] == ["f2"]
    with pytest.raises(
        RegistryError, match=r"field splits: no split 'test'; known: train, val, typo"
    ):
        reg.open("d", split="test")
    with pytest.raises(
        RegistryError, match=r"field splits.typo: 1 name\(s\) match no clip or frame: f9"
    ):
        reg.open("d", split="typo")


def test_target_lut_selects_and_merges():
    classes = {1: "grasper", 2: "hook", 3: "clipper"}
    lut, new = build_label_lut(classes, TargetSpec(classes={"tool": ["grasper", 3]}))
    assert new == {1: "tool"}
    assert lut[[0, 1, 2, 3, 255]].tolist() == [0, 1, 0, 1, 255]
    lut, new = build_label_lut(classes, TargetSpec(classes={"a": ["hook"]}, others="void"))
    assert lut[[0, 1, 2, 3]].tolist() == [0, 255, 1, 255]
    with pytest.raises(
        ValueError, match=r"unknown source class 'stapler'; known: clipper, grasper, hook"
    ):
        build_label_lut(classes, TargetSpec(classes={"a": ["stapler"]}))
    with pytest.raises(ValueError, match=r"listed under both 'a' and 'b'"):
        build_label_lut(classes, TargetSpec(classes={"a": ["hook"], "b": [2]}))


def test_target_error_names_the_field(tmp_path):
    _pairs(tmp_path / "data")
    path = _write(
        tmp_path, "datasets:\n  d: {format: kvasir, root: data, target: {classes: {x: [tumour]}}}\n"
    )
    with pytest.raises(
        RegistryError, match=r"dataset 'd': field target: .*unknown source class 'tumour'"
    ):
        load_registry(path).open("d")


def test_resolution_order(tmp_path, monkeypatch):
    explicit = _write(tmp_path, "datasets: {}\n")
    env_file = tmp_path / "env.yaml"
    env_file.write_text("datasets: {}\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "datasets.yaml").write_text("datasets: {}\n")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("ENDOBENCH_DATASETS", str(env_file))
    assert find_registry_path(explicit) == explicit
    assert find_registry_path() == env_file
    monkeypatch.delenv("ENDOBENCH_DATASETS")
    assert find_registry_path() == cwd / "datasets.yaml"
    (cwd / "datasets.yaml").unlink()
    assert find_registry_path() == REPO / "datasets.yaml"


def test_shipped_registry_lists_every_dataset():
    reg = load_registry(REPO / "datasets.yaml")
    assert set(reg.names()) >= {
        "synthetic", "kvasir-seg", "cvc-clinicdb", "cholecseg8k", "cholecinstanceseg",
        "endovis2017", "davis2017", "bagls",
    }  # fmt: skip
    assert "folder" in {reg.entry(n).format for n in reg.names()}


def test_synthetic_is_built_in_and_overridable(tmp_path):
    reg = load_registry(_write(tmp_path, "datasets: {}\n"))
    assert reg.names() == ["synthetic"]
    ds = open_dataset(
        "synthetic",
        registry=reg,
        overrides={"num_clips": 3, "num_frames": 5, "height": 64, "width": 80, "seed": 7},
    )
    assert ds.kind == "video" and ds.classes
    clips = ds.clips()
    assert len(clips) == 3 and all(len(c) == 5 for c in clips)
    assert clips[0].frame(4).shape == (64, 80, 3) and clips[0].mask(4).shape == (64, 80)
    again = open_dataset(
        "synthetic",
        registry=reg,
        overrides={"num_clips": 1, "num_frames": 5, "height": 64, "width": 80, "seed": 7},
    ).clips()[0]
    assert np.array_equal(again.frame(3), clips[0].frame(3))
    with pytest.raises(RegistryError, match=r"dataset 'synthetic'.*config.heigth"):
        open_dataset("synthetic", registry=reg, overrides={"heigth": 64})


def test_synthetic_target_merges_objects(tmp_path):
    reg = load_registry(_write(tmp_path, "datasets: {}\n"))
    ds = reg.open(
        "synthetic",
        overrides={
            "num_clips": 1,
            "num_frames": 3,
            "num_objects": 2,
            "target": {"classes": {"any": "all"}},
        },
    )
    assert ds.classes == {1: "any"}
    source = reg.open("synthetic", overrides={"num_clips": 1, "num_frames": 3, "num_objects": 2})
    original = source.clips()[0].mask(2)
    merged = ds.clips()[0].mask(2)
    assert np.array_equal(merged, np.where((original > 0) & (original < 255), 1, original))


def test_ten_thousand_frame_clip_is_read_lazily(tmp_path, monkeypatch):
    """Opening a 10,000-frame clip decodes nothing; reading frame k decodes exactly one file."""
    png = tmp_path / "one.png"
    Image.fromarray(np.full((2, 2, 3), 9, np.uint8)).save(png)
    data = png.read_bytes()
    frames = tmp_path / "data" / "images" / "long"
    frames.mkdir(parents=True)
    for k in range(10_000):
        (frames / f"{k:05d}.png").write_bytes(data)
    decoded: list[Path] = []
    real = reader_base.read_rgb

    def counting(path):
        decoded.append(Path(path))
        return real(path)

    monkeypatch.setattr(reader_base, "read_rgb", counting)
    reg = load_registry(_write(tmp_path, "datasets:\n  long: {format: folder, root: data}\n"))
    (clip,) = reg.open("long").clips()
    assert len(clip) == 10_000 and clip.annotated == [] and decoded == []
    assert clip.frame(9_999).shape == (2, 2, 3)
    assert decoded == [frames / "09999.png"]
    assert sum(1 for _ in itertools.islice(clip.frames(), 3)) == 3 and len(decoded) == 4
