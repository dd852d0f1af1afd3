"""The figures of the report, each registered in :data:`endobench.registry.FIGURES`.

A figure is a :class:`ReportFigure`: its title and a function that draws it from the finished
runs (:class:`FigureContext`), or returns None when the runs lack what it needs (the page then
says so). The page shows them in ``order``, each as ``figures/<name>.png`` and ``.pdf``.
Adding one is one file::

    from endobench.registry import FIGURES
    from endobench.report.figures import FigureContext, ReportFigure

    def seconds_figure(ctx: FigureContext) -> plt.Figure | None: ...

    FIGURES.register("seconds", ReportFigure("Seconds per frame", seconds_figure, order=50))
"""

from __future__ import annotations

import io
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from endobench.ablate.plan import RUNS_DIR
from endobench.ablate.run_files import QUALITATIVE_IMAGE
from endobench.io_utils import atomic_write_bytes
from endobench.registry import FIGURES
from endobench.report.collect import aggregate
from endobench.report.columns import SEED_AXIS


@dataclass(frozen=True)
class FigureContext:
    """What a figure may draw from: the finished runs (one row each, the results store's
    columns), the grid's axes, the sweep folder and the first stage's id column."""

    done: pd.DataFrame
    axes: Sequence[str]
    grid_dir: Path
    first_stage_id: str


@dataclass(frozen=True)
class ReportFigure:
    """A figure of the report: ``title``, ``draw(context) -> Figure | None``, and its place in
    the Figures section (``order``, ascending; then the registered name)."""

    title: str
    draw: Callable[[FigureContext], plt.Figure | None]
    order: int = 100


#: The files of a figure: ``figures/<name>.<format>``.
FIGURE_FORMATS = ("png", "pdf")


