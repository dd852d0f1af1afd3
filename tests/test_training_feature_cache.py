"""Feature cache: hits, misses, invalidation by content / resolution / weights, damaged entries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from endobench.models import build_backbone
from endobench.training.feature_cache import FeatureCache, image_sha256

TINY = {"depth": 2, "embed_dim": 48, "num_heads": 2}  # a 2-block ViT-S/14 stand-in


def tiny_backbone(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_backbone("dinov2_vits14", pretrained=False, model_kwargs=TINY, **kwargs)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(42, 56, 3), dtype=np.uint8) for _ in range(5)]


def test_miss_then_hit_across_instances(tmp_path: Path, images: list[np.ndarray]) -> None:
    backbone = tiny_backbone()
    cache = FeatureCache(tmp_path, backbone)
    keys = cache.ensure(images, batch_size=2, progress=False)
    assert (cache.misses, cache.hits) == (5, 0)
    assert all(cache.path(k).is_file() for k in keys) and len(set(keys)) == 5
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files
    # A new run (new cache object, same backbone) finds everything.
    again = FeatureCache(tmp_path, backbone)
    assert again.ensure(images, progress=False) == keys
    assert (again.misses, again.hits) == (0, 5)
    # Stored features are the live float16 features.
    with torch.no_grad():
        live = backbone.forward_features(backbone.preprocess(np.stack(images[:2])))
    batch = again.load_batch(keys[:2])
    assert [tuple(f.shape) for f in batch] == [(2, 48, 3, 4)] * 2
    for cached, fresh in zip(batch, live, strict=True):
        assert cached.dtype == torch.float16
        assert torch.equal(cached, fresh.half())


def test_changed_content_or_resolution_misses(tmp_path: Path, images: list[np.ndarray]) -> None:
    cache = FeatureCache(tmp_path, tiny_backbone())
    keys = cache.ensure(images, progress=False)
    edited = [im.copy() for im in images]
    edited[3][10, 10, 0] ^= 1  # one bit of one pixel
    smaller = images[0][:28, :28].copy()
    cache.hits = cache.misses = 0
    new_keys = cache.ensure([*edited, smaller], progress=False)
    assert (cache.misses, cache.hits) == (2, 4)
    assert new_keys[:3] == keys[:3] and new_keys[3] != keys[3]
    assert cache.load_batch([new_keys[5]])[0].shape == (1, 48, 2, 2)
    assert image_sha256(images[0]) != image_sha256(images[0].astype(np.float32))


def test_other_weights_never_share_entries(tmp_path: Path, images: list[np.ndarray]) -> None:
    first = FeatureCache(tmp_path, tiny_backbone(seed=0))
    second = FeatureCache(tmp_path, tiny_backbone(seed=1))  # another random init
    same = FeatureCache(tmp_path, tiny_backbone(seed=0))
    assert first.fingerprint != second.fingerprint and first.fingerprint == same.fingerprint
    other_levels = FeatureCache(tmp_path, tiny_backbone(seed=0, out_indices=[1]))
    assert other_levels.fingerprint != first.fingerprint
    first.ensure(images[:2], progress=False)
    second.ensure(images[:2], progress=False)
    assert second.misses == 2 and second.hits == 0
    description = json.loads((first.root / "backbone.json").read_text())
    assert description["weights_sha256"].startswith("state:")
    assert description["out_indices"] == [0, 1] and description["precision"] == "fp32"


def test_weights_file_fingerprint_uses_its_sha256(tmp_path: Path) -> None:
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"w{seed}.pth"
        torch.save(tiny_backbone(seed).model.state_dict(), path)
        paths.append(path)
    caches = [
        FeatureCache(
            tmp_path / "cache", build_backbone("dinov2_vits14", weights=str(p), model_kwargs=TINY)
        )
        for p in paths
    ]
    assert caches[0].description["weights_sha256"] == caches[0].backbone.weights.sha256
    assert caches[0].fingerprint != caches[1].fingerprint


def test_damaged_entry_is_recomputed(tmp_path: Path, images: list[np.ndarray]) -> None:
    cache = FeatureCache(tmp_path, tiny_backbone())
    keys = cache.ensure(images[:2], progress=False)
    cache.path(keys[0]).write_bytes(b"truncated")
    torch.save([torch.zeros(3, 3, 4, dtype=torch.float16)], cache.path(keys[1]))  # wrong shape
    assert cache.load(keys[0]) is None and cache.load(keys[1]) is None
    cache.ensure(images[:2], progress=False)
    assert cache.misses == 4 and all(cache.load(k) is not None for k in keys)
    with pytest.raises(KeyError, match="call ensure"):
        cache.load_batch(["0" * 64])


def test_bit_flip_that_keeps_the_shape_is_detected(
    tmp_path: Path, images: list[np.ndarray]
) -> None:
    cache = FeatureCache(tmp_path, tiny_backbone())
    (key,) = cache.ensure(images[:1], progress=False)
    good = cache.load(key)
    entry = bytearray(cache.path(key).read_bytes())
    entry[-7] ^= 0x10  # inside the last tensor's storage: torch would still load it, wrong
    cache.path(key).write_bytes(bytes(entry))
    assert cache.load(key) is None
    cache.ensure(images[:1], progress=False)
    assert cache.misses == 2
    reloaded = cache.load(key)
    assert reloaded is not None and all(
        torch.equal(a, b) for a, b in zip(good, reloaded, strict=True)
    )


def test_refuses_a_trainable_backbone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1 trainable blocks.*fully frozen"):
        FeatureCache(tmp_path, tiny_backbone(unfreeze_last=1))
    with pytest.raises(ValueError, match="precision 'fp16'"):
        FeatureCache(tmp_path, tiny_backbone(), precision="fp16")


def test_cached_dataset_reads_and_verifies_each_entry_once(
    tmp_path: Path, images: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    from endobench.training import data

    cache = FeatureCache(tmp_path, tiny_backbone())
    keys = cache.ensure(images, batch_size=2, progress=False)
    masks = np.zeros((len(images), *images[0].shape[:2]), np.uint8)
    dataset = data.CachedFeatureDataset(cache, keys, masks)
    first = [dataset[i][0] for i in range(len(dataset))]
    for key in keys:  # later epochs are served from memory: the files are not read again
        cache.path(key).unlink()
    for i, feats in enumerate(first):
        assert all(torch.equal(a, b) for a, b in zip(dataset[i][0], feats, strict=True))
    monkeypatch.setattr(data, "IN_MEMORY_FEATURE_BYTES", 0)  # no memory budget: read every time
    with pytest.raises(KeyError, match="disappeared"):
        data.CachedFeatureDataset(cache, keys, masks)[0]
