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

from endobench.metrics import jaccard_and_boundary
from endobench.propagation.affinity import (
    AffinityConfig,
    AffinityPropagator,
    default_frame_size,
    normalized_input,
    reference_frame_size,
)
from endobench.propagation.affinity_core import (
    propagate_labels,
    reference_argmax,
    window_keys,
    window_plan,
)
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


def _read_frame(rgb: np.ndarray, scale: int = 480) -> torch.Tensor:
    ori_h, ori_w = rgb.shape[:2]
    if ori_h > ori_w:
        tw, th = scale, int((scale * ori_h / ori_w) // 64 * 64)
    else:
        th, tw = scale, int((scale * ori_w / ori_h) // 64 * 64)
    img = cv2.resize(rgb, (tw, th)).astype(np.float32) / 255.0
    chw = torch.from_numpy(img.transpose(2, 0, 1).copy())
    for c in range(3):
        chw[c] = (chw[c] - MEAN[c]) / STD[c]
    return chw


def _read_seg(labels: np.ndarray, scale: int = 480) -> tuple[torch.Tensor, tuple[int, int]]:
    _h, _w = labels.shape
    if _w > _h:
        _th, _tw = scale, int((scale * _w / _h) // 64 * 64)
    else:
        _tw, _th = scale, int((scale * _h / _w) // 64 * 64)
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


def direct_reference(frames, first_labels, features, n_last=7, radius=12, topk=5, scale=480):
    """Official protocol, written straight from the text; returns the output label maps and the
    soft labels ``seg_tar`` (``C x hw``) of every propagated frame.

    ``scale``: the official ``read_frame`` / ``read_seg`` ``scale_size`` (480 in the script).
    """
    seg0, (ori_h, ori_w) = _read_seg(first_labels, scale)
    f0 = features(_read_frame(frames[0], scale)[None])
    d, h, w = f0.shape
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    mask_nb = torch.from_numpy(
        (np.abs(ii[:, None] - ii[None]) <= radius) & (np.abs(jj[:, None] - jj[None]) <= radius)
    ).float()
    first = (f0.reshape(d, -1).t(), seg0)
    que: queue.Queue = queue.Queue(n_last)
    outputs, soft = [first_labels], []
    for frame in frames[1:]:
        feat = features(_read_frame(frame, scale)[None]).reshape(d, -1).t()
        used = [first[0]] + [q[0] for q in que.queue]
        segs = [first[1]] + [q[1] for q in que.queue]
        seg_tar = _label_propagation(feat, used, segs, h, w, mask_nb, topk)
        soft.append(seg_tar.reshape(seg_tar.shape[1], -1))
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
    return outputs, soft


def run_propagator(propagator, frames, first_labels):
    probs0 = one_hot(first_labels, int(first_labels.max()) + 1)
    propagator.reset(frames[0], probs0)
    outputs = [first_labels]
    for frame in frames[1:]:
        outputs.append(np.argmax(propagator.step(frame).probs, axis=0).astype(np.uint8))
    return outputs


#: Short side of the frames in the equivalence tests: the official ``scale_size`` is 480; at 320
#: the 22 x 36 grid keeps windows clipped at the borders while the dense reference stays cheap.
SCALE = 320
CHOLEC_CLASSES = (11, 12, 13, 21, 22, 31, 32)  # abdominal wall ... L-hook; 50 / 255 -> background


@pytest.fixture(scope="module")
def blackswan(samples: Path):
    root = samples / "DAVIS"
    names = sorted((root / "JPEGImages/480p/blackswan").glob("*.jpg"))[:10]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in names]
    gt = np.asarray(Image.open(root / "Annotations/480p/blackswan/00000.png"))
    return frames, (gt > 127).astype(np.uint8)


@pytest.fixture(scope="module")
def cholec(samples: Path):
    """CholecSeg8k video48 frames 561-570 and their 8-class masks (see its PROVENANCE.md)."""
    clip = samples / "CholecSeg8k/video48/video48_00561"
    lut = np.zeros(256, np.uint8)
    lut[list(CHOLEC_CLASSES)] = np.arange(1, len(CHOLEC_CLASSES) + 1)
    frames = [
        cv2.cvtColor(cv2.imread(str(clip / f"frame_{i}_endo.png")), cv2.COLOR_BGR2RGB)
        for i in range(561, 571)
    ]
    gts = [
        lut[cv2.imread(str(clip / f"frame_{i}_endo_watershed_mask.png"), cv2.IMREAD_GRAYSCALE)]
        for i in range(561, 571)
    ]
    return frames, gts


def test_reference_mode_reproduces_the_official_protocol(blackswan):
    frames, first = blackswan
    features = ConvFeatures()
    expected, _ = direct_reference(frames, first, features, scale=SCALE)
    prop = AffinityPropagator(features, AffinityConfig(mode="reference", short_side=SCALE))
    got = run_propagator(prop, frames, first)
    assert prop._grid == (22, 36)
    assert len(got) == len(expected) == 10  # the context fills up (first + 7) and then slides
    for t, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == (480, 854)
        assert np.array_equal(a, b), f"frame {t}: {np.count_nonzero(a != b)} pixels differ"
    # the masks are not trivial: the swan survives propagation with random conv features
    assert 0.3 * first.sum() < got[-1].sum() < 3 * first.sum()


def _mean_jf(gts, preds):
    """Mean (J + F) / 2 over the first ground truth's objects and frames 1.."""
    scores = [
        (j + f) / 2
        for gt, pred in zip(gts[1:], preds[1:], strict=True)
        for obj in range(1, int(gts[0].max()) + 1)
        for j, _, _, f in [jaccard_and_boundary(gt == obj, pred == obj)]
    ]
    return float(np.mean(scores))


def test_reference_mode_reproduces_the_protocol_on_endoscopy_with_ties(cholec):
    """8 classes; the black surround of the endoscope's field of view gives identical patches, so
    exact affinity ties across all 8 context frames, which the reference keeps all of. Soft labels
    agree to float rounding (sums in another order), which can flip a pixel where two upsampled,
    min-max rescaled channels tie to 1e-6: the stated bound is >= 99.99% identical pixels per
    frame and J&F within 1e-4."""
    frames, gts = cholec
    features = ConvFeatures(seed=1)
    expected, soft = direct_reference(frames, gts[0], features, scale=SCALE)
    prop = AffinityPropagator(features, AffinityConfig(mode="reference", short_side=SCALE))
    got = run_propagator(prop, frames, gts[0])
    for t, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert np.mean(a == b) >= 0.9999, f"frame {t}: {np.count_nonzero(a != b)} pixels differ"
    assert abs(_mean_jf(gts, got) - _mean_jf(gts, expected)) <= 1e-4
    for (_, ours), want in zip(prop._recent, soft[-7:], strict=True):  # the last 7 frames
        assert torch.allclose(ours, want, atol=2e-6, rtol=0)
        assert torch.equal(ours.argmax(0), want.argmax(0))
    assert len(np.unique(got[-1])) >= 5  # most classes survive


def test_reference_mode_multi_object_and_short_context(blackswan):
    frames, first = blackswan
    labels = first.copy()
    labels[:, 427:][first[:, 427:] == 1] = 2  # split the swan into two objects
    features = ConvFeatures(seed=3)
    expected, _ = direct_reference(frames[:6], labels, features, n_last=2, topk=3, scale=SCALE)
    cfg = AffinityConfig(mode="reference", n_last=2, topk=3, short_side=SCALE)
    got = run_propagator(AffinityPropagator(features, cfg), frames[:6], labels)
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a, b)
    assert set(np.unique(got[-1])) == {0, 1, 2}


def test_network_input_is_the_reference_frame_bit_for_bit(blackswan):
    frame = blackswan[0][3]
    expected = _read_frame(frame)[:, :476, :826]  # 480 x 832, cropped to the 34 x 59 grid
    got = normalized_input(frame, (480, 832), (476, 826), MEAN, STD)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert torch.equal(torch.from_numpy(got), expected)


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


def test_window_plan_covers_the_grid_and_every_window_lies_in_its_rectangle():
    h, w, r = 11, 17, 3
    plan = window_plan(h, w, r, (3, 4))
    assert plan.radius == r
    assert sorted(plan.order.tolist()) == list(range(h * w))  # every query once
    assert plan.tiles[0].start == 0 and plan.tiles[-1].stop == h * w
    for tile in plan.tiles:
        (ya, yb), (xa, xb) = tile.rows, tile.band_cols
        assert plan.bands[tile.band] == (xa, xb)
        qy, qx = np.divmod(plan.order[tile.start : tile.stop], w)
        # the rectangle is the union of the block's clipped windows, nothing more
        assert ya == max(qy.min() - r, 0) and yb == min(qy.max() + r + 1, h)
        assert xa == max(qx.min() - r, 0) and xb == min(qx.max() + r + 1, w)
    assert window_plan(5, 7, 0).radius == 7  # no radius: the whole grid is every window
    for grid in ((34, 59), (60, 104)):
        window_plan.cache_clear()
        start = time.process_time()  # CPU seconds: wall time on a shared machine measures load
        window_plan(*grid, 12)
        assert time.process_time() - start < 0.5


def _upsample_norm_argmax(labels: torch.Tensor) -> np.ndarray:
    """The reference's output step as PROPAGATION.md gives it (before the final resize)."""
    up = F.interpolate(
        labels[None],
        scale_factor=PATCH,
        mode="bilinear",
        align_corners=False,
        recompute_scale_factor=False,
    )
    return torch.max(_norm_mask(up[0]), dim=0).indices.numpy().astype(np.uint8)


def test_reference_argmax_equals_the_reference_output_step():
    gen = torch.Generator().manual_seed(0)
    soft = torch.softmax(4 * torch.randn(5, 9, 13, generator=gen), 0)
    soft[3] = 0.0  # an absent class: max 0, left as it is
    soft[4, :, :6] = soft[1, :, :6]  # exact ties between channels: the first one wins
    cases = {"soft": soft}
    constant = soft.clone()
    constant[2] = 0.25  # constant channel with max > 0: NaN in the reference, and NaN wins
    cases["constant"] = constant
    lost = torch.zeros(2, 9, 13)
    lost[0] = 1.0  # the object vanished: background constant
    cases["lost"] = lost
    for name, labels in cases.items():
        want = _upsample_norm_argmax(labels.clone())
        got = reference_argmax(labels, PATCH)
        assert got.shape == (9 * PATCH, 13 * PATCH) and got.dtype == np.uint8
        assert np.array_equal(got, want), name
    assert (reference_argmax(constant, PATCH) == 2).all()
    assert (reference_argmax(lost, PATCH) == 0).all()


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
    reference keeps all of) on a grid with border windows; labels equal to float rounding, and
    the same bits whatever the number of threads sharing the blocks."""
    h, w, d, radius, topk = 13, 21, 16, 4, 5
    gen = torch.Generator().manual_seed(1)
    if ties:  # four distinct vectors, repeated: every window ties massively
        palette = F.normalize(torch.randn(4, d, generator=gen), dim=1)
        feats = [palette[torch.randint(0, 4, (h * w,), generator=gen)] for _ in range(4)]
    else:
        feats = [F.normalize(torch.randn(h * w, d, generator=gen), dim=1) for _ in range(4)]
    grids = [f.t().reshape(d, h, w).contiguous() for f in feats]  # d x h x w
    query, keys = feats[0], feats[1:]
    labels = [torch.softmax(3 * torch.randn(3, h * w, generator=gen), 0) for _ in keys]
    want = _dense_step(query, keys, labels, h, w, radius, topk)
    context = [window_keys(k, radius) for k in grids[1:]]
    got, sim = propagate_labels(grids[0], context, labels, radius, topk, workers=1)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    assert torch.equal(got.argmax(0), want.argmax(0))
    assert sim.shape == (h * w,) and (sim <= 1 + 1e-6).all()
    threaded, threaded_sim = propagate_labels(grids[0], context, labels, radius, topk, workers=3)
    assert torch.equal(threaded, got) and torch.equal(threaded_sim, sim)


@pytest.mark.parametrize("name, prefix", [("dinov2_vits14", 1), ("dinov2_vits14_reg4", 5)])
def test_real_backbone_features_drop_prefix_tokens_and_match_the_protocol(blackswan, name, prefix):
    from endobench.propagation.affinity import build_affinity_propagator

    frames, first = blackswan
    prop = build_affinity_propagator(
        name,
        pretrained=False,
        model_kwargs={"depth": 1},
        mode="reference",
        n_last=2,
        short_side=SCALE,
    )
    backbone = prop.extractor.backbone
    assert backbone.prefix_tokens == prefix
    assert prop.weights.sha256 == "random-init"

    def floor_grid_features(image: torch.Tensor) -> torch.Tensor:
        # DINO's stride-p patch embedding ignores trailing pixels: same as cropping to the floor grid
        h, w = image.shape[-2:]
        return prop.extractor(image[..., : h // PATCH * PATCH, : w // PATCH * PATCH])

    expected, _ = direct_reference(frames[:4], first, floor_grid_features, n_last=2, scale=SCALE)
    got = run_propagator(prop, frames[:4], first)
    assert prop._grid == (22, 36)
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a, b)


def test_mix_block_keeps_every_tie_with_the_kth_and_all_of_a_small_window():
    """Hand-computed: a 1 x 4 grid, radius 1, two context frames, top-2. Query 1's window holds
    sources 0-2 of each frame; similarities 0.9 / 0.5 / 0.9 (frame 0) and 0.5 / 0.9 / 0.1
    (frame 1): the three 0.9s tie for the top two, so all three are kept with weight 1/3 each."""
    from endobench.propagation.affinity_select import mix_block, tie_tolerance

    sim = np.full((2, 2, 4), -1.0, np.float32)  # n_ctx x nq x (1 x 4 rectangle)
    sim[0, 0, :3] = (0.9, 0.5, 0.9)
    sim[1, 0, :3] = (0.5, 0.9, 0.1)
    sim[0, 1, :] = (0.2, 0.3, 0.1, 0.0)  # query 3: window = sources 2-3
    sim[1, 1, :] = (0.9, 0.9, 0.4, 0.3)  # outside query 3's window: ignored
    labels = np.zeros((8, 3), np.float32)  # frame-major: frame c, source s -> row 4 c + s
    labels[[0, 2, 5], 0] = 1.0  # the three tied sources carry class 0 ...
    labels[[0], 1] = 1.0  # ... one of them class 1 as well (soft labels need not be one-hot)
    labels[[2, 3, 6, 7], 2] = 1.0
    out_labels = np.full((4, 3), np.nan, np.float32)
    out_sim = np.full(4, np.nan, np.float32)
    scratch, sources = np.empty((2, 18), np.float32), np.empty(18, np.int64)
    args = (0.1, tie_tolerance(0.1), labels, 4, out_labels, out_sim, scratch, sources)
    mix_block(sim, np.array([1, 3]), 4, (0, 1, 0, 4), 1, 2, *args)
    np.testing.assert_allclose(out_labels[1], [1.0, 1 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(out_sim[1], 0.9, rtol=1e-6)
    # query 3: sources 2, 3 of both frames; top-2 = 0.4 (frame 1, s2) and 0.3 (frame 1, s3)
    a, b = np.exp(np.float32(0.4) / np.float32(0.1)), np.exp(np.float32(0.3) / np.float32(0.1))
    np.testing.assert_allclose(out_labels[3], [0.0, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(out_sim[3], (0.4 * a + 0.3 * b) / (a + b), rtol=1e-6)
    assert np.isnan(out_labels[[0, 2]]).all()  # rows of other blocks' queries untouched
    # a window with no more than k sources keeps them all (the reference's k-th is then a 0)
    mix_block(sim[:1, 1:], np.array([3]), 4, (0, 1, 0, 4), 1, 2, *args)
    w2, w3 = np.exp(np.float32(1.0)), np.exp(np.float32(0.0))
    np.testing.assert_allclose(out_labels[3, 2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(out_sim[3], (0.1 * w2 + 0.0 * w3) / (w2 + w3), rtol=1e-6)
