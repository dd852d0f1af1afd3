"""Backbone registry: shapes for any input size, prefix tokens, normalisation, freezing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from endobench.models import build_backbone
from endobench.registry import BACKBONES

TINY_VIT = {"depth": 4, "embed_dim": 64, "num_heads": 2}


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def vits14():
    """Real-size DINOv2 ViT-S/14, random init (built once: ~22M parameters)."""
    return build_backbone("dinov2_vits14", pretrained=False)


def tiny(name: str, **kw):
    return build_backbone(name, pretrained=False, img_size=56, model_kwargs=TINY_VIT, **kw)


def test_registry_maps_names_to_timm_dinov2_models():
    assert BACKBONES.get("dinov2_vits14").obj.timm_name == "vit_small_patch14_dinov2.lvd142m"
    assert (
        BACKBONES.get("dinov2_vitg14_reg4").obj.timm_name == "vit_giant_patch14_reg4_dinov2.lvd142m"
    )
    expected = {f"dinov2_vit{s}14{r}" for s in "sblg" for r in ("", "_reg4")} | {
        "vit_small_in1k",
        "resnet50",
    }
    assert expected <= set(BACKBONES.names())


def test_real_size_vits14_geometry_and_provenance(vits14):
    assert vits14.patch_size == 14
    assert vits14.out_indices == [2, 5, 8, 11]
    assert vits14.embed_dims == [384] * 4
    assert vits14.prefix_tokens == 1
    assert tuple(vits14.model.pos_embed.shape) == (1, 1 + 37 * 37, 384)  # native 518 px grid
    assert vits14.weights.to_dict() == {
        "name": "vit_small_patch14_dinov2.lvd142m",
        "source": "random-init",
        "sha256": "random-init",
        "path": None,
        "model_kwargs": {},
    }
    with torch.no_grad():
        feats = vits14.forward_features(torch.randn(1, 3, 224, 224))
    assert [tuple(f.shape) for f in feats] == [(1, 384, 16, 16)] * 4


@pytest.mark.parametrize(
    ("h", "w", "grid"), [(97, 131, (7, 10)), (14, 14, (1, 1)), (15, 29, (2, 3))]
)
def test_any_input_size_gives_ceil_grid(vits14, h, w, grid):
    with torch.no_grad():
        feats = vits14.forward_features(torch.randn(2, 3, h, w))
    assert [tuple(f.shape) for f in feats] == [(2, 384, *grid)] * 4


@pytest.mark.parametrize(("name", "prefix"), [("dinov2_vits14", 1), ("dinov2_vits14_reg4", 5)])
def test_prefix_tokens_are_dropped_exactly(name, prefix):
    """The last level with norm=True equals timm's token output minus CLS (+4 registers)."""
    torch.manual_seed(0)
    bb = tiny(name, out_indices=[3])
    assert bb.prefix_tokens == prefix
    x = torch.randn(2, 3, 42, 56)  # 3 x 4 patches
    with torch.no_grad():
        tokens = bb.model.forward_features(x)  # B x (prefix + 12) x C, final norm applied
        (feat,) = bb.forward_features(x, norm=True)
    assert tokens.shape[1] == prefix + 12
    expected = tokens[:, prefix:].reshape(2, 3, 4, 64).permute(0, 3, 1, 2)
    torch.testing.assert_close(feat, expected, rtol=0, atol=1e-6)


def test_out_indices_forms():
    assert tiny("dinov2_vits14").out_indices == [0, 1, 2, 3]
    assert tiny("dinov2_vits14", out_indices=2).out_indices == [2, 3]
    assert tiny("dinov2_vits14", out_indices=[1, -1]).out_indices == [1, 3]
    with pytest.raises(ValueError, match="out of range for 4 blocks"):
        tiny("dinov2_vits14", out_indices=[1, 4])


def test_resnet50_returns_stage_pyramid():
    bb = build_backbone("resnet50", pretrained=False)
    assert bb.patch_size == 32 and bb.prefix_tokens == 0
    assert bb.embed_dims == [256, 512, 1024, 2048]
    with torch.no_grad():
        feats = bb.forward_features(torch.randn(1, 3, 97, 131))  # padded to 128 x 160
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 40), (16, 20), (8, 10), (4, 5)]


def test_mean_std_come_from_pretrained_config():
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert (tiny("dinov2_vits14").mean, tiny("dinov2_vits14").std) == imagenet
    sup = build_backbone(
        "vit_small_in1k",
        pretrained=False,
        model_kwargs={"depth": 1, "embed_dim": 32, "num_heads": 2},
    )
    assert (sup.mean, sup.std) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # augreg: inception constants
    assert sup.patch_size == 16


def test_preprocess_normalises_uint8_frames():
    bb = tiny("dinov2_vits14")
    frames = np.zeros((2, 3, 5, 3), dtype=np.uint8)
    frames[1, 2, 4] = (255, 0, 51)
    x = bb.preprocess(frames)
    assert x.shape == (2, 3, 3, 5) and x.dtype == torch.float32
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225]
    np.testing.assert_allclose(x[1, :, 2, 4].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(
        x[0, :, 0, 0].numpy(), [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6
    )
    assert bb.preprocess(frames[0]).shape == (1, 3, 3, 5)
    with pytest.raises(ValueError, match="uint8"):
        bb.preprocess(frames.astype(np.float32))


def test_frozen_by_default_no_grads_flow_to_backbone():
    bb = tiny("dinov2_vits14")
    assert bb.frozen and not any(p.requires_grad for p in bb.parameters())
    x = torch.randn(1, 3, 28, 28, requires_grad=True)
    sum(f.sum() for f in bb.forward_features(x)).backward()
    assert all(p.grad is None for p in bb.parameters())


def test_unfreeze_last_makes_exactly_last_blocks_trainable():
    bb = tiny("dinov2_vits14", unfreeze_last=2)
    assert not bb.frozen
    trainable = {n for n, p in bb.model.named_parameters() if p.requires_grad}
    in_last_two = {
        n for n, _ in bb.model.named_parameters() if n.startswith(("blocks.2.", "blocks.3."))
    }
    assert trainable == in_last_two and len(in_last_two) > 0
    sum(f.sum() for f in bb.forward_features(torch.randn(1, 3, 28, 28))).backward()
    assert {n for n, p in bb.model.named_parameters() if p.grad is not None} == in_last_two
    with pytest.raises(ValueError, match="unfreeze_last=5"):
        tiny("dinov2_vits14", unfreeze_last=5)


def test_frozen_batchnorm_stays_in_eval_mode():
    bb = build_backbone("resnet50", pretrained=False, unfreeze_last=1)
    bb.train()
    assert bb.training
    assert not bb.model.bn1.training and not bb.model.layer3[0].bn1.training
    assert bb.model.layer4[0].bn1.training
    before = bb.model.layer1[0].bn1.running_mean.clone()
    bb.forward_features(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(bb.model.layer1[0].bn1.running_mean, before, rtol=0, atol=0)


def test_weights_choice_must_be_explicit():
    with pytest.raises(ValueError, match="choose its weights explicitly"):
        build_backbone("dinov2_vits14")
    with pytest.raises(ValueError, match="either weights=PATH or pretrained"):
        build_backbone("dinov2_vits14", pretrained=False, weights="x.pth")
    with pytest.raises(ValueError, match="not registered"):
        build_backbone("dinov3_vits16", pretrained=False)
