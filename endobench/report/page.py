"""The report page of a sweep: report.md (tables, story, figures, weights, failures) and its HTML.

``write_report(results/<grid>)`` checks the finished runs' summaries against their models
(:mod:`endobench.report.collect`), reads every run through ``endobench.ablate.load_results``
and writes, into the sweep folder::

    report.md                 tables + figures, the page to read
    report.html               the same page, self-contained (figures embedded, sortable tables)
    results.csv               the tidy results store (one row per run)
    tables/<name>.tex         LaTeX booktabs tables, best value per column in bold
    figures/<name>.png|.pdf   the figures registered in ``endobench.registry.FIGURES``
                              (cost/accuracy, Dice per augmentation, stability vs J&F, strips)
                              and the propagation story (ground-truth vs model keyframes) when the
                              tracking runs carry a ``reference`` (notebook 03 ``reference: true``)

Numbers are the mean +- sample standard deviation (ddof = 1) over the ``seed`` axis; every
other axis is a table row key. Only runs with status ``done`` enter tables and figures.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from endobench.ablate.plan import RUNS_DIR
from endobench.ablate.store import load_plan, load_results
from endobench.io_utils import atomic_write_text
from endobench.registry import FIGURES
from endobench.report.collect import aggregate, check_summaries
from endobench.report.columns import SEED_AXIS, SEGMENTATION_COLUMNS, tracking_columns
from endobench.report.figures import FigureContext, FigureSaver
from endobench.report.html import write_html_report
from endobench.report.story import story_section
from endobench.report.tables import build_table, to_latex, to_markdown


def write_report(grid_dir: str | Path) -> Path:
    """Write ``report.md`` and ``report.html`` (+ tables, figures, results.csv) for the sweep in
    ``grid_dir``; returns the path of report.md."""
    grid_dir = Path(grid_dir)
    plan = load_plan(grid_dir)
    check_summaries(grid_dir, plan)
    results = load_results(grid_dir)
    atomic_write_text(grid_dir / "results.csv", results.to_csv(index=False))
    axes = list(plan["axes"])
    keys = [a for a in axes if a != SEED_AXIS]
    done = results[results["status"] == "done"].copy()
    first = plan["stages"][0]
    first_id = f"{first['name']}_id"
    seg_keys = [a for a in keys if a in first["params"]]

    counts = results["status"].value_counts().to_dict()
    n_seeds = len(plan["axes"].get(SEED_AXIS, [None]))
    lines = [f"# Report: {plan['grid']}", ""]
    lines.append(
        "- Runs: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "failed", "running", "pending"))
        + f" (of {len(results)}). Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC."
    )
    if not done.empty:
        lines.append(f"- Code: {_code_versions(done)}.")
    if plan["fixed"]:
        fixed = ", ".join(f"{k}={_short(v)}" for k, v in plan["fixed"].items())
        lines.append(f"- Fixed settings: {fixed}.")
    lines.append(
        f"- Values: mean ± sample standard deviation over {n_seeds} seed(s); best per column in "
        "bold (↓: lower is better). Raw rows: [results.csv](results.csv)."
    )
    lines.append("")

    tables = []
    tracking = tracking_columns()
    if len(done):
        tables.append(
            (
                "Tracking",
                build_table(
                    "tracking",
                    aggregate(done, keys, [m.key for m in tracking if m.key in done]),
                    keys,
                    tracking,
                ),
            )
        )
        models = done.drop_duplicates(first_id) if len(plan["stages"]) > 1 else done
        tables.append(
            (
                "Segmentation",
                build_table(
                    "segmentation",
                    aggregate(
                        models, seg_keys, [m.key for m in SEGMENTATION_COLUMNS if m.key in models]
                    ),
                    seg_keys,
                    SEGMENTATION_COLUMNS,
                ),
            )
        )
    for title, table in tables:
        if not table.metrics:
            continue
        atomic_write_text(
            grid_dir / "tables" / f"{table.name}.tex", to_latex(table, f"{plan['grid']}: {title}")
        )
        lines += [
            f"## {title}",
            "",
            to_markdown(table),
            f"LaTeX (booktabs): [tables/{table.name}.tex](tables/{table.name}.tex)",
            "",
        ]

    saver = FigureSaver()
    try:
        lines += _figure_sections(saver, done, axes, plan, grid_dir, first_id)
    finally:
        saver.wait()  # every figure on disk before the pages that show them
    lines += _weights_section(done) + _failures_section(results)
    markdown = atomic_write_text(grid_dir / "report.md", "\n".join(lines).rstrip() + "\n")
    write_html_report(markdown)
    return markdown


def _figure_sections(
    saver: FigureSaver,
    done: pd.DataFrame,
    axes: list[str],
    plan: dict,
    grid_dir: Path,
    first_id: str,
) -> list[str]:
    """The propagation story and the Figures section; figures are handed to ``saver``."""
    lines = story_section(done, axes, plan["stages"][-1]["params"], grid_dir, plan["grid"], saver)
    context = FigureContext(done, axes, grid_dir, first_id)
    lines += ["## Figures", ""]
    for entry in sorted(FIGURES.entries(), key=lambda e: (e.obj.order, e.name)):
        name, title, fig = entry.name, entry.obj.title, entry.obj.draw(context)
        if fig is None:
            lines += [
                f"### {title}",
                "",
                "_not available: the runs lack the columns or images it needs._",
                "",
            ]
            continue
        saver.save(fig, grid_dir / "figures", name)
        lines += [
            f"### {title}",
            "",
            f"![{title}](figures/{name}.png)",
            "",
            f"PDF: [figures/{name}.pdf](figures/{name}.pdf)",
            "",
        ]
    return lines


def _short(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def _code_versions(done: pd.DataFrame) -> str:
    """Distinct code versions behind the runs: package version, commit, dirty flag."""
    versions = set()
    for version, commit, dirty in done[
        ["code.endobench", "code.git_commit", "code.git_dirty"]
    ].itertuples(index=False):
        text = f"endobench {version}"
        if isinstance(commit, str):
            text += f" @ {commit[:10]}" + (" (uncommitted changes)" if dirty is True else "")
        versions.add(text)
    return "; ".join(sorted(versions))


def _weights_section(done: pd.DataFrame) -> list[str]:
    cols = [
        c for c in ("backbone", "weights.name", "weights.source", "weights.sha256") if c in done
    ]
    if "weights.source" not in cols:
        return []
    rows = done[cols].drop_duplicates().astype(str).values.tolist()
    lines = ["## Weights", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _failures_section(results: pd.DataFrame) -> list[str]:
    failed = results[results["status"] == "failed"]
    if failed.empty:
        return []
    lines = ["## Failed runs", "", "| run | error |", "|---|---|"]
    for _, r in failed.iterrows():
        lines.append(
            f"| [{r['run_id']}]({RUNS_DIR}/{r['run_id']}/traceback.txt) | {str(r['error']).replace('|', '/')} |"
        )
    return lines + [""]
