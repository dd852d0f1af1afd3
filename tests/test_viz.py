"""Overlays and contact sheets: exact pixel values on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from endobench.data import davis_palette
from endobench.viz import (
    comparison_sheet,
    contact_sheet,
    fit_tile,
    label_colours,
    labelled_view,
    legend_bar,
    overlay_mask,
    save_image,
)


def test_label_colours_use_davis_palette_and_white_void():
    labels = np.array([[0, 1], [2, 255]], np.uint8)
    colours = label_colours(labels)
    assert colours[0, 1].tolist() == [128, 0, 0] and colours[1, 0].tolist() == [0, 128, 0]
    assert colours[1, 1].tolist() == [255, 255, 255] and colours[0, 0].tolist() == [0, 0, 0]


def test_overlay_blends_only_labelled_pixels():
    image = np.full((5, 5, 3), 100, np.uint8)
    labels = np.zeros((5, 5), np.uint8)
    labels[1:4, 1:4] = 1
    out = overlay_mask(image, labels, alpha=0.5, contours=False)
    assert out[0, 0].tolist() == [100, 100, 100]
    assert out[2, 2].tolist() == [114, 50, 50]  # (100 + 128) / 2, 100 / 2, 100 / 2
    with_edges = overlay_mask(image, labels, alpha=0.5, contours=True)
    assert with_edges[1, 1].tolist() == davis_palette()[1].tolist()  # region boundary
    assert with_edges[2, 2].tolist() == [114, 50, 50]  # interior stays blended
    assert np.array_equal(overlay_mask(image, None), image)
    with pytest.raises(ValueError, match="labels shape"):
        overlay_mask(image, labels[:4])


def test_fit_tile_keeps_aspect_and_centres():
    tile = fit_tile(np.full((10, 40, 3), 200, np.uint8), (20, 20))
    assert tile.shape == (20, 20, 3)
    assert tile[10, 10].tolist() == [200, 200, 200]  # image band in the middle rows
    assert tile[0, 10].tolist() == [0, 0, 0] and tile[19, 10].tolist() == [0, 0, 0]


def test_contact_sheet_grid_and_save(tmp_path):
    images = [np.full((8, 8, 3), v, np.uint8) for v in (50, 100, 150)]
    sheet = contact_sheet(images, columns=2, tile_hw=(8, 8), gap=2)
    assert sheet.shape == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2, 3)
    assert sheet[2, 2].tolist() == [50] * 3 and sheet[2, 12].tolist() == [100] * 3
    assert sheet[12, 2].tolist() == [150] * 3 and sheet[12, 12].tolist() == [40] * 3
    assert sheet[0, 0].tolist() == [40] * 3
    captioned = contact_sheet(images, captions=["a", "b", "c"], columns=3, tile_hw=(30, 60))
    assert captioned.shape == (30 + 8, 3 * 60 + 16, 3)
    path = save_image(tmp_path / "s.png", sheet)
    assert np.array_equal(np.asarray(Image.open(path)), sheet)
    with pytest.raises(ValueError, match="at least one image"):
        contact_sheet([])


def test_legend_bar_swatches_in_class_colours():
    bar = legend_bar({0: "background", 1: "polyp", 2: "instrument"}, width=400, height=28)
    assert bar.shape == (28, 400, 3)
    palette = davis_palette()
    assert bar[14, 14].tolist() == palette[1].tolist()  # first swatch: columns 6..22
    assert bar[3, 14].tolist() == [40, 40, 40]  # band above the swatch
    second = [x for x in range(30, 400) if bar[14, x].tolist() == palette[2].tolist()]
    assert len(second) == 16 and second == list(range(second[0], second[0] + 16))  # 28 - 2 * 6


def test_labelled_view_keeps_aspect_and_adds_legend():
    image = np.full((128, 160, 3), 100, np.uint8)
    labels = np.zeros((128, 160), np.uint8)
    labels[:, 80:] = 1
    view = labelled_view(image, labels, {1: "polyp"}, width=640)
    assert view.shape == (512 + 28, 640, 3)  # 640 * 128 / 160 = 512, legend 28
    assert view[256, 100].tolist() == [100, 100, 100]
    assert view[256, 500].tolist() == [114, 50, 50]  # blended polyp colour, upscaled


def test_comparison_sheet_puts_truth_above_prediction():
    images = [np.full((60, 80, 3), 100, np.uint8)] * 2
    truth = [np.ones((60, 80), np.uint8)] * 2
    predicted = [np.zeros((60, 80), np.uint8)] * 2
    sheet = comparison_sheet(images, truth, predicted, {1: "polyp"}, tile_width=80)
    gap = 4
    assert sheet.shape == (2 * 60 + 3 * gap + 28, 2 * 80 + 3 * gap, 3)
    assert sheet[gap + 50, gap + 40].tolist() == [114, 50, 50]  # ground truth row: polyp
    assert sheet[2 * gap + 60 + 50, gap + 40].tolist() == [100, 100, 100]  # prediction: nothing
    with pytest.raises(ValueError, match="2 images, 1 ground-truth"):
        comparison_sheet(images, truth[:1], predicted, {1: "polyp"})


def test_captions_grow_with_the_tile():
    small = contact_sheet([np.zeros((8, 8, 3), np.uint8)], captions=["t=1"], tile_hw=(60, 80))
    large = contact_sheet([np.zeros((8, 8, 3), np.uint8)], captions=["t=1"], tile_hw=(480, 640))
    # caption text pixels are white-ish; the large tile's text covers more rows
    rows_small = np.unique(np.nonzero(small.max(axis=2) > 200)[0]).size
    rows_large = np.unique(np.nonzero(large.max(axis=2) > 200)[0]).size
    assert rows_large >= 3 * rows_small > 0
