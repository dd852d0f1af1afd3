"""`endobench report results/<grid>`: tables and figures of a sweep into report.md."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``endobench report``."""
    parser = subparsers.add_parser(
        "report",
        help="write report.md (tables, LaTeX, figures) for a sweep folder",
        description="Collect every run of a sweep into tables (Markdown, LaTeX booktabs) and "
        "seaborn figures (PNG, PDF); writes GRID_DIR/report.md.",
    )
    parser.add_argument("grid_dir", type=Path, help="sweep folder, e.g. results/demo")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report; a folder that is not a sweep is a UserError (exit code 2)."""
    from endobench.report import write_report

    print(write_report(args.grid_dir))
    return 0
