"""Label PNGs as endobench writes them: any PNG reader gives back the palette indices."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from endobench.data.label_png import (
    _pack_rows,
    davis_palette,
    encode_palette_png,
    read_label_png,
    write_palette_png,
)


@pytest.mark.parametrize("top", [0, 1, 2, 3, 4, 13, 15, 16, 255])
@pytest.mark.parametrize("width", [1, 2, 3, 5, 7, 8, 9, 854])
def test_pillow_reads_back_the_indices_and_the_davis_colours(top, width):
    rng = np.random.default_rng(top * 1000 + width)
    labels = rng.integers(0, top + 1, (6, width)).astype(np.uint8)
    labels[0, 0] = top
    with Image.open(io.BytesIO(encode_palette_png(labels))) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), labels)
        colours = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(colours, davis_palette()[labels])


def test_bit_depth_is_the_fewest_that_hold_the_largest_label():
    def ihdr(data: bytes) -> tuple[int, int, int, int]:
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        crc = int.from_bytes(data[29:33], "big")
        assert crc == zlib.crc32(data[12:29])
        return w, h, data[24], data[25]

    binary = np.zeros((3, 10), np.uint8)
    binary[1, 2:9] = 1
    assert ihdr(encode_palette_png(binary)) == (10, 3, 1, 3)  # 1 bit, colour type 3 (palette)
    assert ihdr(encode_palette_png(binary * 2)) == (10, 3, 2, 3)
    assert ihdr(encode_palette_png(binary * 3)) == (10, 3, 2, 3)
    assert ihdr(encode_palette_png(binary * 4)) == (10, 3, 4, 3)
    assert ihdr(encode_palette_png(binary * 15)) == (10, 3, 4, 3)
    assert ihdr(encode_palette_png(binary * 16)) == (10, 3, 8, 3)


@pytest.mark.parametrize(("bits", "pixels", "packed"), [
    (2, [1, 2, 3, 0, 3], [0b01101100, 0b11000000]),
    (4, [1, 15, 7], [0x1F, 0x70]),
])  # fmt: skip
def test_packed_rows_put_the_first_pixel_in_the_high_bits(bits, pixels, packed):
    labels = np.array([pixels, pixels[::-1]], np.uint8)
    rows = _pack_rows(labels, bits)
    assert rows[0].tolist() == packed
    assert rows.shape == (2, len(packed))


def test_write_and_read_round_trip_and_errors(tmp_path):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4) % 3
    path = tmp_path / "m.png"
    write_palette_png(path, labels)
    np.testing.assert_array_equal(read_label_png(path), labels)
    write_palette_png(path, labels > 0, atomic=False)  # bool: 0/1
    np.testing.assert_array_equal(read_label_png(path), (labels > 0).astype(np.uint8))
    for bad in (np.zeros((0, 4), np.uint8), np.zeros((2, 2, 3), np.uint8), np.full((2, 2), 300)):
        with pytest.raises(ValueError, match="m.png"):
            write_palette_png(path, bad)
