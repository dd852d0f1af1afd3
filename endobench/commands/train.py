"""`endobench train`: train a segmentation head on a registry dataset; checkpoint + metrics CSV.

Settings come from ``TrainConfig`` defaults, then an optional ``--config`` YAML file (any
``TrainConfig`` field), then the command-line flags given explicitly.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from endobench.errors import UserError, validation_message
from endobench.safe_yaml import load_yaml_file, load_yaml_text
from endobench.training.augment import preset_names

# Command-line flag (argparse dest) -> TrainConfig field.
FLAG_FIELDS = {
    "dataset": "dataset",
    "datasets": "datasets",
    "backbone": "backbone",
    "head": "head",
    "augment": "augment",
    "epochs": "epochs",
    "out": "out_dir",
    "pretrained": "pretrained",
    "weights": "weights",
    "size": "size",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "cache_dir": "cache_dir",
    "device": "device",
    "unfreeze_last": "unfreeze_last",
    "num_classes": "num_classes",
    "max_images": "max_images",
    "num_workers": "num_workers",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train`` (backbone and head choices come from the registries)."""
    from endobench.registry import BACKBONES, HEADS

    p = subparsers.add_parser(
        "train",
        help="train a segmentation head on a backbone (writes best.pt, last.pt, metrics.csv)",
        description=__doc__,
    )
    p.add_argument("--config", type=Path, help="YAML file with TrainConfig fields")
    p.add_argument("--dataset", help="registry dataset name (default: synthetic)")
    p.add_argument(
        "--datasets",
        metavar="PATH",
        help="registry file (default: $ENDOBENCH_DATASETS, ./datasets.yaml, the repo's)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset override, e.g. --set num_clips=4 (repeatable; VALUE parsed as YAML)",
    )
    p.add_argument("--backbone", choices=BACKBONES.names(), metavar="NAME",
                   help=f"registered backbone: {', '.join(BACKBONES.names())}")  # fmt: skip
    p.add_argument("--head", choices=HEADS.names())
    p.add_argument("--augment", choices=preset_names())
    p.add_argument("--epochs", type=int)
    p.add_argument("--out", type=Path, help="output directory (default: results/train)")
    p.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--pretrained: timm / Hugging Face weights; --no-pretrained: random initialisation",
    )
    p.add_argument("--weights", help="local backbone weights file (timm or Meta DINOv2 format)")
    p.add_argument("--size", type=int, help="square training resolution in pixels")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--cache-dir", help="feature cache directory")
    p.add_argument("--no-cache", action="store_true", help="never use the feature cache")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument("--unfreeze-last", type=int, help="train the last N backbone blocks too")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--max-images", type=int, help="use at most N training images")
    p.add_argument("--num-workers", type=int, help="data-loading worker processes")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields: the ``--config`` file, overridden by the flags that were given."""
    fields: dict[str, Any] = {}
    if args.config is not None:
        loaded = load_yaml_file(args.config) or {}
        if not isinstance(loaded, dict):
            raise UserError(f"{args.config}: expected a mapping of TrainConfig fields")
        fields.update(loaded)
    for flag, name in FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            fields[name] = str(value) if isinstance(value, Path) else value
    if args.overrides:
        overrides = dict(fields.get("dataset_overrides") or {})
        for item in args.overrides:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UserError(f"--set {item!r}: expected KEY=VALUE")
            overrides[key] = load_yaml_text(value, f"--set {item}")
        fields["dataset_overrides"] = overrides
    if args.no_cache:
        fields["use_feature_cache"] = False
    return fields


def run(args: argparse.Namespace) -> int:
    """Train, then print a JSON summary (best epoch, Dice, paths, feature cache use)."""
    from endobench.training.config import TrainConfig
    from endobench.training.loop import fit

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fields = config_from_args(args)
    where = f"{args.config} or the flags" if args.config else "the flags"
    try:
        config = TrainConfig.model_validate(fields)
    except ValidationError as exc:
        raise UserError(f"training configuration ({where}): {validation_message(exc)}") from None
    out = Path(config.out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, expected a folder for the checkpoints")
    try:
        result = fit(config, progress=not args.quiet, resume=args.resume)
    except UserError:
        raise
    except (ValueError, FileNotFoundError) as exc:  # fit's documented input errors
        raise UserError(" ".join(str(exc).split())) from None
    summary = {
        "best_epoch": result.best_epoch,
        "best_val_dice": result.best_val_dice,
        "last": result.history[-1] if result.history else None,
        "best_checkpoint": str(result.best_checkpoint),
        "last_checkpoint": str(result.last_checkpoint),
        "metrics_csv": str(result.metrics_csv),
        "feature_cache": result.feature_cache,
    }
    print(json.dumps(summary, indent=2))
    return 0
