"""`endobench eval`: a drop-in DAVIS evaluator (J&F, T, Dice/HD95, flow-warped consistency).

Folder mode: ground truth in the DAVIS layout (``ROOT/Annotations/480p/<seq>/``) or one plain
folder, predictions from ``PRED/<seq>/`` (or ``PRED/``). Dataset mode (``--dataset NAME``):
ground truth read through a registry dataset's reader (class mapping, void, annotated frames
only), predictions from ``PRED/<clip>/<frame stem>.png`` as ``endobench track`` writes them.
Prints the DAVIS table (or JSON with ``--json``); warnings and errors are one line each on
stderr. The scoring itself lives in :mod:`endobench.evaluation`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from endobench.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``endobench eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="score predicted masks against ground truth (DAVIS J&F, T, Dice/HD95, TC)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--gt",
        type=Path,
        help="DAVIS root (with Annotations/480p/<seq>) or one folder of mask PNGs",
    )
    source.add_argument(
        "--dataset", help="registry dataset whose reader gives the ground truth (datasets.yaml)"
    )
    parser.add_argument(
        "--datasets", type=Path, default=None, help="registry file for --dataset (datasets.yaml)"
    )
    parser.add_argument("--split", default=None, help="dataset split for --dataset (default: all)")
    parser.add_argument(
        "--pred",
        required=True,
        type=Path,
        help="predictions: folder with <seq>/ sub-folders, or PNGs for one sequence",
    )
    parser.add_argument("--sequences", default=None, help="comma-separated subset of sequences")
    parser.add_argument(
        "--protocol", default="semi-supervised", choices=("semi-supervised", "unsupervised")
    )
    parser.add_argument(
        "--metrics",
        default="jf",
        help="comma-separated, among jf,j,f,t,dice,hd95,tc (default jf)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="scoring threads (default: usable CPUs, at most 8; 0 = in the calling thread)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the per-frame rows here (CSV) and the table to <stem>-table.csv",
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON instead")
    parser.add_argument(
        "--bound-th",
        type=float,
        default=0.008,
        help="F tolerance, > 0: fraction of the diagonal (<1) or pixels (>=1)",
    )
    parser.add_argument(
        "--hd95",
        dest="hd95_definition",
        default="monai",
        choices=("monai", "medpy"),
        help="HD95 definition (default monai)",
    )
    parser.add_argument(
        "--dice-empty",
        type=float,
        default=1.0,
        help="Dice when both masks are empty (default 1.0; 'nan' for MONAI's)",
    )
    parser.error = _one_line_error(parser)
    parser.set_defaults(func=run)


def _one_line_error(parser: argparse.ArgumentParser) -> Any:
    """argparse's usage errors as the one line every eval error is (exit code 2)."""

    def error(message: str) -> None:
        parser.exit(2, f"endobench eval: error: {message} (see endobench eval --help)\n")

    return error


def _format_table(table: Any, protocol: str) -> str:
    fmt = lambda v: f"{v:.6f}"  # noqa: E731
    glob = table.loc[["global"]].reset_index(drop=True)
    per_seq = table.drop(index="global")
    lines = [
        f"--------------------------- Global results for {protocol} ---------------------------",
        glob.to_string(index=False, float_format=fmt),
        "",
        "---------------------------------- Per sequence results ----------------------------------",
        per_seq.to_string(float_format=fmt),
    ]
    return "\n".join(lines)


def _out_paths(out: Path | None) -> list[Path]:
    """The two files ``--out`` writes, checked before anything is scored."""
    if out is None:
        return []
    paths = [out, out.with_name(f"{out.stem}-table.csv")]
    for path in paths:
        if path.is_dir():
            raise UserError(f"--out {out}: {path} is a directory; expected a CSV file path")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is a file, not a folder")
    return paths


def _check_args(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 0:
        raise UserError(
            f"--workers {args.workers}: expected 0 (score in the calling thread) or a positive "
            "number of threads"
        )
    if not (math.isfinite(args.bound_th) and args.bound_th > 0):
        raise UserError(
            f"--bound-th {args.bound_th:g}: expected a number > 0 (a fraction of the image "
            "diagonal if < 1, else pixels)"
        )
    if args.gt is not None and (args.datasets is not None or args.split is not None):
        raise UserError("--datasets and --split go with --dataset, not with --gt")


def _show(caught: list[warnings.WarningMessage]) -> None:
    """Evaluation warnings as one line each on stderr; any other warning as Python shows it."""
    from endobench.evaluation import EvaluationWarning

    for w in caught:
        if issubclass(w.category, EvaluationWarning):
            print(f"endobench eval: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def run(args: argparse.Namespace) -> int:
    """Run the evaluator; 0 on success. A user's mistake raises UserError (one line, exit 2)."""
    from endobench.evaluation import (
        EvaluationWarning,
        evaluate_dataset,
        evaluate_folders,
        table_to_json,
    )

    _check_args(args)
    outputs = _out_paths(args.out)
    sequences = (
        [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
    )
    common = dict(
        sequences=sequences,
        protocol=args.protocol,
        metrics=args.metrics,
        workers=args.workers,
        bound_th=args.bound_th,
        hd95_definition=args.hd95_definition,
        dice_empty=args.dice_empty,
        progress=not args.json and sys.stderr.isatty(),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EvaluationWarning)
        try:
            if args.dataset is not None:
                df, table = evaluate_dataset(
                    args.dataset, args.pred, registry=args.datasets, split=args.split, **common
                )
            else:
                df, table = evaluate_folders(args.gt, args.pred, **common)
        finally:
            _show(caught)
    if outputs:
        from endobench.io_utils import atomic_write_text

        try:
            atomic_write_text(outputs[0], df.to_csv(index=False))
            atomic_write_text(outputs[1], table.to_csv())
        except OSError as exc:
            raise UserError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    if args.json:
        print(json.dumps(table_to_json(table), indent=2))
    else:
        print(_format_table(table, args.protocol))
    return 0
