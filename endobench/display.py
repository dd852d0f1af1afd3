"""What a notebook shows a reader: plain rounded numbers, compact tables, a report whose links
resolve, and a one-line message instead of a traceback when a long cell is interrupted.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from endobench.report.columns import headline_columns

DECIMALS = 3
_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


def tidy(value: Any, decimals: int = DECIMALS) -> Any:
    """``value`` with numpy scalars and arrays made plain Python and floats rounded for display.

    Dicts, lists and tuples are converted element by element: ``{"kf": np.float64(12.5)}`` shows
    as ``{'kf': 12.5}``. NaN stays NaN.
    """
    if isinstance(value, Mapping):
        return {k: tidy(v, decimals) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(tidy(v, decimals) for v in value)
    if isinstance(value, np.ndarray):
        return tidy(value.tolist(), decimals)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value):
        return round(value, decimals)
    return value


def settings_table(config: BaseModel) -> pd.DataFrame:
    """The settings a pydantic config was given (one row each, column ``value``), not its repr."""
    values = config.model_dump(mode="json", exclude_unset=True)
    return pd.DataFrame(
        {"value": [_short(v) for v in values.values()]},
        index=pd.Index(list(values), name="setting"),
    )


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "–"
    return "–" if value is None else str(value)


def results_view(
    results: pd.DataFrame, settings: Sequence[str], decimals: int = DECIMALS
) -> pd.DataFrame:
    """One row per run: ``run_id``, ``status``, the ``settings`` that vary, headline metrics.

    Metrics are renamed to their report labels (``J&F``, ``Dice``, ...) and rounded to
    ``decimals``; metrics missing from every run are left out. The full frame is ``results``.
    """
    varying = [s for s in settings if s in results and results[s].astype(str).nunique() > 1]
    metrics = [m for m in headline_columns() if m.key in results and results[m.key].notna().any()]
    view = results[["run_id", "status", *varying, *(m.key for m in metrics)]].copy()
    for m in metrics:
        view[m.key] = pd.to_numeric(view[m.key], errors="coerce").round(decimals)
    return view.rename(columns={m.key: m.label for m in metrics}).set_index("run_id")


def relink_markdown(text: str, source_dir: str | Path, target_dir: str | Path) -> str:
    """Rewrite relative Markdown link and image targets written for ``source_dir`` so that they
    resolve from ``target_dir`` (POSIX separators); URLs, anchors and absolute paths are kept.
    """
    source, target = Path(source_dir).resolve(), Path(target_dir).resolve()

    def replace(match: re.Match[str]) -> str:
        head, url, tail = match.groups()
        if re.match(r"^([a-z][a-z0-9+.-]*:|/|#)", url, re.IGNORECASE):
            return match.group(0)
        moved = Path(os.path.relpath(source / url, target)).as_posix()
        return f"{head}{moved}{tail}"

    return _LINK.sub(replace, text)


def show_report(report: str | Path, cwd: str | Path | None = None) -> Any:
    """``report.md`` as an IPython Markdown object whose figures and links resolve from the
    kernel's working directory (JupyterLab resolves a notebook's relative links from its folder).
    """
    from IPython.display import Markdown

    report = Path(report)
    text = report.read_text(encoding="utf-8")
    return Markdown(relink_markdown(text, report.parent, cwd if cwd is not None else Path.cwd()))


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that IPython shows as its one-line message, without a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


@contextlib.contextmanager
def one_line_interrupt(message: str) -> Iterator[None]:
    """Turn Kernel > Interrupt (KeyboardInterrupt) inside the block into one line: ``message``.

    The cell still stops with an error, so "Run All" stops there too.
    """
    try:
        yield
    except KeyboardInterrupt as err:
        if isinstance(err, Interrupted):
            raise
        raise Interrupted(message) from None
