"""Checkpoints: head-only for frozen backbones, provenance verified on load, weights_only safe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from endobench.io_utils import current_umask
from endobench.models import SegNetSpec, build_backbone, load_segnet
from endobench.models.load import FORMAT, CheckpointError, read_checkpoint
from endobench.training.config import TrainConfig
from endobench.training.loop import fit

TINY = {"depth": 2, "embed_dim": 48, "num_heads": 2}
DATA = {"num_clips": 2, "num_frames": 2, "seed": 5, "height": 48, "width": 64}


def tiny_config(tmp: Path, **changes) -> TrainConfig:
    fields = dict(
        dataset_overrides=DATA,
        backbone_kwargs=TINY,
        head="linear",
        size=28,
        epochs=2,
        batch_size=2,
        cache_dir=str(tmp / "cache"),
        out_dir=str(tmp / "run"),
    )
    fields.update(changes)
    return TrainConfig(**fields)


@pytest.fixture()
def weights_file(tmp_path: Path) -> Path:
    torch.manual_seed(3)
    backbone = build_backbone("dinov2_vits14", pretrained=False, model_kwargs=TINY)
    path = tmp_path / "tiny_vits14.pth"
    torch.save(backbone.model.state_dict(), path)
    return path


def test_weights_file_run_round_trip_and_changed_file(tmp_path: Path, weights_file: Path) -> None:
    result = fit(tiny_config(tmp_path, weights=str(weights_file), unfreeze_last=1), progress=False)
    ckpt = read_checkpoint(result.last_checkpoint)
    weights = SegNetSpec.model_validate(ckpt["spec"]).weights
    assert weights.source == "local-file" and weights.path == str(weights_file)
    # Head plus the unfrozen last block, nothing of the frozen rest.
    assert any(k.startswith("backbone.model.blocks.1.") for k in ckpt["state"])
    assert not any(k.startswith("backbone.model.blocks.0.") for k in ckpt["state"])
    assert not any(k.startswith("backbone.model.patch_embed") for k in ckpt["state"])
    model, spec = load_segnet(result.last_checkpoint)
    meta = read_checkpoint(result.last_checkpoint)
    for (name, a), b in zip(
        result.model.state_dict().items(), model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert meta["config"]["unfreeze_last"] == 1 and meta["epoch"] == 2
    assert spec.unfreeze_last == 1 and spec.weights_file == str(weights_file)
    # Replace the weights file: the checkpoint no longer matches and says so.
    state = torch.load(weights_file, weights_only=True)
    state["cls_token"] = state["cls_token"] + 1
    torch.save(state, weights_file)
    with pytest.raises(
        ValueError, match="trained with backbone weights sha256=.*provide the original"
    ):
        load_segnet(result.last_checkpoint)


def test_random_init_is_verified_on_load(tmp_path: Path) -> None:
    result = fit(tiny_config(tmp_path, pretrained=False, epochs=1), progress=False)
    ckpt = torch.load(result.best_checkpoint, weights_only=True)
    assert ckpt["format"] == FORMAT
    # Loading reads the model spec only: training options added or renamed later do not matter.
    changed = tmp_path / "changed.pt"
    torch.save(
        {**ckpt, "config": {**ckpt["config"], "an_option_added_later": 1, "lr": None}}, changed
    )
    model, _ = load_segnet(changed)
    for (name, a), b in zip(
        result.model.state_dict().items(), model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    ckpt["spec"]["backbone_sha256"] = "0" * 64
    tampered = tmp_path / "tampered.pt"
    torch.save(ckpt, tampered)
    with pytest.raises(ValueError, match="random-init backbone rebuilt from the run's seed"):
        load_segnet(tampered)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not an endobench training checkpoint"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_errors_name_the_file_and_the_real_cause(tmp_path: Path) -> None:
    result = fit(tiny_config(tmp_path, pretrained=False, epochs=1), progress=False)
    good = result.best_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {truncated}: the file is truncated"):
        load_segnet(truncated)
    text = tmp_path / "notes.pt"
    text.write_text("best epoch: 3\n")
    with pytest.raises(CheckpointError, match=r"notes.pt: a text file \(14 bytes\), not a torch"):
        load_segnet(text)
    # A checkpoint of another backbone than the one rebuilt: named as such, not blamed on
    # torch / timm versions.
    ckpt = torch.load(result.best_checkpoint, weights_only=True)
    ckpt["spec"]["weights"]["name"] = "vit_base_patch14_dinov2.lvd142m"
    other = tmp_path / "other_backbone.pt"
    torch.save(ckpt, other)
    with pytest.raises(
        CheckpointError,
        match=r"other_backbone.pt: trained with backbone vit_base_patch14_dinov2.lvd142m .*"
        r"rebuilt now is vit_small_patch14_dinov2.lvd142m",
    ):
        load_segnet(other)
    # Checkpoints honour the umask like every other file.
    assert result.best_checkpoint.stat().st_mode & 0o777 == 0o666 & ~current_umask()
