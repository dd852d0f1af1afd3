"""Formatted tables of aggregated runs: Markdown (best in bold) and LaTeX booktabs.

:func:`build_table` formats the output of :func:`endobench.report.collect.aggregate` as
``mean ± std`` cells and marks the best rounded mean of each column (by the column's direction);
:func:`to_markdown` and :func:`to_latex` write it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from endobench.metrics.per_frame import TableColumn


@dataclass
class Table:
    """A formatted table: key columns, metric columns, cell texts and which cells are best."""

    name: str
    keys: list[str]
    metrics: list[TableColumn]
    rows: list[list[str]]  # key texts then "mean ± std" texts
    means: list[list[str]]  # rounded mean texts per metric (for LaTeX)
    stds: list[list[str | None]]
    best: list[list[bool]]


def build_table(
    name: str, agg: pd.DataFrame, keys: Sequence[str], metrics: Sequence[TableColumn]
) -> Table:
    """Format ``aggregate`` output; the best rounded mean of each metric column is marked."""
    metrics = [m for m in metrics if f"{m.key}_mean" in agg and agg[f"{m.key}_mean"].notna().any()]
    means = [[_fmt(r[f"{m.key}_mean"], m.fmt) for m in metrics] for _, r in agg.iterrows()]
    stds = [[_fmt_or_none(r[f"{m.key}_std"], m.fmt) for m in metrics] for _, r in agg.iterrows()]
    best = [[False] * len(metrics) for _ in means]
    for j, m in enumerate(metrics):
        # Compare what the reader sees: equal rounded values are equally best.
        shown = [float(row[j]) if row[j] != "–" else math.nan for row in means]
        finite = [v for v in shown if not math.isnan(v)]
        if len(finite) > 1:  # a lone value is not "best" of anything
            target = max(finite) if m.higher_is_better else min(finite)
            for i, v in enumerate(shown):
                best[i][j] = v == target
    rows = []
    for i, (_, r) in enumerate(agg.iterrows()):
        cells = [str(r[k]) for k in keys]
        for j in range(len(metrics)):
            cells.append(means[i][j] + (f" ± {stds[i][j]}" if stds[i][j] else ""))
        rows.append(cells)
    return Table(name, list(keys), metrics, rows, means, stds, best)


def _fmt(value: float, fmt: str) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, fmt)
    )


def _fmt_or_none(value: float, fmt: str) -> str | None:
    text = _fmt(value, fmt)
    return None if text == "–" else text


def _header(table: Table) -> list[str]:
    return table.keys + [m.label + ("" if m.higher_is_better else " ↓") for m in table.metrics]


def to_markdown(table: Table) -> str:
    """GitHub Markdown table; best cells in bold."""
    header = _header(table)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * len(table.keys) + ["---:"] * len(table.metrics)) + "|",
    ]
    for i, cells in enumerate(table.rows):
        out = cells[: len(table.keys)]
        for j, text in enumerate(cells[len(table.keys) :]):
            out.append(f"**{text}**" if table.best[i][j] else text)
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in a plain-text cell."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(table: Table, caption: str | None = None) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); best cells in ``\\mathbf``."""
    header = [
        latex_escape(h.replace(" ↓", "")) + (r" $\downarrow$" if h.endswith("↓") else "")
        for h in _header(table)
    ]
    spec = "l" * len(table.keys) + "r" * len(table.metrics)
    lines = []
    if caption:
        lines.append(f"% {caption}")
    lines += [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
    ]
    for i, cells in enumerate(table.rows):
        out = [latex_escape(c) for c in cells[: len(table.keys)]]
        for j in range(len(table.metrics)):
            mean, std = table.means[i][j], table.stds[i][j]
            if mean == "–":
                out.append("--")
                continue
            body = rf"{mean} \pm {std}" if std else mean
            out.append(rf"$\mathbf{{{body}}}$" if table.best[i][j] else f"${body}$")
        lines.append(" & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
