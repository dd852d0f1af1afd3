"""Backbone registry (short names -> timm models) and the frozen multi-level feature extractor.

``build_backbone("dinov2_vits14", pretrained=True)`` returns a :class:`Backbone` whose
``forward_features`` gives a list of ``B x C x h x w`` maps from chosen blocks (ViTs) or stages (CNNs)
for any input size, with the normalisation constants and weight provenance travelling with it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from endobench.io_utils import sha256_file
from endobench.models.weights import (
    WeightsInfo,
    load_weights_file,
    random_init_info,
    resolve_hub_file,
    state_sha256,
)
from endobench.registry import BACKBONES

BackboneKind = Literal["vit", "cnn"]


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone: the timm model (with pretrained tag) and how to read features.

    Registered as ``BACKBONES.register(name, BackboneSpec(...))``; ``description`` is the one
    line that listings show.
    """

    timm_name: str
    kind: BackboneKind
    description: str


def _register(name: str, timm_name: str, kind: BackboneKind, description: str) -> None:
    """Register ``name`` (``BACKBONES.get(name).obj`` is its :class:`BackboneSpec`)."""
    BACKBONES.register(name, BackboneSpec(timm_name, kind, description), description=description)


# Listed in this order (small to large, then the supervised references).
_register(
    "dinov2_vits14",
    "vit_small_patch14_dinov2.lvd142m",
    "vit",
    "DINOv2 ViT-S/14 (self-supervised, LVD-142M)",
)
_register(
    "dinov2_vitb14",
    "vit_base_patch14_dinov2.lvd142m",
    "vit",
    "DINOv2 ViT-B/14 (self-supervised, LVD-142M)",
)
_register(
    "dinov2_vitl14",
    "vit_large_patch14_dinov2.lvd142m",
    "vit",
    "DINOv2 ViT-L/14 (self-supervised, LVD-142M)",
)
_register(
    "dinov2_vitg14",
    "vit_giant_patch14_dinov2.lvd142m",
    "vit",
    "DINOv2 ViT-g/14 (self-supervised, LVD-142M)",
)
_register(
    "dinov2_vits14_reg4",
    "vit_small_patch14_reg4_dinov2.lvd142m",
    "vit",
    "DINOv2 ViT-S/14 with 4 registers",
)
_register(
    "dinov2_vitb14_reg4",
    "vit_base_patch14_reg4_dinov2.lvd142m",
    "vit",
    "DINOv2 ViT-B/14 with 4 registers",
)
_register(
    "dinov2_vitl14_reg4",
    "vit_large_patch14_reg4_dinov2.lvd142m",
    "vit",
    "DINOv2 ViT-L/14 with 4 registers",
)
_register(
    "dinov2_vitg14_reg4",
    "vit_giant_patch14_reg4_dinov2.lvd142m",
    "vit",
    "DINOv2 ViT-g/14 with 4 registers",
)
_register(
    "vit_small_in1k",
    "vit_small_patch16_224.augreg_in21k_ft_in1k",
    "vit",
    "supervised ViT-S/16 (ImageNet-21k pretrain, ImageNet-1k fine-tune)",
)
_register(
    "resnet50", "resnet50.a1_in1k", "cnn", "supervised ResNet-50 (ImageNet-1k, timm A1 recipe)"
)

# ResNet stages as timm's forward_intermediates numbers them: 0 = stem (stride 2), 1..4 = layer1..4.
_CNN_STAGES = ("layer1", "layer2", "layer3", "layer4")
_CNN_DEFAULT_INDICES = (1, 2, 3, 4)


