"""The evaluator's PNG decoding equals read_label_png on every kind of label file, faster paths
included: all five PNG row filters, palette, grey, binary 0/255, RGB(A), 16-bit, 1-bit, JPEG."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from endobench.data.label_png import read_label_png, write_palette_png
from endobench.evaluation import EvaluationError, read_mask
from endobench.evaluation.png import decode_samples, png_header


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _encode(img: np.ndarray, filters: list[int], colour: int, idat_parts: int = 1) -> bytes:
    """A PNG of 8-bit samples with row y filtered by ``filters[y]`` (the PNG spec, literally)."""
    h, w = img.shape
    raw = bytearray()
    for y in range(h):
        f = filters[y]
        raw.append(f)
        for x in range(w):
            a = int(img[y, x - 1]) if x else 0
            b = int(img[y - 1, x]) if y else 0
            c = int(img[y - 1, x - 1]) if x and y else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[f]
            raw.append((int(img[y, x]) - pred) % 256)
    data = zlib.compress(bytes(raw))
    step = -(-len(data) // idat_parts)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
    if colour == 3:
        out += _chunk(b"PLTE", bytes(range(256)) * 3)
    for i in range(idat_parts):
        out += _chunk(b"IDAT", data[i * step : (i + 1) * step])
    return out + _chunk(b"IEND", b"")


@pytest.mark.parametrize("colour", [0, 3])
def test_every_row_filter_decodes_to_the_samples(tmp_path: Path, colour: int) -> None:
    rng = np.random.default_rng(colour)
    img = rng.integers(0, 256, (23, 17), dtype=np.uint8)
    img[5:12, 3:9] = 7  # flat patch: the filters' predictions hit exactly
    data = _encode(img, [y % 5 for y in range(23)], colour, idat_parts=3)
    assert np.array_equal(decode_samples(data, png_header(data)), img)
    path = tmp_path / "m.png"
    path.write_bytes(data)
    # Pillow agrees with the hand-made file: grey values, or palette indices
    assert np.array_equal(np.asarray(Image.open(path)), img)
    assert np.array_equal(read_mask(path), read_label_png(path))


def _write_cases(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (30, 40), dtype=np.uint8)
    cases = {}

    def save(name: str, arr: np.ndarray | Image.Image, **kw) -> None:
        cases[name] = root / name
        (arr if isinstance(arr, Image.Image) else Image.fromarray(arr)).save(cases[name], **kw)

    write_palette_png(root / "palette.png", labels)
    cases["palette.png"] = root / "palette.png"
    save("grey_labels.png", labels * 10)
    save("grey_binary.png", (labels > 1).astype(np.uint8) * 255)
    save("grey_empty.png", np.zeros((30, 40), np.uint8))
    save("rgb_equal.png", np.repeat(labels[..., None] * 20, 3, axis=2))
    save("rgba_equal.png", np.dstack([labels * 20] * 3 + [np.full_like(labels, 200)]))
    save("grey16.png", labels.astype(np.uint16) * 1000)
    save("bits1.png", labels > 1)
    palette = Image.frombytes("P", (40, 30), labels.tobytes())
    palette.putpalette(list(range(48)))
    save("palette4bit.png", palette, bits=4)
    cases["opencv_grey.png"] = root / "opencv_grey.png"  # OpenCV: adaptive row filters
    cv2.imwrite(str(cases["opencv_grey.png"]), labels * 10)
    save("mask.jpg", (labels > 1).astype(np.uint8) * 255, quality=95)
    return cases


def test_every_file_kind_reads_like_read_label_png(tmp_path: Path) -> None:
    for name, path in _write_cases(tmp_path).items():
        try:
            want = read_label_png(path)
        except ValueError as exc:
            with pytest.raises(EvaluationError) as got:
                read_mask(path)
            assert str(got.value) == str(exc), name
            continue
        got = read_mask(path)
        assert got.dtype == np.uint8 and got.shape == want.shape, name
        assert np.array_equal(got, want), name


def test_shared_masks_read_like_read_label_png(samples: Path, metric_vectors: Path) -> None:
    paths = sorted((samples / "DAVIS" / "Annotations" / "480p").glob("*/0000[05].png"))
    paths += sorted((metric_vectors / "synthetic").glob("*/*/00001.png"))
    paths += [samples / "CholecSeg8k/video48/video48_00561/frame_561_endo_watershed_mask.png"]
    paths += [samples / "CVC-ClinicDB/Ground Truth/1.png"]
    assert len(paths) > 30
    for path in paths:
        assert np.array_equal(read_mask(path), read_label_png(path)), path


def test_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    damaged = bytearray(_encode(np.arange(64, dtype=np.uint8).reshape(8, 8), [0] * 8, 0))
    damaged[60:64] = b"\x00\x00\x00\x00"  # inside the compressed data: Adler-32 fails
    (tmp_path / "damaged.png").write_bytes(bytes(damaged))
    expected = {
        "missing.png": "mask file not found",
        "dir.png": "is a directory, expected a mask PNG file",
        "bad.png": "cannot read mask image",
        "colour.png": "colour mask with unequal channels",
        "damaged.png": "cannot read mask image",
    }
    for name, text in expected.items():
        with pytest.raises(EvaluationError) as err:
            read_mask(tmp_path / name)
        message = str(err.value)
        assert message.startswith(str(tmp_path / name)) and text in message, message
        assert "\n" not in message
