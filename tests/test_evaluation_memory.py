"""Evaluation streams: its peak memory does not grow with the clip's length (issue 9, item 2).

Two generated 480x854 sequences, 30 then 300 frames, are evaluated in one fresh subprocess; its
peak resident memory after the 300-frame run must exceed the peak after the 30-frame run by far
less than the longer clip's masks (270 x 2 x 0.41 MB = 221 MB: what an evaluator that holds the
sequence in memory adds; main before streaming: 362 MB -> 588 MB, now 292 MB -> 292 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from endobench.data.label_png import write_palette_png

H, W = 480, 854
#: Allowed growth of peak RSS from 30 to 300 frames (allocator noise, per-frame result rows).
MAX_GROWTH_MB = 25.0

_MEASURE = """
import json, resource, sys
from endobench.evaluation import evaluate_folders
out = []
for gt, pred in zip(sys.argv[1::2], sys.argv[2::2]):
    df, table = evaluate_folders(gt, pred, workers=2, progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.append({"rows": len(df), "jf": float(table.loc["global", "J&F-Mean"]), "peak_mb": peak_mb})
print(json.dumps(out))
"""


def _sequence(root: Path, n: int) -> tuple[Path, Path]:
    """``gt/seq`` and ``pred/seq`` with ``n`` frames: two distinct masks each, hard-linked."""
    gt, pred = root / "gt" / "seq", root / "pred" / "seq"
    gt.mkdir(parents=True)
    pred.mkdir(parents=True)
    yy, xx = np.mgrid[:H, :W]
    for k in range(2):
        disc = ((yy - 240) ** 2 + (xx - 400 - 20 * k) ** 2 < 150**2).astype(np.uint8)
        write_palette_png(gt / f"src{k}.png", disc)
        write_palette_png(pred / f"src{k}.png", np.roll(disc, 7, axis=1))
    for i in range(n):
        for folder in (gt, pred):
            os.link(folder / f"src{i % 2}.png", folder / f"{i:05d}.png")
    for folder in (gt, pred):
        for k in range(2):
            (folder / f"src{k}.png").unlink()
    return root / "gt", root / "pred"


def _measure(*folders: Path) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *map(str, folders)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_is_flat_in_clip_length(tmp_path: Path) -> None:
    short, long = _measure(*_sequence(tmp_path / "short", 30), *_sequence(tmp_path / "long", 300))
    assert (short["rows"], long["rows"]) == (28, 298)
    # the same two frame pairs alternate, so the scores agree whatever the length
    assert abs(short["jf"] - long["jf"]) < 1e-3
    assert long["peak_mb"] - short["peak_mb"] < MAX_GROWTH_MB, (short, long)
