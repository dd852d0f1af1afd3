"""The report of a sweep: tables (Markdown, LaTeX booktabs, HTML), figures and the page.

``write_report(results/<grid>)`` (:mod:`endobench.report.page`) reads every run and writes
report.md, report.html, results.csv, ``tables/`` and ``figures/``. The modules, one job each:

- :mod:`~endobench.report.columns`: the columns of each table (label, direction, format);
- :mod:`~endobench.report.collect`: the runs' typed summaries and the mean ± std over seeds;
- :mod:`~endobench.report.tables`: Markdown and LaTeX tables, best values in bold;
- :mod:`~endobench.report.figures`: the figures, registered in ``endobench.registry.FIGURES``;
- :mod:`~endobench.report.story`: the propagation story (ground-truth vs model keyframes);
- :mod:`~endobench.report.page`: report.md; :mod:`~endobench.report.html`: report.html.

``write_report`` is imported on first use, so that reading the column definitions (e.g. from
:mod:`endobench.display`) does not load matplotlib and seaborn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["write_report"]


def __getattr__(name: str) -> Any:
    if name == "write_report":
        from endobench.report.page import write_report

        return write_report
    raise AttributeError(f"module 'endobench.report' has no attribute {name!r}")
