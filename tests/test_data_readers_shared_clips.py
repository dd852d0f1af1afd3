"""The CholecSeg8k and CVC-ClinicDB readers on the real clips in shared/data (issue 9, item 6).

Expected values were copied by hand from the ``frames.csv`` / ``sequences.csv`` files that come
with the samples (read both PROVENANCE.md): CholecSeg8k watershed grey levels 11 abdominal wall,
12 fat, 13 GI tract, 21 liver, 22 gallbladder, 31 grasper, 32 L-hook, 50 black background and
255 the white image border (void); CVC-ClinicDB polyp = mask value > 127. Every frame of both
samples is then checked against the csv files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from endobench.data import VOID_ID, load_registry

# Reader class id of each CholecSeg8k frames.csv column (the reader's documented mapping).
CHOLEC_COLUMNS = {
    "px_50_black_background": 0,
    "px_11_abdominal_wall": 1,
    "px_21_liver": 2,
    "px_13_gastrointestinal_tract": 3,
    "px_12_fat": 4,
    "px_31_grasper": 5,
    "px_32_l_hook_electrocautery": 9,
    "px_22_gallbladder": 10,
    "px_255_white_border": VOID_ID,
}
# frame -> {class id: pixels}, copied from CholecSeg8k/frames.csv
CHOLEC_BY_HAND = {
    561: {0: 162340, 1: 100007, 2: 38058, 3: 4136, 4: 91731, 5: 6064, 10: 4920, VOID_ID: 2664},
    581: {0: 162469, 1: 111500, 2: 44873, 3: 5224, 4: 73504, 5: 5079, 9: 46, 10: 4561,
          VOID_ID: 2664},
    600: {0: 162358, 1: 117473, 2: 47729, 3: 6686, 4: 66717, 5: 6293, VOID_ID: 2664},
}  # fmt: skip
# frame -> polyp pixels (mask > 127), copied from CVC-ClinicDB/frames.csv
CVC_BY_HAND = {1: 16978, 67: 1715, 68: 6589, 205: 3027, 317: 15988}
# sequence -> frame count, from CVC-ClinicDB/sequences.csv (sequences 1-15 are shared)
CVC_LENGTHS = {1: 25, 2: 25, 3: 17, 4: 11, 5: 25, 6: 23, 7: 25, 8: 26, 9: 22, 10: 6, 11: 22,
               12: 25, 13: 25, 14: 20, 15: 20}  # fmt: skip


@pytest.fixture(scope="module")
def registry(samples: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("registry") / "datasets.yaml"
    path.write_text(
        "datasets:\n"
        f"  cholecseg8k: {{format: cholecseg8k, root: {samples}/CholecSeg8k}}\n"
        f"  cvc: {{format: cvc-clinicdb, root: {samples}/CVC-ClinicDB}}\n"
    )
    return load_registry(path)


def _counts(mask: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(mask, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def test_cholecseg8k_clip_classes_and_hand_checked_pixel_counts(registry) -> None:
    ds = registry.open("cholecseg8k")
    (clip,) = ds.clips()
    assert clip.name == "video48_00561" and clip.meta["video"] == "video48"
    assert len(clip) == 40 and clip.annotated == list(range(40)) and clip.fps == 25.0
    assert clip.frame_names[0] == "frame_561_endo" and clip.frame_names[-1] == "frame_600_endo"
    assert clip.classes[1] == "abdominal wall" and clip.classes[10] == "gallbladder"
    assert clip.frame(0).shape == (480, 854, 3)
    for frame, want in CHOLEC_BY_HAND.items():
        mask = clip.mask(frame - 561)
        assert mask.shape == (480, 854) and mask.dtype == np.uint8
        assert _counts(mask) == want, frame


def test_cholecseg8k_every_frame_matches_frames_csv(registry, samples: Path) -> None:
    (clip,) = registry.open("cholecseg8k").clips()
    rows = list(csv.DictReader((samples / "CholecSeg8k" / "frames.csv").open()))
    assert [int(r["frame"]) for r in rows] == list(range(561, 601))
    for i, row in enumerate(rows):
        want = {CHOLEC_COLUMNS[k]: int(v) for k, v in row.items() if k in CHOLEC_COLUMNS}
        assert _counts(clip.mask(i)) == {k: v for k, v in want.items() if v}, row["frame"]


def test_cvc_clinicdb_sequences_and_hand_checked_polyp_areas(registry) -> None:
    ds = registry.open("cvc")
    clips = {c.name: c for c in ds.clips()}
    assert list(clips) == [f"seq{s:02d}" for s in CVC_LENGTHS]
    assert {int(n[3:]): len(c) for n, c in clips.items()} == CVC_LENGTHS
    assert clips["seq04"].frame_names[0] == "68" and clips["seq10"].frame_names[-1] == "205"
    seq_of = {int(f): c for c in clips.values() for f in c.frame_names}
    for frame, area in CVC_BY_HAND.items():
        clip = seq_of[frame]
        mask = clip.mask(clip.frame_names.index(str(frame)))
        assert mask.shape == (288, 384) and set(np.unique(mask)) <= {0, 1}
        assert int(np.count_nonzero(mask)) == area, frame
    assert clips["seq01"].frame(0).shape == (288, 384, 3)


def test_cvc_clinicdb_every_frame_matches_frames_csv(registry, samples: Path) -> None:
    clips = registry.open("cvc").clips()
    got = {
        (int(c.name[3:]), int(name)): int(np.count_nonzero(c.mask(i)))
        for c in clips
        for i, name in enumerate(c.frame_names)
    }
    rows = csv.DictReader((samples / "CVC-ClinicDB" / "frames.csv").open())
    want = {(int(r["sequence"]), int(r["frame"])): int(r["mask_area_px"]) for r in rows}
    assert len(want) == 317 and got == want
