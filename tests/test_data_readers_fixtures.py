"""Readers for layouts without a shared sample, on tiny fixtures written in the documented
layout and encoding: CholecSeg8k, EndoVis 2017, CVC-ClinicDB, and the generic folder format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from endobench.data import VOID_ID, load_registry, write_palette_png
from endobench.data.readers.cholecseg8k import WATERSHED_GREY
from endobench.data.readers.pairs import CVC_SEQUENCES, cvc_sequence_of


def _rgb(h: int, w: int, value: int = 0) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _registry(tmp_path: Path, body: str):
    path = tmp_path / "datasets.yaml"
    path.write_text("datasets:\n" + body)
    return load_registry(path)


# ---------------------------------------------------------------- CholecSeg8k
def _cholecseg8k(root: Path) -> np.ndarray:
    """Two frames of video01_00080; watershed masks stored as RGB grey levels."""
    grey = np.full((6, 8), WATERSHED_GREY[2], dtype=np.uint8)  # liver
    grey[0, :] = 255  # white outline -> void
    grey[1, 0] = 0  # unlabelled -> void
    grey[2:4, 2:5] = WATERSHED_GREY[5]  # grasper (class 5): 6 px
    grey[5, 7] = WATERSHED_GREY[12]  # liver ligament, grey 5
    grey[4, 0:2] = WATERSHED_GREY[0]  # black background (class 0): 2 px
    clip = root / "video01" / "video01_00080"
    for n in (80, 81):
        _save(clip / f"frame_{n}_endo.png", _rgb(6, 8, n))
        _save(clip / f"frame_{n}_endo_watershed_mask.png", np.repeat(grey[..., None], 3, axis=2))
        _save(clip / f"frame_{n}_endo_color_mask.png", _rgb(6, 8, 1))  # ignored by the reader
    return grey


def test_cholecseg8k_watershed_grey_values_map_to_documented_classes(tmp_path):
    _cholecseg8k(tmp_path / "CholecSeg8k")
    ds = _registry(tmp_path, "  c8k: {format: cholecseg8k, root: CholecSeg8k}\n").open("c8k")
    assert ds.classes[5] == "grasper" and ds.classes[10] == "gallbladder" and len(ds.classes) == 12
    (clip,) = ds.clips()
    assert clip.name == "video01_00080" and clip.frame_names == ["frame_80_endo", "frame_81_endo"]
    assert clip.fps == 25.0 and clip.meta["video"] == "video01"
    mask = clip.mask(1)
    counts = dict(zip(*np.unique(mask, return_counts=True), strict=True))
    # 8 outline + 1 unlabelled void; 6 grasper; 1 ligament; 2 background; rest liver
    assert {int(k): int(v) for k, v in counts.items()} == {
        0: 2,
        2: 48 - 9 - 6 - 1 - 2,
        5: 6,
        12: 1,
        VOID_ID: 9,
    }
    assert np.array_equal(clip.frame(0), _rgb(6, 8, 80))


def test_cholecseg8k_all_thirteen_grey_values(tmp_path):
    grey = np.array([WATERSHED_GREY + (255, 0, 50)], dtype=np.uint8)
    clip = tmp_path / "v" / "video02" / "video02_00000"
    _save(clip / "frame_0_endo.png", _rgb(1, 16))
    _save(clip / "frame_0_endo_watershed_mask.png", grey)
    mask = _registry(tmp_path, "  c: {format: cholecseg8k, root: v}\n").open("c").clips()[0].mask(0)
    assert mask[0].tolist() == list(range(13)) + [VOID_ID, VOID_ID, 0]


# ---------------------------------------------------------------- EndoVis 2017
def _endovis(root: Path) -> None:
    ds = root / "instrument_dataset_1"
    left = np.zeros((5, 6), np.uint8)
    left[0, 0:3] = (10, 20, 30)  # shaft, wrist, claspers of the left forceps
    right = np.zeros((5, 6), np.uint8)
    right[4, 4:6] = 10
    other = np.zeros((5, 6), np.uint8)
    other[2, 2] = 40  # e.g. an ultrasound probe; any non-zero value
    for name in ("frame000.png", "frame001.png"):
        _save(ds / "left_frames" / name, _rgb(5, 6, 3))
        _save(ds / "ground_truth" / "Left_Prograsp_Forceps_labels" / name, left)
        _save(ds / "ground_truth" / "Maryland_Bipolar_Forceps_labels" / name, right)
        _save(ds / "ground_truth" / "Other_labels" / name, other)
    _save(root / "instrument_dataset_9" / "left_frames" / "frame000.png", _rgb(5, 6, 4))  # test set


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("type", {(0, 0): 2, (0, 2): 2, (4, 5): 1, (2, 2): 7, (3, 3): 0}),
        ("parts", {(0, 0): 1, (0, 1): 2, (0, 2): 3, (4, 4): 1, (2, 2): 0}),
        ("binary", {(0, 0): 1, (4, 5): 1, (2, 2): 0, (3, 3): 0}),
    ],
)
def test_endovis2017_tasks(tmp_path, task, expected):
    _endovis(tmp_path / "ev")
    ds = _registry(tmp_path, f"  ev: {{format: endovis2017, root: ev, task: {task}}}\n").open("ev")
    train, test = ds.clips()
    assert (train.name, len(train), train.annotated, train.fps) == (
        "instrument_dataset_1",
        2,
        [0, 1],
        2.0,
    )
    assert test.name == "instrument_dataset_9" and test.annotated == [] and test.mask(0) is None
    mask = train.mask(1)
    for (y, x), value in expected.items():
        assert mask[y, x] == value, (task, y, x)
    total = {"type": 6, "parts": 5, "binary": 5}[task]
    assert int((mask > 0).sum()) == total
    assert ds.classes == {
        "type": {1: "bipolar forceps", 2: "prograsp forceps", 3: "large needle driver",
                 4: "vessel sealer", 5: "grasping retractor", 6: "monopolar curved scissors",
                 7: "other"},
        "parts": {1: "shaft", 2: "wrist", 3: "claspers"},
        "binary": {1: "instrument"},
    }[task]  # fmt: skip


# ---------------------------------------------------------------- CVC-ClinicDB
def test_cvc_sequence_table_covers_612_frames_in_29_sequences():
    assert len(CVC_SEQUENCES) == 29
    covered = [n for start, end in CVC_SEQUENCES for n in range(start, end + 1)]
    assert covered == list(range(1, 613))
    assert (cvc_sequence_of(1), cvc_sequence_of(25), cvc_sequence_of(26)) == (1, 1, 2)
    assert (cvc_sequence_of(612), cvc_sequence_of(613), cvc_sequence_of(0)) == (29, None, None)


@pytest.mark.parametrize(("layout", "ext"), [("", ".tif"), ("PNG/", ".png")])
def test_cvc_clinicdb_tif_and_png_layouts_grouped_into_sequences(tmp_path, layout, ext):
    root = tmp_path / "CVC"
    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 1:4] = 255
    for n in (1, 2, 25, 26, 205, 612):
        _save(root / f"{layout}Original" / f"{n}{ext}", _rgb(4, 5, n))
        _save(root / f"{layout}Ground Truth" / f"{n}{ext}", mask)
    ds = _registry(tmp_path, "  cvc: {format: cvc-clinicdb, root: CVC}\n").open("cvc")
    assert ds.kind == "video" and ds.classes == {1: "polyp"}
    clips = ds.clips()
    assert [(c.name, c.frame_names) for c in clips] == [
        ("seq01", ["1", "2", "25"]),
        ("seq02", ["26"]),
        ("seq10", ["205"]),
        ("seq29", ["612"]),
    ]
    assert int(clips[0].mask(2).sum()) == 6
    assert np.array_equal(clips[3].frame(0), _rgb(4, 5, 612))


# ---------------------------------------------------------------- generic folder
def test_folder_video_with_palette_masks_and_sparse_annotation(tmp_path):
    root = tmp_path / "mine"
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0], labels[1, 1] = 1, 2
    for clip in ("a", "b"):
        for k in range(3):
            _save(root / "images" / clip / f"{k:05d}.jpg", _rgb(4, 4, k))
    write_palette_png(root / "masks" / "a" / "00000.png", labels)
    write_palette_png(root / "masks" / "b" / "00002.png", labels)
    ds = _registry(
        tmp_path, "  mine: {format: folder, root: mine, classes: {1: polyp, 2: tool}, fps: 10}\n"
    ).open("mine")
    a, b = ds.clips()
    assert (a.name, a.annotated, b.annotated) == ("a", [0], [2])
    assert a.mask(1) is None and np.array_equal(b.mask(2), labels)
    assert a.fps == 10.0 and ds.classes == {1: "polyp", 2: "tool"}
    assert [s.id for s in ds.images()] == ["a/00000", "b/00002"]
