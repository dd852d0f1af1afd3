"""Weights: timm and Meta-DINOv2 files load bit-exactly, the HF cache path, the offline error."""

from __future__ import annotations

import socket

import pytest
import torch
from safetensors.torch import save_file

from endobench.io_utils import sha256_file
from endobench.models import WeightsUnavailableError, build_backbone

TINY = {"depth": 2, "embed_dim": 64, "num_heads": 2}
IMG = 56  # 4 x 4 patch grid for the stored pos_embed


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


def source(name: str, seed: int = 0, **model_kwargs):
    """A tiny random-init backbone with non-trivial weights everywhere (LayerScale included)."""
    torch.manual_seed(seed)
    bb = build_backbone(name, pretrained=False, img_size=IMG, model_kwargs=model_kwargs or TINY)
    with torch.no_grad():
        for p in bb.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return bb


def features(bb, seed: int = 1):
    torch.manual_seed(seed)
    x = torch.randn(2, 3, 45, 71)  # odd size: position embeddings interpolated to 4 x 6
    with torch.no_grad():
        return bb.forward_features(x, norm=True)


def assert_same_outputs(a, b):
    fa, fb = features(a), features(b)
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb, strict=True):
        assert torch.equal(x, y)


def to_meta_dinov2(bb) -> dict[str, torch.Tensor]:
    """Rewrite a timm DINOv2 backbone's state dict in Meta's ``dinov2_vits14_pretrain.pth`` layout.

    Meta stores ``mask_token`` (1 x C), ``pos_embed`` with a CLS slot for every model, registers as
    ``register_tokens``, and the SwiGLU MLP of ViT-g as ``mlp.w12``/``mlp.w3``. For register models
    timm folds the CLS position into ``cls_token``; so that the round trip is exact, the source
    model's ``cls_token`` is set to ``meta_cls + meta_cls_pos`` computed once, here.
    """
    sd = {k: v.clone() for k, v in bb.model.state_dict().items()}
    dim = sd["cls_token"].shape[-1]
    meta = {"mask_token": torch.randn(1, dim)}
    if "reg_token" in sd:
        cls_pos, meta_cls = torch.randn(1, 1, dim), torch.randn(1, 1, dim)
        with torch.no_grad():
            bb.model.cls_token.copy_(meta_cls + cls_pos)
        meta["register_tokens"] = sd.pop("reg_token")
        meta["cls_token"] = meta_cls
        meta["pos_embed"] = torch.cat([cls_pos, sd.pop("pos_embed")], dim=1)
        sd.pop("cls_token")
    for k, v in sd.items():
        meta[
            k.replace("mlp.fc1", "mlp.w12").replace("mlp.fc2", "mlp.w3")
            if "giant" in bb.weights.name
            else k
        ] = v
    return meta


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_state_dict_round_trip_is_exact(tmp_path, suffix):
    src = source("dinov2_vits14_reg4")
    path = tmp_path / f"tiny{suffix}"
    state = {k: v.contiguous() for k, v in src.model.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = build_backbone(
        "dinov2_vits14_reg4", weights=str(path), img_size=IMG, model_kwargs=TINY
    )
    assert_same_outputs(src, loaded)
    assert loaded.weights.to_dict() == {
        "name": "vit_small_patch14_reg4_dinov2.lvd142m",
        "source": "local-file",
        "sha256": sha256_file(path),
        "path": str(path),
        "model_kwargs": TINY,
    }
    assert len(loaded.weights.sha256) == 64


def test_fingerprint_follows_weight_values(tmp_path):
    a, b = source("dinov2_vits14", seed=0), source("dinov2_vits14", seed=1)
    assert a.weights.sha256 == b.weights.sha256 == "random-init"
    assert a.fingerprint() != b.fingerprint()
    path = tmp_path / "a.pth"
    torch.save(a.model.state_dict(), path)
    loaded = build_backbone("dinov2_vits14", weights=str(path), img_size=IMG, model_kwargs=TINY)
    assert loaded.fingerprint() == a.fingerprint()
    with torch.no_grad():
        loaded.model.blocks[1].ls2.gamma[0] += 1e-3
    assert loaded.fingerprint() != a.fingerprint()


def test_wrapped_training_checkpoint_loads(tmp_path):
    src = source("dinov2_vits14")
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.model.state_dict().items()}}, path)
    assert_same_outputs(
        src, build_backbone("dinov2_vits14", weights=str(path), img_size=IMG, model_kwargs=TINY)
    )


@pytest.mark.parametrize(
    ("name", "model_kwargs"),
    [
        ("dinov2_vits14", TINY),
        ("dinov2_vits14_reg4", TINY),
        # ViT-g's SwiGLU MLP is stored as w12/w3 by Meta; tiny width, same MLP layout.
        ("dinov2_vitg14_reg4", {"depth": 2, "embed_dim": 48, "num_heads": 2}),
    ],
)
def test_meta_dinov2_checkpoint_loads_exactly(tmp_path, name, model_kwargs):
    src = source(name, **model_kwargs)
    meta = to_meta_dinov2(src)
    assert "mask_token" in meta and "blocks.0.ls1.gamma" in meta
    assert ("register_tokens" in meta) == name.endswith("_reg4")
    assert meta["pos_embed"].shape[1] == 1 + 16  # Meta keeps a CLS slot in pos_embed
    path = tmp_path / "dinov2_tiny_pretrain.pth"
    torch.save(meta, path)
    loaded = build_backbone(name, weights=str(path), img_size=IMG, model_kwargs=model_kwargs)
    assert_same_outputs(src, loaded)
    assert loaded.weights.source == "local-file" and loaded.weights.sha256 == sha256_file(path)


def test_mismatched_file_names_file_and_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(source("dinov2_vits14").model.state_dict(), path)
    with pytest.raises(ValueError, match=r"other\.pth.*(missing|shape mismatch)"):
        build_backbone(
            "dinov2_vits14", weights=str(path), img_size=IMG, model_kwargs={**TINY, "depth": 3}
        )


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": object()}, path)
    with pytest.raises(ValueError, match=r"evil\.pth.*weights_only=True"):
        build_backbone("dinov2_vits14", weights=str(path), img_size=IMG, model_kwargs=TINY)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Offline mode, an empty HF cache, and any socket connection attempt fails the test."""
    import huggingface_hub.constants

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return tmp_path / "hub"


def test_offline_pretrained_error_says_how_to_provide_weights(no_network):
    with pytest.raises(WeightsUnavailableError) as info:
        build_backbone("dinov2_vits14", pretrained=True)
    msg = str(info.value)
    assert "huggingface-cli download timm/vit_small_patch14_dinov2.lvd142m" in msg
    assert "HF_HUB_OFFLINE=1" in msg and "weights: PATH" in msg and "pretrained: false" in msg


def test_pretrained_reads_prepopulated_hf_cache_offline(no_network):
    """The documented remedy works: a cache laid out like `huggingface-cli download` leaves it."""
    src = source("dinov2_vits14")
    snapshot = (
        no_network / "models--timm--vit_small_patch14_dinov2.lvd142m" / "snapshots" / ("0" * 40)
    )
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    save_file(
        {k: v.contiguous() for k, v in src.model.state_dict().items()},
        str(snapshot / "model.safetensors"),
    )
    loaded = build_backbone("dinov2_vits14", pretrained=True, img_size=IMG, model_kwargs=TINY)
    assert_same_outputs(src, loaded)
    assert loaded.weights.source == "timm-hub"
    assert loaded.weights.sha256 == sha256_file(snapshot / "model.safetensors")
