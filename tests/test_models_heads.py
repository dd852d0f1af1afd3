"""Heads and SegNet: output shapes, pyramid geometry, any-size logits, predict_proba contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from endobench.models import FusionHead, LinearHead, SegNet, build_backbone, build_head
from endobench.models.heads import pyramid_sizes
from endobench.propagation.base import Segmenter

TINY = {"depth": 4, "embed_dim": 64, "num_heads": 2}


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_backbone("dinov2_vits14_reg4", pretrained=False, img_size=56, model_kwargs=TINY)


def test_pyramid_sizes_follow_dpt_strides():
    assert pyramid_sizes((7, 10), 4) == [(28, 40), (14, 20), (7, 10), (4, 5)]
    assert pyramid_sizes((16, 16), 2) == [(64, 64), (32, 32)]


@pytest.mark.parametrize("num_classes", [2, 13])
@pytest.mark.parametrize("name", ["linear", "fusion"])
def test_heads_on_vit_levels(name, num_classes):
    head = build_head(name, [64] * 4, num_classes)
    assert head.num_classes == num_classes
    feats = [torch.randn(2, 64, 7, 10) for _ in range(4)]
    assert head(feats, (98, 140)).shape == (2, num_classes, 98, 140)


@pytest.mark.parametrize("name", ["linear", "fusion"])
def test_heads_on_cnn_pyramid(name):
    dims = [256, 512, 1024, 2048]
    head = build_head(name, dims, 13, **({"width": 32} if name == "fusion" else {}))
    feats = [torch.randn(1, c, 32 // 2**i, 40 // 2**i) for i, c in enumerate(dims)]
    assert head(feats, (128, 160)).shape == (1, 13, 128, 160)


def test_fusion_uses_every_level_and_linear_only_the_last():
    torch.manual_seed(0)
    feats = [torch.randn(2, 16, 5, 6, requires_grad=True) for _ in range(3)]
    fusion, linear = FusionHead([16] * 3, 2, width=16), LinearHead([16] * 3, 2)
    fusion(feats, (70, 84)).sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    feats = [f.detach().requires_grad_() for f in feats]
    linear(feats, (70, 84)).sum().backward()
    assert [f.grad is not None for f in feats] == [False, False, True]


def test_head_argument_errors():
    with pytest.raises(ValueError, match="num_classes=1"):
        build_head("linear", [64], 1)
    with pytest.raises(ValueError, match="not registered"):
        build_head("unet", [64], 2)
    with pytest.raises(ValueError, match="got 2 feature levels"):
        build_head("fusion", [8] * 3, 2)([torch.randn(1, 8, 2, 2)] * 2, (4, 4))


@pytest.mark.parametrize("head", ["linear", "fusion"])
def test_segnet_logits_at_any_input_size(vit, head):
    net = SegNet(vit, build_head(head, vit.embed_dims, 13))
    with torch.no_grad():
        assert net(torch.randn(1, 3, 97, 131)).shape == (1, 13, 97, 131)
        assert net(torch.randn(2, 3, 14, 15)).shape == (2, 13, 14, 15)


def test_segnet_crops_the_padded_canvas(vit):
    """Logits for a crop-aligned input equal the top-left part of those for the padded image."""
    net = SegNet(vit, build_head("linear", vit.embed_dims, 2)).eval()
    x = torch.randn(1, 3, 97, 131)
    padded = torch.nn.functional.pad(x, (0, 140 - 131, 0, 98 - 97))
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(padded)[..., :97, :131], rtol=0, atol=1e-6)


def test_predict_proba_on_real_kvasir_frame(vit, samples):
    image = sorted((samples / "Kvasir-SEG" / "images").glob("*.jpg"))[0]
    frame = np.asarray(Image.open(image).convert("RGB"))[::2, ::2]  # 265 x 311: odd sizes
    frames = np.stack([frame, frame[::-1], frame[:, ::-1]])
    torch.manual_seed(0)
    net = SegNet(vit, build_head("fusion", vit.embed_dims, 2, width=32))
    assert isinstance(net, Segmenter) and net.num_classes == 2
    net.train()
    probs = net.predict_proba(frames, batch_size=2)
    assert net.training  # mode restored
    assert probs.shape == (3, 2, *frame.shape[:2]) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    one_by_one = np.concatenate([net.predict_proba(f) for f in (frame, frame[::-1])])
    np.testing.assert_allclose(
        probs[:2], one_by_one, atol=1e-5
    )  # eval mode: batching changes nothing


def test_segnet_checks_channels_and_describes_provenance(vit):
    with pytest.raises(ValueError, match="in_channels=backbone.embed_dims"):
        SegNet(vit, build_head("linear", [32] * 4, 2))
    info = SegNet(vit, build_head("fusion", vit.embed_dims, 13)).describe()
    assert info["head"] == "FusionHead" and info["num_classes"] == 13
    assert info["weights"]["source"] == "random-init"
    assert info["backbone"]["prefix_tokens"] == 5
    assert info["backbone"]["weights"]["model_kwargs"] == TINY
