"""Paper-ready report of a sweep: tables (Markdown + LaTeX booktabs) and seaborn figures.

``write_report(results/<grid>)`` reads every run through ``endobench.ablate.load_results`` and
writes, into the sweep folder::

    report.md                 tables + figures, the page to read
    report.html               the same page, self-contained (figures embedded, sortable tables)
    results.csv               the tidy results store (one row per run)
    tables/<name>.tex         LaTeX booktabs tables, best value per column in bold
    figures/<name>.png|.pdf   cost/accuracy, Dice per augmentation, stability vs J&F, strips,
                              and the propagation story (ground-truth vs model keyframes) when the
                              tracking runs carry a ``reference`` (notebook 03 ``reference: true``)

Numbers are the mean +- sample standard deviation (ddof = 1) over the ``seed`` axis; every
other axis is a table row key. Only runs with status ``done`` enter tables and figures.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from endobench.ablate.plan import RUNS_DIR
from endobench.ablate.run_files import QUALITATIVE_IMAGE
from endobench.ablate.store import load_plan, load_results
from endobench.io_utils import atomic_write_bytes, atomic_write_text
from endobench.report_html import write_html_report

SEED_AXIS = "seed"


@dataclass(frozen=True)
class ReportMetric:
    """A summary.json key shown in the tables: label, direction and number format."""

    key: str
    label: str
    higher_is_better: bool = True
    fmt: str = ".3f"


# Tracking numbers come from the last stage (03_propagate_track), segmentation ones from the
# first (02_train_segmentation); a metric missing from every run is simply not shown.
TRACKING_METRICS = (
    ReportMetric("J&F-Mean", "J&F"),
    ReportMetric("J-Mean", "J"),
    ReportMetric("F-Mean", "F"),
    ReportMetric("J-Decay", "J decay", higher_is_better=False),
    ReportMetric("T-Mean", "T (stability)", higher_is_better=False),
    ReportMetric("keyframes_per_100", "keyframes/100 fr.", higher_is_better=False, fmt=".1f"),
    ReportMetric("seconds_per_frame", "s/frame", higher_is_better=False, fmt=".3f"),
)
SEGMENTATION_METRICS = (
    ReportMetric("dice", "Dice"),
    ReportMetric("iou", "IoU"),
    ReportMetric("hd95", "HD95 (px)", higher_is_better=False, fmt=".1f"),
)


def aggregate(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and sample std (ddof=1) of ``metrics`` per group of ``by`` (first-seen order).

    Returns columns ``by``, ``n`` (rows per group), ``<metric>_mean``, ``<metric>_std``
    (NaN for a group of one).
    """
    by = list(by)
    grouped = df.groupby(by, sort=False, dropna=False) if by else [((), df)]
    rows = []
    for key, group in grouped:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True)) | {"n": len(group)}
        for m in metrics:
            values = pd.to_numeric(group[m], errors="coerce").dropna()
            row[f"{m}_mean"] = values.mean() if len(values) else math.nan
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Table:
    """A formatted table: key columns, metric columns, cell texts and which cells are best."""

    name: str
    keys: list[str]
    metrics: list[ReportMetric]
    rows: list[list[str]]  # key texts then "mean ± std" texts
    means: list[list[str]]  # rounded mean texts per metric (for LaTeX)
    stds: list[list[str | None]]
    best: list[list[bool]]


