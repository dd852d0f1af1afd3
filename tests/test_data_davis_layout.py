"""Writing a clip in the DAVIS layout, read back through the DAVIS reader of the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from endobench.data import Clip, open_dataset, write_davis_clip
from endobench.data.synthetic import SyntheticConfig, generate_clip


def _sparse_clip() -> Clip:
    """A 4-frame synthetic clip (48 x 64, two objects) annotated on frames 0 and 2 only."""
    full = generate_clip(SyntheticConfig(num_frames=4, height=48, width=64), 7, name="seq")
    return Clip(
        name="seq",
        frame_names=full.frame_names,
        load_frame=full.frame,
        load_mask=full.mask,
        annotated=[0, 2],
        classes=full.classes,
    )


def _read_back(root: Path, tmp_path: Path) -> Clip:
    registry = tmp_path / "r.yaml"
    registry.write_text(f"datasets:\n  out: {{format: davis, root: {root}}}\n")
    (clip,) = open_dataset("out", registry=registry).clips()
    return clip


def test_write_davis_clip_round_trips_through_the_davis_reader(tmp_path: Path) -> None:
    source = _sparse_clip()
    folders = write_davis_clip(source, tmp_path / "out")
    assert folders.images == tmp_path / "out" / "JPEGImages" / "480p" / "seq"
    assert folders.annotations == tmp_path / "out" / "Annotations" / "480p" / "seq"
    assert (folders.frames, folders.masks) == (4, 2)
    assert sorted(p.name for p in folders.images.iterdir()) == [f"{i:05d}.jpg" for i in range(4)]
    assert sorted(p.name for p in folders.annotations.iterdir()) == ["00000.png", "00002.png"]
    clip = _read_back(tmp_path / "out", tmp_path)
    assert clip.name == "seq" and len(clip) == 4 and clip.annotated == [0, 2]
    for i in (0, 2):
        mask = clip.mask(i)
        assert mask is not None and set(np.unique(mask)) == {0, 1, 2}
        np.testing.assert_array_equal(mask, source.mask(i))
    for i in range(4):
        error = np.abs(clip.frame(i).astype(int) - source.frame(i)).mean()
        assert error < 4.0, (i, error)
    assert not list(tmp_path.rglob(".*tmp*"))  # atomic writes leave no temporary file


def test_quality_sets_the_jpeg_trade_off_and_is_checked(tmp_path: Path) -> None:
    source = _sparse_clip()
    errors, sizes = [], []
    for quality in (20, 95):
        folders = write_davis_clip(source, tmp_path / f"q{quality}", quality=quality)
        sizes.append(sum(p.stat().st_size for p in folders.images.iterdir()))
        clip = _read_back(tmp_path / f"q{quality}", tmp_path)
        errors.append(np.abs(clip.frame(1).astype(int) - source.frame(1)).mean())
    assert sizes[0] < sizes[1] and errors[0] > errors[1]
    with pytest.raises(ValueError, match="quality: expected an integer in 1..100, got 0"):
        write_davis_clip(source, tmp_path / "bad", quality=0)
    assert not (tmp_path / "bad").exists()
