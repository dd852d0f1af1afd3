"""`endobench datasets list | check NAME | preview NAME --out sheet.png`.

A user's mistake (unknown dataset, bad registry, missing root, bad option) raises
:class:`~endobench.errors.UserError`, which the CLI prints as one line with exit code 2 like every
command; ``check`` exits 1 when it read the dataset and found problems in its files.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from endobench.data import DataError, Dataset, Problem, Registry, RegistryError, load_registry
from endobench.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``datasets`` and its three actions."""
    from endobench.registry import READERS

    parser = subparsers.add_parser(
        "datasets",
        help="list, check and preview registered datasets",
        description=f"Dataset entries name a format: {', '.join(READERS.names())}.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--datasets",
            metavar="PATH",
            help="registry file (default: $ENDOBENCH_DATASETS, ./datasets.yaml, the repo's)",
        )

    p_list = actions.add_parser("list", help="list the datasets of the registry")
    common(p_list)
    p_list.set_defaults(func=run_list)

    p_check = actions.add_parser("check", help="read every frame and mask; exit 1 on problems")
    p_check.add_argument("name")
    p_check.add_argument("--split", help="check only this split")
    common(p_check)
    p_check.set_defaults(func=run_check)

    p_prev = actions.add_parser("preview", help="contact sheet of frames with mask overlays")
    p_prev.add_argument("name")
    p_prev.add_argument("--out", required=True, type=Path, help="output image (.png or .jpg)")
    p_prev.add_argument("--split", help="preview only this split")
    p_prev.add_argument("--count", type=int, default=12, help="number of tiles (default 12)")
    p_prev.add_argument("--columns", type=int, default=4, help="tiles per row (default 4)")
    common(p_prev)
    p_prev.set_defaults(func=run_preview)


def _registry(args: argparse.Namespace) -> Registry:
    return load_registry(args.datasets)


def run_list(args: argparse.Namespace) -> int:
    """Print one line per dataset: name, format, root (and whether it exists), description."""
    registry = _registry(args)
    print(f"registry: {registry.source}")
    rows = []
    for name in registry.names():
        entry = registry.entry(name)
        try:
            root = registry.root_of(name)
        except RegistryError as exc:
            root_text = f"(root unresolved: {exc})"
        else:
            if root is None:
                root_text = "(built-in)"
            else:
                root_text = str(root) + ("" if root.is_dir() else "  [missing]")
        rows.append((name, entry.format, root_text, entry.description))
    width = max(len(r[0]) for r in rows)
    fmt_width = max(len(r[1]) for r in rows)
    for name, fmt, root_text, description in rows:
        print(f"{name:<{width}}  {fmt:<{fmt_width}}  {root_text}")
        if description:
            print(f"{'':<{width}}  {'':<{fmt_width}}  {description}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Read every frame and mask of a dataset, print counts and every problem."""
    registry = _registry(args)
    with warnings.catch_warnings():
        # The problems are printed below; the one-line skip warning would repeat them.
        warnings.simplefilter("ignore")
        dataset = registry.open(args.name, split=args.split, on_error="skip", progress=True)
        clips = dataset.clips()
        if dataset.format == "synthetic":
            _read_everything(dataset)
    frames = sum(len(c) for c in clips)
    masks = sum(len(c.annotated) for c in clips)
    print(f"dataset {dataset.name!r} ({dataset.format}, {dataset.kind}) from {registry.source}")
    if dataset.root:
        print(f"root: {dataset.root}")
    print(f"classes: {dataset.classes}")
    unit = "clips" if dataset.kind == "video" else "groups of images"
    print(f"{unit}: {len(clips)}; frames read: {frames}; masks read: {masks}")
    if dataset.problems:
        print(f"{len(dataset.problems)} problem(s):")
        for problem in dataset.problems:
            print(f"  {problem}")
        return 1
    print("no problems found")
    return 0


def _read_everything(dataset: Dataset) -> None:
    """Read every frame and mask of clips that are not validated while opening (synthetic)."""
    total = sum(len(c) for c in dataset.clips())
    with tqdm(total=total, desc="reading frames", unit="frame") as bar:
        for clip in dataset.clips():
            for i in range(len(clip)):
                try:
                    clip.frame(i)
                    clip.mask(i)
                except DataError as exc:
                    dataset.problems.append(Problem.from_error(exc))
                bar.update(1)


def run_preview(args: argparse.Namespace) -> int:
    """Save a contact sheet of evenly spread annotated frames with their masks overlaid."""
    from endobench.viz import contact_sheet, overlay_mask, save_image

    for option, value in (("--count", args.count), ("--columns", args.columns)):
        if value < 1:
            raise UserError(f"{option} {value}: expected an integer >= 1")
    dataset = _registry(args).open(args.name, split=args.split)
    picks = _spread_picks(dataset, args.count)
    tiles, captions = [], []
    for clip, i in tqdm(picks, desc="preview", unit="frame", disable=None):
        tiles.append(overlay_mask(clip.frame(i), clip.mask(i)))
        captions.append(f"{clip.name}/{clip.frame_names[i]}")
    if not tiles:
        raise UserError(f"dataset {args.name!r} has no frames to preview")
    sheet = contact_sheet(tiles, captions, columns=args.columns)
    save_image(args.out, sheet)
    print(f"wrote {args.out} ({len(tiles)} frames of {dataset.name!r})")
    return 0


def _spread_picks(dataset: Dataset, count: int) -> list[tuple]:
    """``count`` (clip, frame index) pairs spread evenly over all annotated frames."""
    pool = [
        (clip, i)
        for clip in dataset.clips()
        for i in (clip.annotated if clip.annotated else range(len(clip)))
    ]
    if len(pool) <= count:
        return pool
    step = len(pool) / count
    return [pool[int(k * step)] for k in range(count)]