def build_table(
    name: str, agg: pd.DataFrame, keys: Sequence[str], metrics: Sequence[ReportMetric]
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


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def _save_figure(fig: plt.Figure, figures_dir: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, dpi=150, bbox_inches="tight")
        paths.append(atomic_write_bytes(figures_dir / f"{name}.{ext}", buffer.getvalue()))
    plt.close(fig)
    return paths


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


# ---------------------------------------------------------------------------------------------
# The propagation story: ground-truth keyframes (copy / forward / bidirectional) vs the model's
# ---------------------------------------------------------------------------------------------
# Notebook 03 with ``reference: true`` writes summary.json "reference": {method: {label, J&F-Mean,
# keyframes_per_100, seconds_per_frame}}, flattened by the store to "reference.<method>.<key>".
REFERENCE_METHODS = ("copy", "forward", "bidirectional")
STORY_METRICS = (
    ReportMetric("J&F-Mean", "J&F"),
    ReportMetric("keyframes_per_100", "keyframes/100 fr.", higher_is_better=False, fmt=".1f"),
    ReportMetric("seconds_per_frame", "s/frame", higher_is_better=False, fmt=".3f"),
)
STORY_KEY = "keyframes"  # the label column of the story table and the figure's legend


def _model_label(row: pd.Series, setting_keys: Sequence[str]) -> str:
    """E.g. "model keyframes (random-init dinov2_vits14, endoscopic aug)": the keyframe source,
    then each setting (the backbone prefixed by its weights' origin)."""
    source = row.get("weights.source")
    init = (
        None
        if not isinstance(source, str)
        else "random-init"
        if source == "random-init"
        else "pretrained"
    )
    parts = []
    for key in setting_keys:
        value = str(row[key])
        if key == "augmentation":
            value = "no aug" if value == "none" else f"{value} aug"
        elif key == "backbone" and init:
            value, init = f"{init} {value}", None
        parts.append(value)
    parts = ([init] if init else []) + parts
    keyframes = row.get("keyframe_source")
    keyframes = keyframes if isinstance(keyframes, str) else "model"
    return f"{keyframes} keyframes" + (f" ({', '.join(parts)})" if parts else "")


def story_data(
    done: pd.DataFrame, axes: Sequence[str], track_params: Sequence[str]
) -> pd.DataFrame:
    """One row per (method, policy setting): label, the story metrics' mean and std.

    Ground-truth-keyframe rows depend only on the tracking stage's axes (``track_params``), so
    runs that differ only in training (backbone, augmentation) count once; the model-keyframe rows
    are the runs themselves, one row per setting of every axis but ``seed``. Ground-truth rows come
    first (copy, forward, bidirectional), then the model's; an empty frame if no run has a
    reference.
    """
    keys = [a for a in axes if a != SEED_AXIS]
    track_keys = [a for a in keys if a in track_params]
    metric_keys = [m.key for m in STORY_METRICS]
    parts = []
    for method in REFERENCE_METHODS:
        cols = {f"reference.{method}.{k}": k for k in ["label", *metric_keys]}
        if f"reference.{method}.J&F-Mean" not in done:
            continue
        ref = done[[*track_keys, *cols]].rename(columns=cols).dropna(subset=["J&F-Mean"])
        # The same clip and policy tracked again per trained model: one row, its seconds averaged.
        exact = [*track_keys, "label", "J&F-Mean", "keyframes_per_100"]
        exact = [c for c in exact if c in ref]
        ref = ref.groupby(exact, sort=False, dropna=False, as_index=False).mean(numeric_only=True)
        for label, group in ref.groupby("label", sort=False):
            agg = aggregate(group, track_keys, [k for k in metric_keys if k in group])
            parts.append(agg.assign(**{STORY_KEY: label}))
    if not parts:
        return pd.DataFrame()
    setting_keys = [k for k in keys if k not in track_keys]
    model = done.copy()
    model[STORY_KEY] = [_model_label(r, setting_keys) for _, r in model.iterrows()]
    parts.append(aggregate(model, [STORY_KEY, *track_keys], [k for k in metric_keys if k in model]))
    story = pd.concat(parts, ignore_index=True)
    return story[
        [STORY_KEY, *track_keys, *[c for c in story if c not in track_keys and c != STORY_KEY]]
    ]


def story_figure(story: pd.DataFrame, track_keys: Sequence[str]) -> plt.Figure:
    """J&F against keyframes per 100 frames: one line per keyframe source and propagation
    (ground truth solid, model dashed), through its policies by cost; points labelled by policy."""
    data = story.assign(
        kind=["ground truth" if k.startswith("gt ") else "model" for k in story[STORY_KEY]]
    )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(
        data=data.sort_values("keyframes_per_100_mean"),
        x="keyframes_per_100_mean",
        y="J&F-Mean_mean",
        hue=STORY_KEY,
        hue_order=list(dict.fromkeys(story[STORY_KEY])),  # the table's order: gt first
        style="kind",
        style_order=["ground truth", "model"],
        estimator=None,
        markers=True,
        sort=False,
        ax=ax,
    )
    if "policy" in track_keys:
        for _, r in (
            data[data["kind"] == "ground truth"].drop_duplicates("policy", keep="last").iterrows()
        ):
            ax.annotate(
                str(r["policy"]),
                (r["keyframes_per_100_mean"], r["J&F-Mean_mean"]),
                fontsize=7,
                xytext=(3, -9),
                textcoords="offset points",
            )
    ax.set(
        xlabel="keyframes per 100 frames (annotation / segmentation cost)",
        ylabel="J&F (mean)",
        title="Propagation story: ground-truth vs model keyframes",
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
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


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
def write_report(grid_dir: str | Path) -> Path:
    """Write ``report.md`` and ``report.html`` (+ tables, figures, results.csv) for the sweep in
    ``grid_dir``; returns the path of report.md."""
    grid_dir = Path(grid_dir)
    plan = load_plan(grid_dir)
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
    if len(done):
        tables.append(
            (
                "Tracking",
                build_table(
                    "tracking",
                    aggregate(done, keys, [m.key for m in TRACKING_METRICS if m.key in done]),
                    keys,
                    TRACKING_METRICS,
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
                        models, seg_keys, [m.key for m in SEGMENTATION_METRICS if m.key in models]
                    ),
                    seg_keys,
                    SEGMENTATION_METRICS,
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

    lines += _story_section(done, axes, plan["stages"][-1]["params"], grid_dir, plan["grid"])

    figures = {
        "cost_accuracy": ("J&F vs keyframes per 100 frames", cost_accuracy_figure(done, axes)),
        "dice_by_augmentation": (
            "Dice per augmentation preset and backbone",
            dice_figure(done, first_id),
        ),
        "stability_vs_jf": ("Temporal stability vs J&F", stability_figure(done)),
        "qualitative": ("Qualitative overlay strips", qualitative_figure(done, grid_dir, axes)),
    }
    lines += ["## Figures", ""]
    for name, (title, fig) in figures.items():
        if fig is None:
            lines += [
                f"### {title}",
                "",
                "_not available: the runs lack the columns or images it needs._",
                "",
            ]
            continue
        _save_figure(fig, grid_dir / "figures", name)
        lines += [
            f"### {title}",
            "",
            f"![{title}](figures/{name}.png)",
            "",
            f"PDF: [figures/{name}.pdf](figures/{name}.pdf)",
            "",
        ]

    lines += _weights_section(done) + _failures_section(results)
    markdown = atomic_write_text(grid_dir / "report.md", "\n".join(lines).rstrip() + "\n")
    write_html_report(markdown)
    return markdown


def _story_section(
    done: pd.DataFrame, axes: Sequence[str], track_params: Sequence[str], grid_dir: Path, grid: str
) -> list[str]:
    """The "Propagation story" table + figure (files ``propagation_story.*``); none without a
    reference in any run."""
    story = story_data(done, axes, track_params)
    if story.empty:
        return []
    track_keys = [a for a in axes if a != SEED_AXIS and a in track_params]
    table = build_table("propagation_story", story, [STORY_KEY, *track_keys], STORY_METRICS)
    title = "Propagation story"
    atomic_write_text(
        grid_dir / "tables" / f"{table.name}.tex", to_latex(table, f"{grid}: {title}")
    )
    _save_figure(story_figure(story, track_keys), grid_dir / "figures", "propagation_story")
    return [
        f"## {title}",
        "",
        "Ground-truth keyframes (an annotator's masks, the semi-supervised protocol) carried to "
        "the frames in between by *copy* (repeat the last keyframe), *forward* optical flow, or "
        "*bidirectional* flow (forward from one keyframe and backward from the next, fused), next "
        "to this sweep's pipeline, whose keyframes the trained model segments. Same clip, same "
        "keyframe policies. The ground-truth curves show what propagation buys per keyframe; the "
        "model's keyframes are only as good as its segmenter (a random-init backbone's are wrong, "
        "so more of them do not raise J&F).",
        "",
        to_markdown(table),
        f"LaTeX (booktabs): [tables/{table.name}.tex](tables/{table.name}.tex)",
        "",
        "![J&F vs keyframes per 100 frames: ground-truth vs model keyframes]"
        "(figures/propagation_story.png)",
        "",
        "PDF: [figures/propagation_story.pdf](figures/propagation_story.pdf)",
        "",
    ]


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
