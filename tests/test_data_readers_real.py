"""Readers on the real samples in shared/data: counts, sizes, classes and exact pixel counts.

Expected values were checked by hand against the files (PROVENANCE.md, BAGLS frames.csv,
direct Pillow reads of the masks and the CholecInstanceSeg authors' semantic maps).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from endobench.data import load_registry

CHOLEC_SAMPLE = "CholecInstanceSeg/utilities"


@pytest.fixture(scope="module")
def registry(samples: Path, tmp_path_factory: pytest.TempPathFactory):
    """A registry file pointing at the real samples (absolute roots)."""
    path = tmp_path_factory.mktemp("registry") / "datasets.yaml"
    path.write_text(
        f"""
datasets:
  kvasir: {{format: kvasir, root: {samples}/Kvasir-SEG}}
  davis: {{format: davis, root: {samples}/DAVIS}}
  bagls: {{format: bagls, root: {samples}/BAGLS}}
  cholec: {{format: cholecinstanceseg, root: {samples}/{CHOLEC_SAMPLE}/_sample_files}}
  cholec-maps:
    format: cholecinstanceseg
    root: {samples}/{CHOLEC_SAMPLE}/_sample_files
    annotations: semantic_maps
    semantic_maps_dir: ../_sample_results/semantic_maps
  cholec-binary:
    format: cholecinstanceseg
    root: {samples}/{CHOLEC_SAMPLE}/_sample_files
    target: {{classes: {{instrument: all}}}}
