"""Feature-affinity propagation: equivalence with a direct implementation of PROPAGATION.md."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from endobench.propagation.affinity import (
    AffinityConfig,
    AffinityPropagator,
    default_frame_size,
    reference_frame_size,
)
from endobench.propagation.affinity_core import propagate_labels, window_keys, window_tiles
from endobench.propagation.base import one_hot

PATCH = 14


class ConvFeatures:
    """Deterministic stand-in for a ViT: a stride-p conv, which (like DINO's patch embedding)
    ignores trailing pixels that do not fill a patch."""

    patch_size = PATCH
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)
    weights = None

    def __init__(self, dim: int = 24, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv(image)[0]


# ---- A direct, unoptimised transcription of the official protocol (PROPAGATION.md) ----------------
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.228, 0.224, 0.225], np.float32)


def _read_frame(rgb: np.ndarray) -> torch.Tensor:
    ori_h, ori_w = rgb.shape[:2]
    if ori_h > ori_w:
        tw, th = 480, int((480 * ori_h / ori_w) // 64 * 64)
    else:
        th, tw = 480, int((480 * ori_w / ori_h) // 64 * 64)
    img = cv2.resize(rgb, (tw, th)).astype(np.float32) / 255.0
    chw = torch.from_numpy(img.transpose(2, 0, 1).copy())
    for c in range(3):
        chw[c] = (chw[c] - MEAN[c]) / STD[c]
    return chw


def _read_seg(labels: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    _h, _w = labels.shape
    if _w > _h:
        _th, _tw = 480, int((480 * _w / _h) // 64 * 64)
    else:
        _tw, _th = 480, int((480 * _h / _w) // 64 * 64)
    small = np.asarray(Image.fromarray(labels).resize((_tw // PATCH, _th // PATCH), Image.NEAREST))
    c = int(small.max()) + 1
    onehot = torch.stack([torch.from_numpy(small == k).float() for k in range(c)])
    return onehot[None], (_h, _w)


def _label_propagation(feat_tar, list_feats, list_segs, h, w, mask_nb, topk=5):
    ncontext = len(list_feats)
    tar = F.normalize(feat_tar, dim=1, p=2)  # hw x d
    aff = torch.stack([torch.exp(tar @ F.normalize(f, dim=1, p=2).t() / 0.1) for f in list_feats])
    aff = aff.transpose(1, 2)  # ncontext x hw(source) x hw(query)
    aff = aff * mask_nb[None]
    aff = aff.reshape(ncontext * h * w, h * w)
    tk_val, _ = torch.topk(aff, dim=0, k=topk)
    tk_val_min, _ = torch.min(tk_val, dim=0)
    aff[aff < tk_val_min] = 0
    aff = aff / torch.sum(aff, dim=0, keepdim=True)
    segs = torch.cat([s.reshape(s.shape[1], -1) for s in list_segs], dim=1)  # C x ncontext*hw
    return (segs @ aff).reshape(1, -1, h, w)


def _norm_mask(mask: torch.Tensor) -> torch.Tensor:
    for cnt in range(mask.shape[0]):
        m = mask[cnt]
        if m.max() > 0:
            m = m - m.min()
            m = m / m.max()
            mask[cnt] = m
    return mask


def direct_reference(frames, first_labels, features, n_last=7, radius=12, topk=5):
    """Official protocol, written straight from the text; returns the output label maps."""
    seg0, (ori_h, ori_w) = _read_seg(first_labels)
    f0 = features(_read_frame(frames[0])[None])
    d, h, w = f0.shape
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    mask_nb = torch.from_numpy(
        (np.abs(ii[:, None] - ii[None]) <= radius) & (np.abs(jj[:, None] - jj[None]) <= radius)
    ).float()
    first = (f0.reshape(d, -1).t(), seg0)
    que: queue.Queue = queue.Queue(n_last)
    outputs = [first_labels]
    for frame in frames[1:]:
        feat = features(_read_frame(frame)[None]).reshape(d, -1).t()
        used = [first[0]] + [q[0] for q in que.queue]
        segs = [first[1]] + [q[1] for q in que.queue]
        seg_tar = _label_propagation(feat, used, segs, h, w, mask_nb, topk)
        if que.qsize() == n_last:
            que.get()
        que.put([feat, seg_tar])
        up = F.interpolate(
            seg_tar,
            scale_factor=PATCH,
            mode="bilinear",
            align_corners=False,
            recompute_scale_factor=False,
        )
        up = _norm_mask(up[0])
        _, lab = torch.max(up, dim=0)
        lab = np.asarray(Image.fromarray(lab.numpy().astype(np.uint8)).resize((ori_w, ori_h), 0))
        outputs.append(lab)
    return outputs


def run_propagator(propagator, frames, first_labels):
    probs0 = one_hot(first_labels, int(first_labels.max()) + 1)
    propagator.reset(frames[0], probs0)
    outputs = [first_labels]
    for frame in frames[1:]:
        outputs.append(np.argmax(propagator.step(frame).probs, axis=0).astype(np.uint8))
    return outputs


@pytest.fixture(scope="module")
def blackswan(samples: Path):
    root = samples / "DAVIS"
    names = sorted((root / "JPEGImages/480p/blackswan").glob("*.jpg"))[:10]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in names]
    gt = np.asarray(Image.open(root / "Annotations/480p/blackswan/00000.png"))
    return frames, (gt > 127).astype(np.uint8)


def test_reference_mode_reproduces_the_official_protocol(blackswan):
    frames, first = blackswan
    features = ConvFeatures()
    expected = direct_reference(frames, first, features)
    got = run_propagator(
        AffinityPropagator(features, AffinityConfig(mode="reference")), frames, first
    )
    assert len(got) == len(expected) == 10
    for t, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == (480, 854)
        assert np.array_equal(a, b), f"frame {t}: {np.count_nonzero(a != b)} pixels differ"
    # the masks are not trivial: the swan survives propagation with random conv features
    assert 0.3 * first.sum() < got[-1].sum() < 3 * first.sum()


def test_reference_mode_multi_object_and_short_context(blackswan):
    frames, first = blackswan
    labels = first.copy()
    labels[:, 427:][first[:, 427:] == 1] = 2  # split the swan into two objects
    features = ConvFeatures(seed=3)
    expected = direct_reference(frames[:6], labels, features, n_last=2, topk=3)
    cfg = AffinityConfig(mode="reference", n_last=2, topk=3)
    got = run_propagator(AffinityPropagator(features, cfg), frames[:6], labels)
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a, b)
    assert set(np.unique(got[-1])) == {0, 1, 2}


def test_sizing_rules():
    assert reference_frame_size(480, 854) == (480, 832)
    assert reference_frame_size(854, 480) == (832, 480)
    assert reference_frame_size(512, 512) == (480, 448)
    # default mode keeps the aspect ratio and the patch multiple, square stays square
    assert default_frame_size(480, 854, 480, 14) == (476, 854)
    assert default_frame_size(512, 512, 224, 14) == (224, 224)
    assert default_frame_size(854, 480, 480, 14) == (854, 476)


@pytest.mark.parametrize("shape", [(96, 160), (160, 96), (112, 112)])
def test_default_mode_handles_landscape_portrait_and_square(shape):
    rng = np.random.default_rng(0)
    h, w = shape
    base = rng.integers(0, 255, (h + 40, w + 40, 3), dtype=np.uint8)
    frames = [np.ascontiguousarray(base[2 * t : 2 * t + h, 3 * t : 3 * t + w]) for t in range(4)]
    labels = np.zeros((h, w), np.uint8)
    labels[h // 4 : h // 2, w // 4 : w // 2] = 1
    prop = AffinityPropagator(ConvFeatures(), AffinityConfig(short_side=112))
    prop.reset(frames[0], one_hot(labels, 2))
    for frame in frames[1:]:
        step = prop.step(frame)
        assert step.probs.shape == (2, h, w)
        assert step.confidence.shape == (h, w)
        np.testing.assert_allclose(step.probs.sum(axis=0), 1.0, atol=1e-5)
        assert step.confidence.min() >= 0.0 and step.confidence.max() <= 1.0
    gh, gw = prop._grid
    assert abs(gh / gw - h / w) < 0.15  # the grid keeps the frame's aspect


def test_n_last_zero_means_first_frame_only_and_memory_is_bounded():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (56, 84, 3), dtype=np.uint8) for _ in range(12)]
    labels = np.zeros((56, 84), np.uint8)
    labels[10:30, 10:40] = 1
    for n_last, expected_len in ((0, 0), (3, 3)):
        prop = AffinityPropagator(ConvFeatures(), AffinityConfig(n_last=n_last, short_side=56))
        prop.reset(frames[0], one_hot(labels, 2))
        for frame in frames[1:]:
            prop.step(frame)
        assert len(prop._recent) == expected_len
    # with n_last = 0 every frame is propagated from the keyframe alone: the order of frames is moot
    prop = AffinityPropagator(ConvFeatures(), AffinityConfig(n_last=0, short_side=56))
    prop.reset(frames[0], one_hot(labels, 2))
    a = prop.step(frames[5]).probs
    prop.step(frames[7])
    b = prop.step(frames[5]).probs
    np.testing.assert_array_equal(a, b)


def test_too_many_objects_and_bad_settings_are_refused():
    prop = AffinityPropagator(ConvFeatures(), AffinityConfig(short_side=28))
    frame = np.zeros((28, 28, 3), np.uint8)
    with pytest.raises(ValueError, match="at most 255"):
        prop.reset(frame, np.zeros((300, 28, 28), np.float32))
    with pytest.raises(ValueError, match="expected C x 28 x 28"):
        prop.reset(frame, np.zeros((2, 20, 28), np.float32))
    with pytest.raises(RuntimeError, match="before reset"):
        AffinityPropagator(ConvFeatures()).step(frame)
    with pytest.raises(ValueError, match="n_last"):
        AffinityConfig(n_last=-1)
    with pytest.raises(ValueError, match="mode"):
        AffinityConfig(mode="fast")  # type: ignore[arg-type]


def test_window_tiles_cover_the_grid_and_reach_exactly_the_square_windows():
    h, w, r = 11, 17, 3
    tiles = window_tiles(h, w, r, 4)
    queries = torch.cat([t.queries for t in tiles])
    assert sorted(queries.tolist()) == list(range(h * w))  # every query once
    for tile in tiles:
        (ya, yb), (xa, xb) = tile.rows, tile.band_cols
        sy, sx = np.mgrid[ya:yb, xa:xb].reshape(2, -1)
        for q, bias in zip(tile.queries.tolist(), tile.bias, strict=True):
            qy, qx = divmod(q, w)
            inside = (np.abs(sy - qy) <= r) & (np.abs(sx - qx) <= r)
            assert np.array_equal((bias == 0).numpy(), inside)
            # the rectangle holds the query's whole (clipped) window
            assert inside.sum() == (min(qy + r, h - 1) - max(qy - r, 0) + 1) * (
                min(qx + r, w - 1) - max(qx - r, 0) + 1
            )
    for grid in ((34, 59), (60, 104)):
        window_tiles.cache_clear()
        start = time.process_time()  # CPU seconds: wall time on a shared machine measures load
        window_tiles(*grid, 12)
        assert time.process_time() - start < 0.5


def _dense_step(query, keys, labels, h, w, radius, topk):
    """The official dense step on L2-normalised features (PROPAGATION.md steps 1-5)."""
    ii, jj = np.divmod(np.arange(h * w), w)
    mask_nb = torch.from_numpy(
        (np.abs(ii[:, None] - ii) <= radius) & (np.abs(jj[:, None] - jj) <= radius)
    ).float()
    aff = torch.stack([torch.exp(query @ k.t() / 0.1) for k in keys]).transpose(1, 2)
    aff = (aff * mask_nb[None]).reshape(len(keys) * h * w, h * w)
    tk_val_min = torch.topk(aff, dim=0, k=topk).values.min(dim=0).values
    aff[aff < tk_val_min] = 0
    aff = aff / aff.sum(dim=0, keepdim=True)
    return torch.cat(labels, dim=1) @ aff


@pytest.mark.parametrize("ties", [False, True])
def test_windowed_propagation_equals_the_dense_step(ties):
    """Random features (or duplicated ones: many exact ties with the k-th affinity, which the
    reference keeps all of) on a grid with border windows; labels equal to float rounding."""
    h, w, d, radius, topk = 13, 21, 16, 4, 5
    gen = torch.Generator().manual_seed(1)
    if ties:  # four distinct vectors, repeated: every window ties massively
        palette = F.normalize(torch.randn(4, d, generator=gen), dim=1)
        feats = [palette[torch.randint(0, 4, (h * w,), generator=gen)] for _ in range(4)]
    else:
        feats = [F.normalize(torch.randn(h * w, d, generator=gen), dim=1) for _ in range(4)]
    query, keys = feats[0], feats[1:]
    labels = [torch.softmax(3 * torch.randn(3, h * w, generator=gen), 0) for _ in keys]
    want = _dense_step(query, keys, labels, h, w, radius, topk)
    got, _ = propagate_labels(
        query, [window_keys(k, (h, w), radius) for k in keys], labels, (h, w), radius, topk
    )
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    assert torch.equal(got.argmax(0), want.argmax(0))


@pytest.mark.parametrize("name, prefix", [("dinov2_vits14", 1), ("dinov2_vits14_reg4", 5)])
def test_real_backbone_features_drop_prefix_tokens_and_match_the_protocol(blackswan, name, prefix):
    from endobench.propagation.affinity import build_affinity_propagator

    frames, first = blackswan
    prop = build_affinity_propagator(
        name, pretrained=False, model_kwargs={"depth": 1}, mode="reference", n_last=2
    )
    backbone = prop.extractor.backbone
    assert backbone.prefix_tokens == prefix
    assert prop.weights.sha256 == "random-init"

    def floor_grid_features(image: torch.Tensor) -> torch.Tensor:
        # DINO's stride-p patch embedding ignores trailing pixels: same as cropping to the floor grid
        h, w = image.shape[-2:]
        return prop.extractor(image[..., : h // PATCH * PATCH, : w // PATCH * PATCH])

    expected = direct_reference(frames[:4], first, floor_grid_features, n_last=2)
    got = run_propagator(prop, frames[:4], first)
    assert prop._grid == (34, 59)
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a, b)
