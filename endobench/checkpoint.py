"""Training checkpoints: what a SegNet's weights file holds, written atomically, read safely.

A checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` accepts (tensors, str,
int, float, bool, None, lists, dicts):

- ``format``: :data:`FORMAT`; ``config``: the training configuration as a plain dict;
- ``epoch``: completed epochs; ``history``: one metrics dict per epoch; ``best``: best epoch so far;
- ``weights``: the backbone's weights provenance (name, source, sha256, path, model_kwargs);
- ``model``: ``SegNet.describe()``; ``state``: model tensors (below); ``optimizer``: AdamW state.

Which model tensors are stored: the whole head and the backbone's trainable (unfrozen)
parameters. The frozen backbone is rebuilt on load from its provenance and verified: a pretrained
or file-loaded backbone by its weights file's SHA-256, a random-init backbone (re-initialised from
the run's seed) by ``backbone_sha256``, the SHA-256 of its initial tensors, stored in the
checkpoint. This keeps a ViT-g probe's checkpoint at the head's size instead of gigabytes; a
random initialisation that a different torch / timm version would draw differently is refused on
load rather than silently replaced.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from endobench.errors import UserError
from endobench.io_utils import atomic_write_bytes, unreadable_cause
from endobench.models import SegNet
from endobench.models.weights import state_sha256

FORMAT = "endobench.train.checkpoint/1"


class CheckpointError(UserError, ValueError):
    """A checkpoint file is unreadable or does not fit the model; names the file and why."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist."""


def model_state(model: SegNet) -> dict[str, torch.Tensor]:
    """Tensors to store for ``model`` (see module docstring), keyed as in ``model.state_dict()``.

    The tensors are not copied: save them before training continues.
    """
    full = model.state_dict()
    trainable = {f"backbone.{n}" for n, p in model.backbone.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu() for k, v in full.items() if k.startswith("head.") or k in trainable}


def restore_model_state(model: SegNet, state: dict[str, torch.Tensor], source: str) -> None:
    """Load stored tensors into a freshly built ``model``; every stored key must exist in it."""
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise CheckpointError(
            f"{source}: stored tensors {unknown[:5]} do not exist in the rebuilt model "
            f"({model.backbone.name} + {type(model.head).__name__}); was it saved by another version?"
        )
    missing_head = sorted(k for k in own if k.startswith("head.") and k not in state)
    if missing_head:
        raise CheckpointError(
            f"{source}: head tensors {missing_head[:5]} missing from the checkpoint"
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(value.shape)}, the rebuilt model expects "
                f"{tuple(own[key].shape)}"
            )
    model.load_state_dict(state, strict=False)


def check_weights_provenance(
    model: SegNet, stored: dict[str, Any], source: str, backbone_sha256: str | None = None
) -> None:
    """Raise if the rebuilt backbone's weights are not the ones the checkpoint was trained with.

    Call on the freshly built model, before restoring trained tensors. ``backbone_sha256``: the
    stored :func:`state_sha256` of the initial backbone (checked for random-init backbones).
    """
    current = model.backbone.weights.to_dict()
    for key in ("name", "model_kwargs"):
        if stored.get(key) != current.get(key):
            raise CheckpointError(
                f"{source}: trained with backbone {stored.get('name')} "
                f"(model_kwargs {stored.get('model_kwargs')}), but the model rebuilt now is "
                f"{current.get('name')} (model_kwargs {current.get('model_kwargs')}); use the "
                "backbone the checkpoint was trained with"
            )
    if stored.get("source") == "random-init":
        rebuilt = state_sha256(model.backbone)
        if backbone_sha256 != rebuilt:
            raise CheckpointError(
                f"{source}: the random-init backbone rebuilt from the run's seed has tensors "
                f"sha256={rebuilt}, the checkpoint recorded {backbone_sha256}; a different "
                "torch / timm version initialises differently, so use the versions it was "
                "trained with"
            )
        return
    if stored.get("sha256") != current.get("sha256"):
        raise CheckpointError(
            f"{source}: trained with backbone weights sha256={stored.get('sha256')} "
            f"({stored.get('path')}), but the weights found now have sha256={current.get('sha256')} "
            f"({current.get('path')}); provide the original weights file"
        )


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at ``path``, loaded with ``weights_only=True`` and its format checked."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, expected a .pt file")
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's message names no file and rarely the cause
        raise CheckpointError(
            f"checkpoint {path}: {unreadable_cause(path, err)}; delete it and train again"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path}: not an endobench training checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    return payload