"""
    )
    return load_registry(path)


KVASIR = {
    # id: (height, width, polyp pixels with value > 127)
    "cju0qkwl35piu0993l0dewei2": (529, 622, 93043),
    "cju0qoxqj9q6s0835b43399p4": (1070, 1348, 390295),
    "cju0qx73cjw570799j4n5cjze": (529, 619, 104400),
    "cju0roawvklrq0799vmjorwfv": (528, 622, 35632),
    "cju0rx1idathl0835detmsp84": (528, 617, 23706),
}


def test_kvasir_images_sizes_and_polyp_areas(registry, samples):
    ds = registry.open("kvasir")
    assert ds.kind == "images" and ds.classes == {1: "polyp"}
    seen = {}
    for sample in ds.images():
        stem = sample.id.split("/")[-1]
        h, w, area = KVASIR[stem]
        assert sample.image.shape == (h, w, 3) and sample.image.dtype == np.uint8
        assert set(np.unique(sample.mask).tolist()) == {0, 1}
        seen[stem] = int(sample.mask.sum())
        # independent check: the JPEG mask's first channel thresholded at 127
        raw = np.asarray(Image.open(samples / "Kvasir-SEG" / "masks" / f"{stem}.jpg"))[..., 0]
        assert seen[stem] == int((raw > 127).sum())
    assert seen == {k: v[2] for k, v in KVASIR.items()}
    # foreground fractions quoted in PROVENANCE.md
    fractions = [round(KVASIR[k][2] / (KVASIR[k][0] * KVASIR[k][1]), 3) for k in KVASIR]
    assert fractions == [0.283, 0.271, 0.319, 0.108, 0.073]


def test_davis_sequences_frames_and_mask_areas(registry):
    ds = registry.open("davis")
    clips = {c.name: c for c in ds.clips()}
    assert {n: len(c) for n, c in clips.items()} == {
        "blackswan": 50,
        "car-shadow": 40,
        "dog": 60,
        "drift-chicane": 52,
    }
    assert ds.num_frames() == 202
    assert ds.classes == {1: "object 1"}
    swan = clips["blackswan"]
    assert swan.fps == 24.0 and swan.annotated == list(range(50))
    assert swan.frame(0).shape == (480, 854, 3)
    # 255 in the DAVIS-2016 grayscale masks is object 1; areas counted by hand with Pillow
    areas = {
        ("blackswan", 0): 41343,
        ("blackswan", 49): 39267,
        ("car-shadow", 39): 12077,
        ("dog", 59): 79154,
        ("drift-chicane", 0): 2370,
    }
    for (name, i), area in areas.items():
        mask = clips[name].mask(i)
        assert mask.shape == (480, 854) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 1}
        assert int(mask.sum()) == area


def test_bagls_groups_sizes_and_all_mask_areas_match_frames_csv(registry, samples):
    ds = registry.open("bagls")
    clips = {c.name: c for c in ds.clips()}
    assert ds.kind == "images" and sorted(clips) == ["video_084", "video_259", "video_263"]
    assert all(len(c) == 50 and c.meta["ordered"] is False for c in clips.values())
    with open(samples / "BAGLS" / "frames.csv", newline="") as f:
        rows = {(int(r["video_id"]), r["index"]): r for r in csv.DictReader(f)}
    assert len(rows) == 150
    checked = 0
    for sample in ds.images():
        clip_name, index = sample.id.split("/")
        row = rows[(int(clip_name.split("_")[1]), index)]
        assert sample.image.shape == (int(row["height"]), int(row["width"]), 3)
        assert int(sample.mask.sum()) == int(row["mask_area_px"])
        checked += 1
    assert checked == 150
    # index order inside a group (not temporal; the PROVENANCE list is sorted the same way)
    assert clips["video_084"].frame_names[:4] == ["137", "204", "230", "344"]


def test_bagls_flat_layout_groups_by_meta_video_id(samples, tmp_path):
    src = samples / "BAGLS"
    for video in ("video_084", "video_259"):
        for index in sorted(p.stem for p in (src / video).glob("*.meta"))[:3]:
            for suffix in (".png", "_seg.png", ".meta"):
                (tmp_path / f"{index}{suffix}").write_bytes(
                    (src / video / f"{index}{suffix}").read_bytes()
                )
    reg = tmp_path / "r.yaml"
    reg.write_text(f"datasets: {{b: {{format: bagls, root: {tmp_path}}}}}\n")
    clips = load_registry(reg).open("b").clips()
    assert [(c.name, len(c)) for c in clips] == [("video_084", 3), ("video_259", 3)]


CHOLEC_COUNTS = {
    # frame: {class id: pixels} rasterised from the JSON polygons (1 grasper, 2 hook)
    "t80_VID03_000000": {0: 409920},
    "t80_VID03_000030": {0: 393918, 1: 16002},
    "t80_VID03_000060": {0: 379769, 1: 18979, 2: 11172},
    "t80_VID03_000120": {0: 334347, 1: 28783, 2: 46790},
    "t80_VID03_000210": {0: 370241, 1: 28182, 2: 11497},
}


def _counts(mask: np.ndarray) -> dict[int, int]:
    ids, n = np.unique(mask, return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, n, strict=True)}


def test_cholecinstanceseg_json_polygons(registry):
    ds = registry.open("cholec")
    (clip,) = ds.clips()
    assert clip.name == "VID03_t80_sparse" and len(clip) == 8
    assert clip.frame_names[0] == "t80_VID03_000000" and clip.frame_names[-1] == "t80_VID03_000210"
    assert ds.classes[1] == "grasper" and ds.classes[2] == "hook" and len(ds.classes) == 7
    assert clip.frame(3).shape == (480, 854, 3)
    for i, name in enumerate(clip.frame_names):
        if name in CHOLEC_COUNTS:
            assert _counts(clip.mask(i)) == CHOLEC_COUNTS[name]


def test_cholecinstanceseg_rasterisation_matches_authors_maps(registry, samples):
    """Our fill equals the authors' maps except where their tool drops extra polygons.

    Their converter keeps only the last polygon of an instance with several (frames 120 and
    150); emulating that, every frame agrees to within 3 pixels.
    """
    maps = samples / CHOLEC_SAMPLE / "_sample_results" / "semantic_maps"
    anns = samples / CHOLEC_SAMPLE / "_sample_files" / "VID03_t80_sparse" / "ann_dir"
    json_clip = registry.open("cholec").clips()[0]
    map_clip = registry.open("cholec-maps").clips()[0]
    ours_vs_maps, last_polygon_vs_maps = {}, {}
    for i, name in enumerate(json_clip.frame_names):
        ours, theirs = json_clip.mask(i), map_clip.mask(i)
        ours_vs_maps[name[-3:]] = int((ours != theirs).sum())
        emulated = np.zeros_like(ours)
        shapes = json.loads((anns / f"{name}.json").read_text())["shapes"]
        last = {}
        for s in shapes:  # the authors' dict keeps first-seen order, last polygon
            last[(s["label"], s["group_id"])] = s
        ids = {"grasper": 1, "hook": 2}
        for s in last.values():
            pts = np.asarray(s["points"], dtype=np.float64).astype(np.int32).reshape(-1, 2)
            cv2.fillPoly(emulated, [pts], ids[s["label"]])
        last_polygon_vs_maps[name[-3:]] = int((emulated != theirs).sum())
        assert map_clip.frame_names[i] == name
        assert (maps / f"{name}.png").is_file()
    assert ours_vs_maps == {
        "000": 0, "030": 0, "060": 3, "090": 2, "120": 10248, "150": 4276, "180": 0, "210": 1
    }  # fmt: skip
    assert max(last_polygon_vs_maps.values()) <= 3
    assert last_polygon_vs_maps["120"] == 0


def test_cholecinstanceseg_semantic_map_colours(registry, samples):
    """Colour decoding: (255,0,0) and (255,0,20) are grasper instances 1, 2; (0,128,0) hook."""
    clip = registry.open("cholec-maps").clips()[0]
    i = clip.frame_names.index("t80_VID03_000060")
    rgb = np.asarray(
        Image.open(samples / CHOLEC_SAMPLE / "_sample_results/semantic_maps/t80_VID03_000060.png")
    )
    grasper = (rgb == (255, 0, 0)).all(-1) | (rgb == (255, 0, 20)).all(-1)
    hook = (rgb == (0, 128, 0)).all(-1)
    mask = clip.mask(i)
    assert np.array_equal(mask == 1, grasper) and np.array_equal(mask == 2, hook)
    assert _counts(mask) == {
        0: int((~grasper & ~hook).sum()),
        1: int(grasper.sum()),
        2: int(hook.sum()),
    }


def test_cholecinstanceseg_target_merges_tools_into_one_object(registry):
    ds = registry.open("cholec-binary")
    assert ds.classes == {1: "instrument"}
    clip = ds.clips()[0]
    i = clip.frame_names.index("t80_VID03_000060")
    assert _counts(clip.mask(i)) == {0: 379769, 1: 18979 + 11172}