def write_figure_file(fig: plt.Figure, figures_dir: Path, name: str, fmt: str) -> Path:
    """``figures_dir/<name>.<fmt>`` (150 dpi, tight bounding box), written atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight")
    return atomic_write_bytes(figures_dir / f"{name}.{fmt}", buffer.getvalue())


def save_figure(fig: plt.Figure, figures_dir: Path, name: str) -> list[Path]:
    """``figures_dir/<name>.png`` and ``.pdf``, written atomically; closes ``fig``."""
    paths = [write_figure_file(fig, figures_dir, name, fmt) for fmt in FIGURE_FORMATS]
    plt.close(fig)
    return paths


@dataclass
class FigureSaver:
    """Writes each file of a figure (:data:`FIGURE_FORMATS`) in a forked child process, at most
    ``workers`` at a time, so the page draws its next figure while the last ones are encoded
    (PNG and PDF encoding is most of a report's time; a figure's PNG and PDF are written side by
    side). The files are the bytes :func:`save_figure` writes in this process. ``wait()`` waits
    for every child and raises :class:`RuntimeError` naming the files that were not written.
    Without ``os.fork`` (Windows), or with ``workers=1``, figures are written in this process.
    """

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    _children: dict[int, str] = field(default_factory=dict)  # pid -> file name
    _failed: list[str] = field(default_factory=list)

    def save(self, fig: plt.Figure, figures_dir: Path, name: str) -> None:
        """Write ``figures_dir/<name>.png`` and ``.pdf`` (in children when possible); closes
        ``fig``."""
        if self.workers <= 1 or not hasattr(os, "fork"):
            save_figure(fig, figures_dir, name)
            return
        for fmt in FIGURE_FORMATS:
            while len(self._children) >= self.workers:
                self._reap_oldest()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: write, then leave without running the parent's exit handlers
                code = 0
                try:
                    write_figure_file(fig, figures_dir, name, fmt)
                except BaseException:
                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stderr.flush()
                    os._exit(code)
            self._children[pid] = f"{name}.{fmt}"
        plt.close(fig)

    def wait(self) -> None:
        """Wait for every figure being written; raise if one of them was not."""
        while self._children:
            self._reap_oldest()
        failed, self._failed = self._failed, []
        if failed:
            raise RuntimeError(f"figures not written (see the traceback above): {failed}")

    def _reap_oldest(self) -> None:
        # waitpid on our own pids only: the process may have other children (e.g. Dask's)
        pid = next(iter(self._children))
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            self._failed.append(self._children[pid])
        del self._children[pid]


def cost_accuracy_figure(done: pd.DataFrame, axes: Sequence[str]) -> plt.Figure | None:
    """J&F against keyframes per 100 frames, one line per backbone (and other setting)."""
    if not {"J&F-Mean", "keyframes_per_100", "backbone"} <= set(done):
        return None
    # A fixed backbone or policy is a column but no axis: still group by it (one value).
    by = [a for a in axes if a != SEED_AXIS]
    by += [c for c in ("backbone", "policy") if c in done and c not in by]
    agg = aggregate(done, by, ["J&F-Mean", "keyframes_per_100"])
    # One line per backbone and setting of the other axes, through its policies by cost.
    line_keys = [a for a in by if a not in ("policy", "backbone")]
    if line_keys:
        agg["setting"] = agg[line_keys].astype(str).agg(", ".join, axis=1)
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(
        data=agg.sort_values("keyframes_per_100_mean"),
        x="keyframes_per_100_mean",
        y="J&F-Mean_mean",
        hue="backbone",
        style="setting" if line_keys else None,
        estimator=None,
        markers=True,
        sort=False,
        ax=ax,
    )
    ax.errorbar(
        agg["keyframes_per_100_mean"],
        agg["J&F-Mean_mean"],
        xerr=agg["keyframes_per_100_std"].fillna(0),
        yerr=agg["J&F-Mean_std"].fillna(0),
        fmt="none",
        ecolor="0.6",
        elinewidth=0.8,
    )
    if "policy" in agg:
        for _, r in agg.drop_duplicates(["policy", "backbone"]).iterrows():
            ax.annotate(
                str(r["policy"]),
                (r["keyframes_per_100_mean"], r["J&F-Mean_mean"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set(xlabel="keyframes per 100 frames (cost)", ylabel="J&F (mean)", title="Cost / accuracy")
    return fig


def dice_figure(done: pd.DataFrame, first_stage_id: str) -> plt.Figure | None:
    """Segmentation Dice per augmentation preset (x) and backbone (hue), error bar = std."""
    if not {"dice", "augmentation", "backbone"} <= set(done):
        return None
    models = done.drop_duplicates(first_stage_id) if first_stage_id in done else done
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.barplot(data=models, x="augmentation", y="dice", hue="backbone", errorbar="sd", ax=ax)
    ax.set(xlabel="augmentation preset", ylabel="Dice (validation)", title="Dice per augmentation")
    return fig


def stability_figure(done: pd.DataFrame) -> plt.Figure | None:
    """Temporal stability T (lower is steadier) against J&F, one point per run."""
    if not {"J&F-Mean", "T-Mean"} <= set(done) or done["T-Mean"].isna().all():
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.scatterplot(
        data=done,
        x="J&F-Mean",
        y="T-Mean",
        hue="backbone" if "backbone" in done else None,
        style="policy" if "policy" in done else None,
        ax=ax,
    )
    ax.set(xlabel="J&F (mean)", ylabel="T (lower is more stable)", title="Stability vs accuracy")
    return fig


def qualitative_figure(
    done: pd.DataFrame, grid_dir: Path, axes: Sequence[str], max_rows: int = 12
) -> plt.Figure | None:
    """The overlay strips the tracking notebook saved, one row per setting (first seed)."""
    by = [a for a in axes if a != SEED_AXIS]
    picks = done.drop_duplicates(by) if by else done.head(1)
    strips = []
    for _, r in picks.iterrows():
        path = grid_dir / RUNS_DIR / r["run_id"] / QUALITATIVE_IMAGE
        if path.is_file():
            strips.append((", ".join(f"{a}={r[a]}" for a in by), plt.imread(path)))
    if not strips:
        return None
    strips = strips[:max_rows]
    # Each strip at its own aspect ratio (a ground-truth row above the predictions doubles its
    # height), all at one width, plus room for its title.
    width = min(12.0, max(6.0, 1.6 * max(s.shape[1] / s.shape[0] for _, s in strips)))
    heights = [width * s.shape[0] / s.shape[1] + 0.3 for _, s in strips]
    fig, axs = plt.subplots(
        len(strips), 1, figsize=(width, sum(heights)), squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for ax, (label, image) in zip(axs[:, 0], strips, strict=True):
        ax.imshow(image)
        ax.set_title(label, fontsize=8, loc="left")
        ax.axis("off")
    fig.tight_layout()
    return fig


def _register(
    name: str, title: str, draw: Callable[[FigureContext], plt.Figure | None], order: int
) -> None:
    FIGURES.register(name, ReportFigure(title, draw, order), description=title)


_register(
    "cost_accuracy",
    "J&F vs keyframes per 100 frames",
    lambda c: cost_accuracy_figure(c.done, c.axes),
    10,
)
_register(
    "dice_by_augmentation",
    "Dice per augmentation preset and backbone",
    lambda c: dice_figure(c.done, c.first_stage_id),
    20,
)
_register("stability_vs_jf", "Temporal stability vs J&F", lambda c: stability_figure(c.done), 30)
_register(
    "qualitative",
    "Qualitative overlay strips",
    lambda c: qualitative_figure(c.done, c.grid_dir, c.axes),
    40,
)
