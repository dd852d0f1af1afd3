"""Overlays and contact sheets: exact pixel values on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from endobench.data import davis_palette
from endobench.viz import contact_sheet, fit_tile, label_colours, overlay_mask, save_image


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