def default_vit_indices(depth: int, levels: int = 4) -> list[int]:
    """Last block of each of ``levels`` equal slices of the network (12 blocks -> [2, 5, 8, 11]).

    The DPT/ViTDet convention: features from a quarter, half, three quarters and the end.
    """
    return sorted({max(0, (k + 1) * depth // levels - 1) for k in range(levels)})


def _normalise_indices(indices: int | Sequence[int], count: int, what: str) -> list[int]:
    """``int n`` -> last n; a sequence -> itself with negatives counted from the end; validated."""
    if isinstance(indices, int):
        if not 1 <= indices <= count:
            raise ValueError(f"out_indices={indices}: expected 1..{count} (last n {what})")
        return list(range(count - indices, count))
    out = []
    for i in indices:
        j = int(i) + count if int(i) < 0 else int(i)
        if not 0 <= j < count:
            raise ValueError(f"out_indices: {i} is out of range for {count} {what}")
        out.append(j)
    if not out or len(set(out)) != len(out) or out != sorted(out):
        raise ValueError(
            f"out_indices={list(indices)}: expected distinct increasing {what} indices"
        )
    return out


class Backbone(nn.Module):
    """A timm model wrapped as a multi-level feature extractor with its normalisation and provenance.

    Attributes: ``name`` (registry name), ``kind`` ("vit" | "cnn"), ``patch_size`` (ViT patch or CNN
    output stride, pixels), ``embed_dims`` (channels per returned level), ``out_indices`` (blocks or
    stages returned), ``prefix_tokens`` (CLS + register tokens; 0 for CNNs), ``mean``/``std`` (RGB
    in [0, 1] units, from timm's pretrained config), ``weights`` (:class:`WeightsInfo`).
    """

    # timm models expose their attributes (pretrained_cfg, blocks, forward_intermediates, ...)
    # dynamically, so the wrapped model is typed loosely.
    model: Any
    _mean: torch.Tensor
    _std: torch.Tensor

    def __init__(
        self,
        name: str,
        model: nn.Module,
        kind: BackboneKind,
        out_indices: list[int],
        weights: WeightsInfo,
        unfreeze_last: int = 0,
    ) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.kind = kind
        self.out_indices = list(out_indices)
        self.weights = weights
        cfg = self.model.pretrained_cfg
        self.mean: tuple[float, ...] = tuple(float(v) for v in cfg["mean"])
        self.std: tuple[float, ...] = tuple(float(v) for v in cfg["std"])
        if kind == "vit":
            self.patch_size = int(self.model.patch_embed.patch_size[0])
            self.prefix_tokens = int(self.model.num_prefix_tokens)
            self.embed_dims = [int(self.model.embed_dim)] * len(self.out_indices)
        else:
            self.patch_size = int(self.model.feature_info[-1]["reduction"])
            self.prefix_tokens = 0
            self.embed_dims = [int(self.model.feature_info[i]["num_chs"]) for i in self.out_indices]
        self.register_buffer(
            "_mean", torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "_std", torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.unfreeze_last = 0
        self.set_trainable_blocks(unfreeze_last)

    # --- trainability -------------------------------------------------------------------------
    def blocks(self) -> list[nn.Module]:
        """The units ``unfreeze_last`` counts: transformer blocks (ViT) or stages (CNN)."""
        if self.kind == "vit":
            return list(self.model.blocks)
        return [getattr(self.model, n) for n in _CNN_STAGES]

    def set_trainable_blocks(self, n: int) -> None:
        """Freeze everything, then make the last ``n`` blocks (or stages) trainable."""
        blocks = self.blocks()
        if not 0 <= n <= len(blocks):
            raise ValueError(f"unfreeze_last={n}: expected 0..{len(blocks)} for {self.name}")
        self.unfreeze_last = n
        self.model.requires_grad_(False)
        for block in blocks[len(blocks) - n :]:
            block.requires_grad_(True)
        self.train(self.training)

    @property
    def frozen(self) -> bool:
        """True when no backbone parameter is trainable."""
        return self.unfreeze_last == 0

    def train(self, mode: bool = True) -> Backbone:
        """Frozen parts stay in eval mode (BatchNorm statistics, dropout) whatever ``mode`` is."""
        super().train(mode)
        self.model.eval()
        if mode:
            for block in self.blocks()[len(self.blocks()) - self.unfreeze_last :]:
                block.train(True)
        return self

    # --- features ------------------------------------------------------------------------------
    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Feature grid of the last level for an ``height x width`` input: ceil(H/p), ceil(W/p)."""
        return math.ceil(height / self.patch_size), math.ceil(width / self.patch_size)

    def pad_to_patch(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad (the mean colour, after normalisation) bottom/right to a multiple of the patch."""
        h, w = x.shape[-2:]
        gh, gw = self.grid_size(h, w)
        ph, pw = gh * self.patch_size - h, gw * self.patch_size - w
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def forward_features(self, x: torch.Tensor, norm: bool = False) -> list[torch.Tensor]:
        """``B x 3 x H x W`` normalised float -> one ``B x C_i x h_i x w_i`` map per out index.

        ViT: every level is ``ceil(H/p) x ceil(W/p)`` with prefix (CLS/register) tokens dropped;
        ``norm=True`` applies the final LayerNorm to each level. CNN: stage maps at strides 4..32 of
        the padded input (``norm`` has no effect).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected input B x 3 x H x W, got {tuple(x.shape)}")
        x = self.pad_to_patch(x)
        return list(
            self.model.forward_intermediates(
                x, indices=self.out_indices, norm=norm, intermediates_only=True
            )
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Same as :meth:`forward_features` with ``norm=False``."""
        return self.forward_features(x)

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``N x H x W x 3`` (or ``H x W x 3``) uint8 RGB -> ``N x 3 x H x W`` float32 normalised.

        The tensor lives on the backbone's device; values are ``(frame / 255 - mean) / std``.
        """
        if isinstance(frames, torch.Tensor):
            t = frames
        else:  # flipped or cropped views have strides torch cannot wrap
            t = torch.from_numpy(np.ascontiguousarray(frames))
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4 or t.shape[-1] != 3:
            raise ValueError(
                f"{self.name}.preprocess: expected N x H x W x 3 RGB frames, got {tuple(t.shape)}"
            )
        if t.dtype != torch.uint8:
            raise ValueError(f"{self.name}.preprocess: expected uint8 frames, got {t.dtype}")
        t = t.to(self._mean.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return (t - self._mean) / self._std

    def fingerprint(self) -> str:
        """SHA-256 of what determines the features: name, out indices and every weight's bytes.

        Unlike ``weights.sha256`` (a file's hash, or ``"random-init"`` for all random models), this
        tells two random initialisations apart and follows fine-tuned blocks, so it is the key to use
        for caching features.
        """
        identity = f"{self.name}|{self.out_indices}|{state_sha256(self.model)}"
        return hashlib.sha256(identity.encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Plain dict for results: name, timm model, levels, patch size, trainable blocks, weights."""
        return {
            "name": self.name,
            "timm_name": self.weights.name,
            "kind": self.kind,
            "out_indices": list(self.out_indices),
            "embed_dims": list(self.embed_dims),
            "patch_size": self.patch_size,
            "prefix_tokens": self.prefix_tokens,
            "unfreeze_last": self.unfreeze_last,
            "mean": list(self.mean),
            "std": list(self.std),
            "weights": self.weights.to_dict(),
        }


def build_backbone(
    name: str,
    pretrained: bool | None = None,
    weights: str | None = None,
    out_indices: int | Sequence[int] | None = None,
    unfreeze_last: int = 0,
    img_size: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> Backbone:
    """Build a registered backbone with an explicit weights choice.

    name: a registered backbone (``endobench.registry.BACKBONES``).
    pretrained: ``True`` -> timm's checkpoint from the Hugging Face cache (downloaded if online);
        ``False`` -> random initialisation. ``None`` requires ``weights``.
    weights: path to a local timm state dict or Meta DINOv2 checkpoint (exclusive with ``pretrained``).
    out_indices: ViT block indices (default: 4 evenly spaced, e.g. [2, 5, 8, 11]) or CNN stages
        (1..4 = strides 4..32, default all four); an int n means the last n.
    unfreeze_last: number of final blocks (ViT) or stages (CNN) left trainable; 0 = fully frozen.
    img_size: the ViT's native grid size in pixels (pos_embed is resampled to it on load); inputs of
        any size still work because position embeddings are interpolated on the fly. Default: timm's
        (518 for DINOv2, 224 for ViT-S/16).
    model_kwargs: timm architecture overrides (e.g. ``depth=2, embed_dim=64`` for tiny test models);
        recorded in the weights provenance.
    """
    spec: BackboneSpec = BACKBONES.get(name).obj
    if weights is not None and pretrained is not None:
        raise ValueError(
            f"backbone {name}: give either weights=PATH or pretrained=True/False, not both "
            f"(got weights={weights!r}, pretrained={pretrained!r})"
        )
    if weights is None and pretrained is None:
        raise ValueError(
            f"backbone {name}: choose its weights explicitly: pretrained=True (timm / Hugging Face "
            "cache), weights=PATH (local timm or Meta DINOv2 checkpoint), or pretrained=False "
            "(random initialisation)"
        )
    kwargs = dict(model_kwargs or {})
    create_kwargs = dict(kwargs, num_classes=0)
    if spec.kind == "vit":
        create_kwargs["dynamic_img_size"] = True
        if img_size is not None:
            create_kwargs["img_size"] = img_size
    elif img_size is not None:
        raise ValueError(f"backbone {name}: img_size applies to ViTs only (got {img_size})")
    model: Any = timm.create_model(spec.timm_name, pretrained=False, **create_kwargs)

    if weights is not None:
        load_weights_file(model, weights)
        info = WeightsInfo(spec.timm_name, "local-file", sha256_file(weights), str(weights), kwargs)
    elif pretrained:
        hub_id = model.pretrained_cfg.get("hf_hub_id")
        if not hub_id:
            raise ValueError(f"backbone {name}: timm has no Hugging Face repo for {spec.timm_name}")
        path = resolve_hub_file(hub_id, spec.timm_name)
        load_weights_file(model, path)
        info = WeightsInfo(spec.timm_name, "timm-hub", sha256_file(path), str(path), kwargs)
    else:
        info = random_init_info(spec.timm_name, kwargs)

    if spec.kind == "vit":
        depth = len(model.blocks)
        indices = (
            default_vit_indices(depth)
            if out_indices is None
            else _normalise_indices(out_indices, depth, "blocks")
        )
    else:
        indices = (
            list(_CNN_DEFAULT_INDICES)
            if out_indices is None
            else _normalise_indices(out_indices, 5, "stages (0 = stem, 1..4 = layer1..4)")
        )
    return Backbone(name, model, spec.kind, indices, info, unfreeze_last)
