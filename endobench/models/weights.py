"""Backbone weights: where they come from (provenance) and how a file becomes a timm state dict.

Three sources, chosen explicitly by the caller:

- ``timm-hub``: the timm checkpoint on the Hugging Face Hub (``timm/<model>``), read from the local HF
  cache; downloaded only when the machine is online and ``HF_HUB_OFFLINE`` is not set.
- ``local-file``: a file on disk, either a timm state dict (``.pth``/``.pt``/``.bin``/``.safetensors``) or
  Meta's original DINOv2 checkpoint (``dinov2_vits14_pretrain.pth``: ``cls_token``, ``pos_embed`` with a
  CLS slot, ``mask_token``, ``register_tokens``, ``blocks.N.ls1.gamma``, ``mlp.w12``/``w3`` for ViT-g).
- ``random-init``: no weights at all, only when asked for with ``pretrained=False``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import torch
from torch import nn

from endobench.errors import UserError
from endobench.io_utils import unreadable_cause

WeightsSource = Literal["timm-hub", "local-file", "random-init"]
RANDOM_INIT: Final = "random-init"
# Checkpoint files a timm repo on the Hub may hold, in the order timm itself prefers them.
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
# Containers that training scripts wrap a state dict in.
_WRAPPER_KEYS = ("state_dict", "model", "module")


class WeightsUnavailableError(UserError, RuntimeError):
    """The requested pretrained weights cannot be found locally and cannot be downloaded."""


class WeightsFileError(UserError, ValueError):
    """A local weights file is unreadable or does not fit the backbone; names the file and why."""


class WeightsFileNotFoundError(WeightsFileError, FileNotFoundError):
    """A local weights file does not exist."""


@dataclass(frozen=True)
class WeightsInfo:
    """Provenance of a backbone's weights; every result should carry ``to_dict()``.

    name: the timm model name the weights belong to (``vit_small_patch14_dinov2.lvd142m``).
    source: ``"timm-hub"``, ``"local-file"`` or ``"random-init"``.
    sha256: hex digest of the weights file, or ``"random-init"``.
    path: the file the weights were read from (``None`` for random init).
    model_kwargs: architecture overrides passed to timm (empty for the registered architecture).
    """

    name: str
    source: WeightsSource
    sha256: str
    path: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


def random_init_info(name: str, model_kwargs: dict[str, Any] | None = None) -> WeightsInfo:
    """Provenance for a randomly initialised model."""
    return WeightsInfo(name, RANDOM_INIT, RANDOM_INIT, None, dict(model_kwargs or {}))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict on CPU.

    ``.safetensors`` through safetensors, everything else through ``torch.load(weights_only=True)``
    (no pickled code runs). Common wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and a
    DataParallel ``module.`` prefix are removed.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileNotFoundError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # loader errors carry no file name; add it and the cause
        loader = "safetensors" if path.suffix == ".safetensors" else "torch.load(weights_only=True)"
        raise WeightsFileError(
            f"weights file {path}: cannot be read with {loader}: {unreadable_cause(path, err)}; "
            "expected a state dict of tensors (.pth/.pt/.bin) or a .safetensors file"
        ) from None
    while isinstance(state, dict):
        wrapper = next((k for k in _WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if wrapper is None:
            break
        state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(
            f"weights file {path}: expected a dict of tensors (a state dict), got {type(state).__name__}"
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def to_timm_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Convert ``state`` to ``model``'s timm layout with timm's own filter for that model family.

    For ViTs this is ``timm.models.vision_transformer.checkpoint_filter_fn``: Meta DINOv2 keys are
    renamed (registers -> ``reg_token``, the CLS position folded into ``cls_token``, ``w12``/``w3`` ->
    ``fc1``/``fc2``, ``mask_token`` dropped) and ``pos_embed`` is resampled when the checkpoint's grid
    differs from the model's. Other families (ResNet) have no filter and pass through unchanged.
    """
    import importlib

    module = importlib.import_module(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is None:
        return dict(state)
    return filter_fn(dict(state), model)


def load_weights_file(model: nn.Module, path: str | Path) -> None:
    """Load a timm or Meta-DINOv2 checkpoint file into ``model`` (a timm backbone without head).

    Classifier weights (``head.*``, ``fc.*``) the backbone does not have are ignored; any other
    missing or unexpected key is an error naming the file and the keys.
    """
    path = Path(path)
    state = to_timm_state_dict(read_state_dict(path), model)
    own = model.state_dict()
    classifier = {k for k in state if k.split(".")[0] in ("head", "fc") and k not in own}
    state = {k: v for k, v in state.items() if k not in classifier}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape_mismatch = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shape_mismatch:
        details = []
        if missing:
            details.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            details.append(
                f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}"
            )
        if shape_mismatch:
            details.append(
                "shape mismatch "
                + ", ".join(
                    f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in shape_mismatch[:4]
                )
            )
        raise WeightsFileError(
            f"weights file {path} does not fit {type(model).__name__} "
            f"({'; '.join(details)}); check that the file matches the chosen backbone and model_kwargs"
        )
    model.load_state_dict(state, strict=True)


def hub_offline() -> bool:
    """Whether the Hugging Face Hub must not be contacted (``HF_HUB_OFFLINE`` set to a true value)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_hub_file(hf_hub_id: str, timm_name: str) -> Path:
    """Path of the timm checkpoint for ``hf_hub_id`` in the local HF cache, downloading if allowed.

    Raises ``WeightsUnavailableError`` with instructions when it is neither cached nor downloadable.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    offline = hub_offline()
    reasons: list[str] = []
    for filename in HUB_FILENAMES:
        try:
            return Path(hf_hub_download(hf_hub_id, filename, local_files_only=offline))
        except LocalEntryNotFoundError as err:  # not cached, and offline or unreachable
            reasons.append(f"{filename}: {type(err).__name__}")
        except EntryNotFoundError:  # reachable repo without this file; try the next name
            reasons.append(f"{filename}: not in repo")
        except (OSError, ValueError) as err:  # network failures, HTTP errors, bad repo ids
            reasons.append(f"{filename}: {type(err).__name__}: {err}")
    raise WeightsUnavailableError(
        f"pretrained weights for {timm_name} (Hugging Face repo {hf_hub_id}) are not in the local "
        f"Hugging Face cache and cannot be downloaded{' (HF_HUB_OFFLINE is set)' if offline else ''} "
        f"[{'; '.join(reasons)}]. Provide them in one of these ways: "
        f"(1) on a connected machine run `huggingface-cli download {hf_hub_id}` and copy the cache "
        "(~/.cache/huggingface/hub, or $HF_HOME) here, then set HF_HUB_OFFLINE=1; "
        "(2) pass `weights: PATH` with a local timm state dict or Meta's original DINOv2 checkpoint "
        "(e.g. dinov2_vits14_pretrain.pth); "
        "(3) pass `pretrained: false` for an explicitly random-initialised backbone."
    )


def state_sha256(module: nn.Module) -> str:
    """SHA-256 of every parameter and persistent buffer of ``module`` (names, shapes, dtypes, bytes).

    Unlike a weights file's hash, this tells two random initialisations apart and follows
    fine-tuned blocks.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        # reshape(-1) first: 0-dim tensors (BatchNorm's num_batches_tracked) cannot be viewed as bytes
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
