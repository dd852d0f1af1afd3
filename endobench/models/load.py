"""Loading a trained segmenter: ``load_segnet(path) -> (model, spec)``, checkpoints read safely.

A checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` accepts. Format
:data:`FORMAT` (written by ``endobench.training.checkpoint``):

- ``spec``: the :class:`~endobench.models.spec.SegNetSpec` as a plain dict: what inference reads;
- ``state``: model tensors: the whole head and the backbone's trainable (unfrozen) parameters;
- the training record, never read here: ``config`` (training options), ``epoch``, ``history``,
  ``best``, ``model`` (``SegNet.describe()``), ``optimizer`` (AdamW state).

The frozen backbone is not stored: it is rebuilt from the spec and verified, a pretrained or
file-loaded backbone by its weights file's SHA-256, a random-init backbone (re-drawn from the
spec's ``init_seed``) by ``backbone_sha256``, the SHA-256 of its initial tensors. This keeps a
ViT-g probe's checkpoint at the head's size instead of gigabytes; a random initialisation that a
different torch / timm version would draw differently is refused rather than silently replaced.

Old checkpoints (:data:`LEGACY_FORMAT`, before the spec existed) hold ``config`` (every training
option), ``classes``, ``num_classes``, ``weights`` (provenance) and ``backbone_sha256`` at the top
level; their spec is read from the few config fields that define the model, so training options
added or renamed since do not matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from endobench.errors import UserError, validation_message
from endobench.io_utils import unreadable_cause
from endobench.models.segnet import SegNet, resolve_device
from endobench.models.spec import SegNetSpec, build_segnet
from endobench.models.weights import state_sha256
from endobench.seeding import derive_seed

FORMAT = "endobench.train.checkpoint/2"
LEGACY_FORMAT = "endobench.train.checkpoint/1"
# The training options of a LEGACY_FORMAT config that define the model (and only those).
LEGACY_MODEL_FIELDS = (
    "backbone", "pretrained", "weights", "backbone_kwargs", "out_indices", "unfreeze_last",
    "head", "head_kwargs", "size", "seed",
)  # fmt: skip


class CheckpointError(UserError, ValueError):
    """A checkpoint file is unreadable or does not fit the model; names the file and why."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist."""


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
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, LEGACY_FORMAT):
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path}: not an endobench training checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    return payload


def checkpoint_spec(checkpoint: dict[str, Any], source: str) -> SegNetSpec:
    """The model spec of a checkpoint dict of either format; ``source`` names it in errors."""
    if checkpoint.get("format") == LEGACY_FORMAT:
        config = checkpoint.get("config") or {}
        missing = [k for k in LEGACY_MODEL_FIELDS if k not in config]
        if missing:
            raise CheckpointError(f"{source}: stored training config lacks fields {missing}")
        fields: Any = {
            "backbone": config["backbone"],
            "pretrained": config["pretrained"],
            "weights_file": config["weights"],
            "backbone_kwargs": config["backbone_kwargs"],
            "out_indices": config["out_indices"],
            "unfreeze_last": config["unfreeze_last"],
            "head": config["head"],
            "head_kwargs": config["head_kwargs"],
            "num_classes": checkpoint.get("num_classes"),
            "classes": checkpoint.get("classes", {}),
            "input_size": config["size"],
            "init_seed": derive_seed(config["seed"], "init"),
            "weights": checkpoint.get("weights"),
            "backbone_sha256": checkpoint.get("backbone_sha256"),
        }
    else:
        fields = checkpoint.get("spec")
    try:
        return SegNetSpec.model_validate(fields)
    except ValidationError as exc:
        raise CheckpointError(f"{source}: model spec: {validation_message(exc)}") from None


def check_weights_provenance(model: SegNet, spec: SegNetSpec, source: str) -> None:
    """Raise if the rebuilt backbone's weights are not the ones ``spec`` records.

    Call on the freshly built model, before restoring trained tensors: for a random-init backbone
    it compares :func:`state_sha256` with ``spec.backbone_sha256``.
    """
    stored = spec.weights.to_dict() if spec.weights is not None else {}
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
        if spec.backbone_sha256 != rebuilt:
            raise CheckpointError(
                f"{source}: the random-init backbone rebuilt from the run's seed has tensors "
                f"sha256={rebuilt}, the checkpoint recorded {spec.backbone_sha256}; a different "
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


def load_segnet(path: str | Path, device: str = "cpu") -> tuple[SegNet, SegNetSpec]:
    """Rebuild the trained ``SegNet`` of a checkpoint (``weights_only=True`` safe).

    The backbone is rebuilt from the spec and its weights verified (see the module docstring),
    then the stored tensors are loaded. Returns ``(model in eval mode on device, spec)``;
    ``device``: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"`` ...
    """
    ckpt = read_checkpoint(path)
    spec = checkpoint_spec(ckpt, str(path))
    model = build_segnet(spec)
    check_weights_provenance(model, spec, str(path))
    restore_model_state(model, ckpt["state"], str(path))
    model.to(resolve_device(device)).eval()
    return model, spec
