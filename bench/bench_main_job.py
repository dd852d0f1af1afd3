"""The main job (`endobench ablate configs/demo.yaml`) of two commits, side by side in one run.

Each commit is cloned into a temporary folder (a fresh checkout: empty results, empty numba
cache, as a new user has it) and the two run alternately, ``base, new, new, base, ...`` for
``--rounds`` pairs, each under ``PYTHONPATH`` set to its clone so that the installed
environment runs that clone's code. The feature cache (``~/.cache/endobench``) is shared, as a
user's is. Prints JSON: per run the wall, user and sys seconds (of the command and every process
it waited for) and the span from the first notebook's start to the last one's end; per commit
the medians; the ratio of the medians (new / base); whether the numbers of the two commits'
``results.csv`` agree outside the timing columns; and the machine. A run that fails is reported
with its exit code, the command's last output lines and the failed notebooks' tracebacks.

    python bench/bench_main_job.py --base e998cee --new HEAD [--rounds 2]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

REPO = Path(__file__).resolve().parents[1]
TIMING_COLUMNS = ("seconds", "seconds_per_frame", "train_seconds")
MEASURES = ("wall_s", "user_s", "sys_s", "notebooks_span_s")


def _clone(rev: str, where: Path) -> str:
    subprocess.run(["git", "clone", "-q", str(REPO), str(where)], check=True)
    subprocess.run(["git", "-C", str(where), "checkout", "-q", rev], check=True)
    out = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


def _notebook_span(results: Path) -> float:
    """Seconds from the first notebook's start to the last one's end (papermill metadata)."""
    starts, ends = [], []
    for path in glob.glob(str(results / "demo" / "*" / "*" / "*.ipynb")):
        meta = json.loads(Path(path).read_text())["metadata"]["papermill"]
        starts.append(datetime.fromisoformat(meta["start_time"]))
        ends.append(datetime.fromisoformat(meta["end_time"]))
    return (max(ends) - min(starts)).total_seconds()


def _run(clone: Path, run: int) -> dict[str, Any]:
    results = clone / f"results-{run}"
    env = {**os.environ, "PYTHONPATH": str(clone)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        ["endobench", "ablate", "configs/demo.yaml", "--results", str(results)],
        cwd=clone, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row: dict[str, Any] = {
        "exit_code": done.returncode,
        "wall_s": round(wall, 2),
        "user_s": round(after.ru_utime - before.ru_utime, 2),
        "sys_s": round(after.ru_stime - before.ru_stime, 2),
        "notebooks_span_s": round(_notebook_span(results), 2),
    }
    if done.returncode:  # what failed, for the JSON: the command's last lines, each traceback
        row["stderr_tail"] = done.stderr[-2000:]
        row["tracebacks"] = {
            str(Path(p).parent.relative_to(results)): Path(p).read_text()[-2000:]
            for p in glob.glob(str(results / "demo" / "*" / "*" / "traceback.txt"))
        }
    return row


def _same_results(a: Path, b: Path) -> bool:
    import pandas as pd

    x, y = (pd.read_csv(p / "demo" / "results.csv") for p in (a, b))
    # the numbers only: text columns name the commit and the paths, which differ by design
    keep = [
        c for c in x.columns if x[c].dtype.kind == "f" and c.split(".")[-1] not in TIMING_COLUMNS
    ]
    return list(x.columns) == list(y.columns) and x[keep].equals(y[keep])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--new", default="HEAD", help="git revision measured (default HEAD)")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-main-job-") as tmp:
        clones = {"base": Path(tmp, "base"), "new": Path(tmp, "new")}
        revs = {k: _clone(getattr(args, k), p) for k, p in clones.items()}
        runs: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
        order = [k for i in range(args.rounds) for k in (("base", "new"), ("new", "base"))[i % 2]]
        for i, key in enumerate(order):
            runs[key].append(_run(clones[key], i))
        medians = {
            k: {m: round(statistics.median(r[m] for r in rs), 2) for m in MEASURES}
            for k, rs in runs.items()
        }
        same = _same_results(clones["base"] / "results-0", clones["new"] / "results-1")
    print(
        json.dumps(
            {
                "compares": f"endobench ablate configs/demo.yaml: {revs['new']} vs {revs['base']}",
                "revisions": revs,
                "order": order,
                "runs": runs,
                "medians": medians,
                "new_over_base": {
                    m: round(medians["new"][m] / medians["base"][m], 3) for m in medians["new"]
                },
                "numbers_equal_but_timings": same,
                "machine": machine_facts(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
