"""`endobench eval`: a drop-in DAVIS evaluator (J&F, T, Dice/HD95, flow-warped consistency).

Reads ground truth in the DAVIS layout (``ROOT/Annotations/480p/<seq>/``) or one plain folder,
predictions from ``PRED/<seq>/`` (or ``PRED/``), decodes the PNGs in worker processes, scores
with :mod:`endobench.metrics` and prints the DAVIS table (or JSON with ``--json``). Nothing is
cached: every run reads and scores the files it is given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from endobench.io_utils import atomic_write_text

METRIC_CHOICES = ("jf", "j", "f", "t", "dice", "hd95", "tc")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``endobench eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="score predicted masks against ground truth (DAVIS J&F, T, Dice/HD95, TC)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--gt",
        required=True,
        type=Path,
        help="DAVIS root (with Annotations/480p/<seq>) or one folder of mask PNGs",
    )
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
        help=f"comma-separated, among {','.join(METRIC_CHOICES)} (default jf)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="PNG decoding processes (default: CPU count, at most 8; 0 = in-process)",
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
        help="F tolerance: fraction of the diagonal (<1) or pixels (>=1)",
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
    parser.set_defaults(func=run)


def _metric_tokens(text: str) -> list[str]:
    tokens = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in tokens if t not in METRIC_CHOICES]
    if unknown:
        raise ValueError(f"--metrics: unknown {unknown}; expected some of {list(METRIC_CHOICES)}")
    return tokens


def _json_value(x: Any) -> Any:
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    return x


def table_to_json(table: pd.DataFrame) -> dict[str, Any]:
    """``{"sequences": {seq: {column: value}}, "global": {...}}``; NaN becomes null."""
    rows = {
        str(name): {str(k): _json_value(v) for k, v in row.items()}
        for name, row in table.iterrows()
    }
    glob = rows.pop("global", {})
    return {"sequences": rows, "global": glob}


def _format_table(table: pd.DataFrame, protocol: str) -> str:
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


def _temporal_consistency(seq, gt_masks, pred_masks, rows: pd.DataFrame) -> dict[str, float]:
    """TC of the prediction and the ground truth on DIS optical flow over the JPEG frames."""
    from endobench.metrics.flow_frames import dis_backward_flows, read_frames
    from endobench.metrics.temporal_consistency import flicker_rate, flow_warped_consistency

    if seq.frames_dir is None or not seq.frames_dir.is_dir():
        raise FileNotFoundError(
            f"sequence {seq.name}: --metrics tc needs the video frames at "
            f"{seq.frames_dir or 'ROOT/JPEGImages/480p/<seq>'} (DAVIS layout)"
        )
    flows = dis_backward_flows(read_frames(seq.frames_dir, seq.frame_names))
    out: dict[str, list[float]] = {"TC-Pred": [], "TC-GT": [], "Flicker-Pred": []}
    # Pairs (t-1, t) whose two predictions were read (semi-supervised skips first and last).
    read = np.array([m is not None for m in pred_masks])
    pairs = read[:-1] & read[1:]
    blank = np.zeros(gt_masks[0].shape, bool)
    for obj, pred_obj in rows[["object", "pred_object"]].drop_duplicates().itertuples(index=False):
        pm = [blank if m is None else m == pred_obj for m in pred_masks]
        gm = [m == obj for m in gt_masks]
        out["TC-Pred"].append(float(np.nanmean(flow_warped_consistency(pm, flows)[pairs])))
        out["TC-GT"].append(float(np.nanmean(flow_warped_consistency(gm, flows))))
        out["Flicker-Pred"].append(float(np.nanmean(flicker_rate(pm, flows)[pairs])))
    res = {k: float(np.nanmean(v)) if v else float("nan") for k, v in out.items()}
    res["TC-Gap"] = res["TC-GT"] - res["TC-Pred"]
    return res


def evaluate_folders(
    gt: Path,
    pred: Path,
    *,
    sequences: list[str] | None = None,
    protocol: str = "semi-supervised",
    metrics: list[str] | None = None,
    workers: int | None = None,
    bound_th: float = 0.008,
    hd95_definition: str = "monai",
    dice_empty: float = 1.0,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every sequence; returns ``(per-frame rows, DAVIS table)``. Errors name the file."""
    from tqdm import tqdm

    from endobench.metrics import evaluate_sequence, summarize
    from endobench.metrics.davis import scored_frames
    from endobench.metrics.mask_folders import decode_masks, discover_sequences, prediction_paths

    metrics = metrics or ["jf"]
    want_tc = "tc" in metrics
    seq_metrics = [m for m in metrics if m != "tc"]
    seqs = discover_sequences(gt, pred, sequences)
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    executor = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    frames, extras = [], {}
    try:
        for seq in tqdm(seqs, desc="eval", unit="seq", disable=not progress, file=sys.stderr):
            n = len(seq.frame_names)
            pred_paths = prediction_paths(seq, list(scored_frames(n, protocol)))
            gt_paths = [seq.gt_dir / f"{name}.png" for name in seq.frame_names]
            decoded = decode_masks(gt_paths + pred_paths, executor, workers)
            gt_masks, pred_masks = decoded[:n], decoded[n:]
            for name, g, p, path in zip(
                seq.frame_names, gt_masks, pred_masks, pred_paths, strict=True
            ):
                if p is not None and g.shape != p.shape:
                    raise ValueError(
                        f"{path}: size {p.shape[1]}x{p.shape[0]} but ground truth "
                        f"{seq.gt_dir / (name + '.png')} is {g.shape[1]}x{g.shape[0]}"
                    )
            try:
                rows = evaluate_sequence(
                    gt_masks,
                    pred_masks,
                    protocol,
                    seq_metrics,
                    bound_th=bound_th,
                    frame_names=seq.frame_names,
                    sequence=seq.name,
                    dice_empty=dice_empty,
                    hd95_definition=hd95_definition,
                )
            except ValueError as exc:
                raise ValueError(f"{seq.pred_dir}: {exc}") from exc
            if want_tc:
                extras[seq.name] = _temporal_consistency(seq, gt_masks, pred_masks, rows)
            frames.append(rows)
    finally:
        if executor is not None:
            executor.shutdown()
    df = pd.concat(frames, ignore_index=True)
    table = summarize(df)
    if extras:
        extra = pd.DataFrame.from_dict(extras, orient="index")
        extra.loc["global"] = extra.mean(axis=0)
        table = table.join(extra)
    return df, table


def run(args: argparse.Namespace) -> int:
    """Run the evaluator; exit code 0 on success, 2 on input errors (message on stderr)."""
    try:
        metrics = _metric_tokens(args.metrics)
        sequences = (
            [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
        )
        df, table = evaluate_folders(
            args.gt,
            args.pred,
            sequences=sequences,
            protocol=args.protocol,
            metrics=metrics,
            workers=args.workers,
            bound_th=args.bound_th,
            hd95_definition=args.hd95_definition,
            dice_empty=args.dice_empty,
            progress=not args.json,
        )
    except (OSError, ValueError) as exc:
        print(f"endobench eval: error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        atomic_write_text(args.out, df.to_csv(index=False))
        atomic_write_text(args.out.with_name(f"{args.out.stem}-table.csv"), table.to_csv())
    if args.json:
        print(json.dumps(table_to_json(table), indent=2))
    else:
        print(_format_table(table, args.protocol))
    return 0
