"""JPEG frames: OpenCV's fast path gives Pillow's pixels, and everything else still goes to Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from endobench.data.errors import DataError
from endobench.data.readers.imageio import _decode_jpeg, jpeg_frame_header, read_luma, read_rgb


def _pillow_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_every_shared_jpeg_takes_the_fast_path_with_pillows_pixels(samples: Path):
    files = sorted(samples.glob("DAVIS/JPEGImages/480p/*/*.jpg")) + sorted(
        samples.glob("Kvasir-SEG/images/*.jpg")
    )
    assert len(files) >= 200
    for path in files:
        fast = _decode_jpeg(path)
        assert fast is not None, path
        assert np.array_equal(fast, _pillow_rgb(path)), path
        assert np.array_equal(read_rgb(path), fast)


@pytest.fixture
def frame(samples: Path) -> Image.Image:
    with Image.open(samples / "DAVIS/JPEGImages/480p/dog/00010.jpg") as im:
        return im.convert("RGB").crop((100, 50, 261, 170))  # odd sizes on purpose


def _save(im: Image.Image, path: Path, **options) -> Path:
    im.save(path, format="JPEG", quality=90, **options)
    return path


def test_variants_decode_as_pillow_does(frame: Image.Image, tmp_path: Path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": ignored by Pillow's plain decode, and by ours
    variants = {
        "progressive": (_save(frame, tmp_path / "p.jpg", progressive=True), True),
        "subsampling 4:4:4": (_save(frame, tmp_path / "s.jpg", subsampling=0), True),
        "exif orientation": (_save(frame, tmp_path / "o.jpg", exif=exif.tobytes()), True),
        "greyscale": (_save(frame.convert("L"), tmp_path / "g.jpg"), False),
        "cmyk": (_save(frame.convert("CMYK"), tmp_path / "c.jpg"), False),
    }
    trailing = tmp_path / "t.jpg"
    trailing.write_bytes(_save(frame, tmp_path / "t0.jpg").read_bytes() + b"\x00 trailer")
    variants["bytes after the end marker"] = (trailing, False)
    for name, (path, fast) in variants.items():
        assert (_decode_jpeg(path) is not None) == fast, name
        out = read_rgb(path)
        assert out.shape == (120, 161, 3), name
        assert np.array_equal(out, _pillow_rgb(path)), name


def test_a_truncated_jpeg_is_still_an_error(frame: Image.Image, tmp_path: Path):
    path = _save(frame, tmp_path / "cut.jpg")
    path.write_bytes(path.read_bytes()[:-400])
    assert _decode_jpeg(path) is None
    with pytest.raises(DataError, match=r"cut\.jpg: cannot decode image .*truncated"):
        read_rgb(path)


def test_frame_header_parsing(frame: Image.Image):
    buffer = io.BytesIO()
    frame.save(buffer, format="JPEG")
    assert jpeg_frame_header(buffer.getvalue()) == (0xC0, 8, 3)
    buffer = io.BytesIO()
    frame.save(buffer, format="JPEG", progressive=True)
    assert jpeg_frame_header(buffer.getvalue()) == (0xC2, 8, 3)
    assert jpeg_frame_header(b"\x89PNG\r\n\x1a\n") is None
    # SOI, a 4-byte APP0 segment, then start of scan: no frame header before the scan.
    assert jpeg_frame_header(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xda\x00\x02") is None
    assert jpeg_frame_header(b"\xff\xd8\xff\xe0\x00") is None  # cut inside a segment


def test_luma_is_the_jpeg_luma_plane_and_601_luma_otherwise(samples: Path, tmp_path: Path):
    jpegs = sorted(samples.glob("DAVIS/JPEGImages/480p/*/*.jpg"))[::10]
    assert len(jpegs) >= 15
    for path in jpegs:
        luma = read_luma(path)
        expected = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert luma.shape == expected.shape and luma.dtype == np.uint8
        assert np.array_equal(luma, expected), path
        # The decoder's luma against ITU-R 601 of the RGB decode: the chroma upsampling's
        # rounding moves a few levels on few pixels only.
        diff = np.abs(luma.astype(int) - cv2.cvtColor(read_rgb(path), cv2.COLOR_RGB2GRAY))
        assert diff.mean() < 0.1 and (diff > 2).mean() < 0.005, path
    pngs = sorted(samples.glob("CVC-ClinicDB/Original/*.png"))[:5]
    for path in pngs:
        assert np.array_equal(read_luma(path), cv2.cvtColor(read_rgb(path), cv2.COLOR_RGB2GRAY))


def test_luma_of_other_jpegs_and_errors_go_through_pillow(frame: Image.Image, tmp_path: Path):
    grey = _save(frame.convert("L"), tmp_path / "g.jpg")
    assert np.array_equal(read_luma(grey), cv2.cvtColor(read_rgb(grey), cv2.COLOR_RGB2GRAY))
    cut = _save(frame, tmp_path / "cut.jpg")
    cut.write_bytes(cut.read_bytes()[:-400])
    with pytest.raises(DataError, match=r"cut\.jpg: cannot decode image .*truncated"):
        read_luma(cut)
