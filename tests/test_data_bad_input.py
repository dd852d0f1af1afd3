"""Bad input gives a clear error naming the file and the problem; on_error="skip" skips it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from endobench.data import DataError, load_registry


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _pairs(root: Path, n: int = 4, size: tuple[int, int] = (6, 7)) -> None:
    """Kvasir-style pairs 0..n-1 with a 2x3 polyp each."""
    mask = np.zeros(size, np.uint8)
    mask[1:3, 2:5] = 255
    for k in range(n):
        _save(root / "images" / f"im{k}.png", np.full((*size, 3), 10 * k, np.uint8))
        _save(root / "masks" / f"im{k}.png", mask)


def _open(tmp_path: Path, entry: str = "{format: kvasir, root: data}", **kw):
    reg = tmp_path / "datasets.yaml"
    reg.write_text(f"datasets:\n  d: {entry}\n")
    return load_registry(reg).open("d", **kw)


def _only_clip(ds):
    (clip,) = ds.clips()
    return clip


def test_missing_file_names_the_file(tmp_path):
    _pairs(tmp_path / "data")
    clip = _only_clip(_open(tmp_path))
    (tmp_path / "data" / "images" / "im1.png").unlink()
    with pytest.raises(DataError, match=r"im1\.png: file not found"):
        clip.frame(1)


def test_unreadable_file_names_the_file(tmp_path):
    _pairs(tmp_path / "data")
    (tmp_path / "data" / "masks" / "im2.png").write_bytes(b"this is not a png")
    clip = _only_clip(_open(tmp_path))
    with pytest.raises(DataError, match=r"masks/im2\.png: not a readable image"):
        clip.mask(2)


def test_truncated_image_is_an_error_not_a_grey_frame(tmp_path):
    _pairs(tmp_path / "data", size=(64, 64))
    path = tmp_path / "data" / "images" / "im0.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    (tmp_path / "data" / "images" / "im0.png").unlink()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    clip = _only_clip(_open(tmp_path))
    with pytest.raises(DataError, match=r"im0\.jpg: cannot decode image .*truncated"):
        clip.frame(0)


def test_mask_image_size_mismatch(tmp_path):
    _pairs(tmp_path / "data")
    _save(tmp_path / "data" / "masks" / "im3.png", np.zeros((6, 8), np.uint8))
    clip = _only_clip(_open(tmp_path))
    with pytest.raises(
        DataError,
        match=r"masks/im3\.png: mask size 8x6 \(WxH\) differs from image im3\.png size 7x6",
    ):
        clip.mask(3)


def test_empty_folder(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    with pytest.raises(DataError, match=r"data/images: empty folder"):
        _open(tmp_path)


def test_unknown_class_id(tmp_path):
    labels = np.zeros((3, 3), np.uint8)
    labels[1, 1] = 7
    _save(tmp_path / "data" / "images" / "a" / "0.png", np.zeros((3, 3, 3), np.uint8))
    _save(tmp_path / "data" / "masks" / "a" / "0.png", labels)
    clip = _only_clip(_open(tmp_path, "{format: folder, root: data, classes: {1: polyp}}"))
    with pytest.raises(
        DataError,
        match=r"masks/a/0\.png: unknown class id\(s\) \[7\] in mask; expected ids \[0, 1, 255\]",
    ):
        clip.mask(0)


def test_unknown_cholecseg8k_grey_value(tmp_path):
    clip_dir = tmp_path / "data" / "video01" / "video01_00000"
    _save(clip_dir / "frame_0_endo.png", np.zeros((2, 2, 3), np.uint8))
    _save(clip_dir / "frame_0_endo_watershed_mask.png", np.array([[50, 11], [99, 50]], np.uint8))
    clip = _only_clip(_open(tmp_path, "{format: cholecseg8k, root: data}"))
    with pytest.raises(
        DataError, match=r"watershed_mask\.png: unknown watershed grey value\(s\) \[99\]"
    ):
        clip.mask(0)


def test_mismatched_frame_and_mask_names(tmp_path):
    _pairs(tmp_path / "data")
    (tmp_path / "data" / "masks" / "im1.png").rename(tmp_path / "data" / "masks" / "im1b.png")
    with pytest.raises(DataError) as info:
        _open(tmp_path)
    message = str(info.value)
    assert "images/im1.png: no mask with the same name" in message
    assert "(and 1 more problem(s); run `endobench datasets check d`)" in message


def test_unknown_cholecinstanceseg_label(tmp_path):
    root = tmp_path / "data" / "VID01"
    _save(root / "img_dir" / "f0.png", np.zeros((4, 4, 3), np.uint8))
    (root / "ann_dir").mkdir()
    (root / "ann_dir" / "f0.json").write_text(
        '{"imageHeight": 4, "imageWidth": 4, "shapes": '
        '[{"label": "stapler", "group_id": 1, "points": [[0,0],[3,0],[3,3]]}]}'
    )
    clip = _only_clip(_open(tmp_path, "{format: cholecinstanceseg, root: data}"))
    with pytest.raises(
        DataError, match=r"f0\.json: shapes\[0\]\.label 'stapler' is not a known class"
    ):
        clip.mask(0)


def test_skip_mode_drops_bad_frames_with_one_warning_and_counts(tmp_path):
    _pairs(tmp_path / "data", n=6)
    data = tmp_path / "data"
    (data / "images" / "im1.png").write_bytes(b"garbage")  # unreadable
    _save(data / "masks" / "im2.png", np.zeros((3, 3), np.uint8))  # size mismatch
    (data / "masks" / "im4.png").unlink()  # name mismatch (image without mask)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = _open(tmp_path, on_error="skip")
        clip = _only_clip(ds)
    relevant = [w for w in caught if "skipped" in str(w.message)]
    assert len(relevant) == 1
    assert "skipped 3 bad frame(s)" in str(relevant[0].message)
    assert clip.frame_names == ["im0", "im3", "im5"]
    assert clip.meta["skipped"] == 3 and len(clip.meta["problems"]) == 3
    assert sorted(p.path.name for p in ds.problems) == ["im1.png", "im2.png", "im4.png"]
    assert int(clip.mask(1).sum()) == 6


def test_skip_mode_without_problems_is_silent(tmp_path):
    _pairs(tmp_path / "data", n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clip = _only_clip(_open(tmp_path, on_error="skip"))
    assert clip.meta["skipped"] == 0 and len(clip) == 2


def test_missing_root_names_the_registry_field(tmp_path):
    with pytest.raises(
        DataError,
        match=r"data: dataset root folder not found \(.*datasets\.yaml: dataset 'd', field root\)",
    ):
        _open(tmp_path)
