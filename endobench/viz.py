"""Pictures of data and predictions: label colours, mask overlays, contact sheets, legends.

Everything works on plain uint8 arrays (``H x W x 3`` RGB images, ``H x W`` label maps) and
returns arrays, so notebooks can show them with matplotlib and the CLI can save them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from endobench.data.clip import VOID_ID
from endobench.data.label_png import davis_palette
from endobench.io_utils import atomic_write_bytes

VOID_COLOUR = (255, 255, 255)


def label_colours(labels: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """Colour an ``H x W`` label map with the DAVIS palette (void 255 in white): ``H x W x 3``."""
    palette = davis_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
    colours = palette.copy()
    colours[VOID_ID] = VOID_COLOUR
    return colours[np.asarray(labels, dtype=np.uint8)]


def overlay_mask(
    image: np.ndarray,
    labels: np.ndarray | None,
    alpha: float = 0.5,
    contours: bool = True,
    palette: np.ndarray | None = None,
) -> np.ndarray:
    """Blend label colours over ``image`` (``H x W x 3`` uint8) where labels are non-zero.

    ``alpha`` is the colour opacity (0..1); ``contours`` draws each region's outline fully
    opaque so thin or low-contrast regions stay visible. Returns a new ``H x W x 3`` uint8 image.
    """
    image = _as_rgb(image)
    if labels is None:
        return image.copy()
    labels = np.asarray(labels)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"labels shape {labels.shape} differs from image shape {image.shape[:2]}")
    colours = label_colours(labels, palette)
    fg = labels > 0
    out = image.copy()
    blended = image.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha
    out[fg] = np.clip(np.rint(blended[fg]), 0, 255).astype(np.uint8)
    if contours:
        edges = _label_edges(labels) & fg
        out[edges] = colours[edges]
    return out


def _label_edges(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood holds another label (inner boundary of every region)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return image


def fit_tile(image: np.ndarray, tile_hw: tuple[int, int]) -> np.ndarray:
    """Resize ``image`` to fit inside ``tile_hw`` keeping its aspect ratio, centred on black."""
    image = _as_rgb(image)
    th, tw = tile_hw
    h, w = image.shape[:2]
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    tile = np.zeros((th, tw, 3), dtype=np.uint8)
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    tile[y0 : y0 + nh, x0 : x0 + nw] = resized
    return tile


def contact_sheet(
    images: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    columns: int = 4,
    tile_hw: tuple[int, int] = (180, 240),
    gap: int = 4,
) -> np.ndarray:
    """Arrange images in a grid of equal tiles (``rows x columns``) with optional captions.

    Returns one ``H x W x 3`` uint8 image; empty cells are dark grey.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"{len(captions)} captions for {len(images)} images")
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    th, tw = tile_hw
    sheet = np.full(
        (rows * th + (rows + 1) * gap, columns * tw + (columns + 1) * gap, 3), 40, dtype=np.uint8
    )
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        tile = fit_tile(image, tile_hw)
        if captions is not None and captions[k]:
            _caption(tile, captions[k])
        y, x = gap + r * (th + gap), gap + c * (tw + gap)
        sheet[y : y + th, x : x + tw] = tile
    return sheet


def _caption(tile: np.ndarray, text: str) -> None:
    """Write ``text`` in the tile's top-left corner on a dark band (in place).

    The font grows with the tile (about 1/14 of its height, at least 0.4 of OpenCV's scale) so
    that captions stay legible when a wide sheet is shrunk to notebook width.
    """
    scale = max(0.4, tile.shape[0] / 300)
    thickness = 1 if scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    tile[: th + base + 6, : min(tile.shape[1], tw + 8)] //= 3
    cv2.putText(
        tile, text, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
        cv2.LINE_AA,
    )  # fmt: skip


def legend_bar(
    classes: dict[int, str], width: int, height: int = 28, palette: np.ndarray | None = None
) -> np.ndarray:
    """A ``height x width x 3`` uint8 band: one colour swatch and name per class id (id order).

    Swatch ``k`` fills rows ``[6, height - 6)`` and columns ``[x_k + 6, x_k + height - 6)`` with the
    class colour of :func:`label_colours`; names are white on the dark band (grey 40).
    """
    bar = np.full((height, width, 3), 40, dtype=np.uint8)
    ids = sorted(k for k in classes if k != 0)
    colours = label_colours(np.array(ids, dtype=np.uint8), palette)
    scale = max(0.4, height / 60)
    x = 0
    for k, colour in zip(ids, colours, strict=True):
        bar[6 : height - 6, x + 6 : x + height - 6] = colour
        text = f"{k} {classes[k]}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(
            bar, text, (x + height, (height + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
            (255, 255, 255), 1, cv2.LINE_AA,
        )  # fmt: skip
        x += height + tw + height // 2
    return bar


def labelled_view(
    image: np.ndarray,
    labels: np.ndarray | None,
    classes: dict[int, str],
    width: int = 640,
    palette: np.ndarray | None = None,
) -> np.ndarray:
    """One frame with its mask overlaid, scaled to ``width`` pixels at its own aspect ratio,
    with a :func:`legend_bar` underneath: ``(round(width * H / W) + 28) x width x 3`` uint8.
    """
    shown = overlay_mask(image, labels, palette=palette)
    h, w = shown.shape[:2]
    tile = fit_tile(shown, (max(1, round(width * h / w)), width))
    return np.vstack([tile, legend_bar(classes, width, palette=palette)])


def comparison_sheet(
    images: Sequence[np.ndarray],
    truth: Sequence[np.ndarray | None],
    predicted: Sequence[np.ndarray],
    classes: dict[int, str],
    tile_width: int = 240,
    captions: Sequence[str] | None = None,
) -> np.ndarray:
    """Ground truth (top row) above predictions (bottom row), one column per image, legend below.

    Tiles keep the first image's aspect ratio (``tile_width`` wide); the first tile of each row
    is captioned ``ground truth`` / ``prediction`` (``captions`` add per-column texts to it).
    """
    if not images:
        raise ValueError("comparison_sheet needs at least one image")
    if not len(images) == len(truth) == len(predicted):
        raise ValueError(
            f"{len(images)} images, {len(truth)} ground-truth and {len(predicted)} predicted masks"
        )
    h, w = np.asarray(images[0]).shape[:2]
    tile_hw = (max(1, round(tile_width * h / w)), tile_width)
    columns = [str(c) for c in captions] if captions is not None else [""] * len(images)
    texts = [
        " ".join(filter(None, [row if i == 0 else "", c]))
        for row in ("ground truth", "prediction")
        for i, c in enumerate(columns)
    ]
    sheet = contact_sheet(
        [overlay_mask(im, m) for im, m in zip(images, truth, strict=True)]
        + [overlay_mask(im, m) for im, m in zip(images, predicted, strict=True)],
        captions=texts,
        columns=len(images),
        tile_hw=tile_hw,
    )
    return np.vstack([sheet, legend_bar(classes, sheet.shape[1])])


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``H x W x 3`` uint8 RGB image (format from the suffix, e.g. .png, .jpg) atomically."""
    path = Path(path)
    suffix = path.suffix.lower() or ".png"
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(_as_rgb(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: cannot encode an image with suffix {suffix!r}")
    return atomic_write_bytes(path, encoded.tobytes())
