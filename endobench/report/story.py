"""The propagation story: ground-truth keyframes (copy / forward / bidirectional) vs the model's.

Notebook 03 with ``reference: true`` tracks the same clip and keyframe policy with ground-truth
keyframes carried by copy, forward flow and bidirectional flow, next to the run's own pipeline
(keyframes segmented by the trained model); the report puts them in one table and one figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from endobench.io_utils import atomic_write_text
from endobench.propagation.summary import ReferenceMethod
from endobench.report.collect import aggregate
from endobench.report.columns import SEED_AXIS, STORY_COLUMNS
from endobench.report.figures import FigureSaver
from endobench.report.tables import build_table, to_latex, to_markdown

# Notebook 03 with ``reference: true`` writes summary.json "reference": {method: {label, J&F-Mean,
# keyframes_per_100, seconds_per_frame}}, flattened by the store to "reference.<method>.<key>".
REFERENCE_METHODS: tuple[str, ...] = get_args(ReferenceMethod)
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
    metric_keys = [m.key for m in STORY_COLUMNS]
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


def story_section(
    done: pd.DataFrame,
    axes: Sequence[str],
    track_params: Sequence[str],
    grid_dir: Path,
    grid: str,
    saver: FigureSaver,
) -> list[str]:
    """The "Propagation story" table + figure (files ``propagation_story.*``, handed to
    ``saver``); none without a reference in any run."""
    story = story_data(done, axes, track_params)
    if story.empty:
        return []
    track_keys = [a for a in axes if a != SEED_AXIS and a in track_params]
    table = build_table("propagation_story", story, [STORY_KEY, *track_keys], STORY_COLUMNS)
    title = "Propagation story"
    atomic_write_text(
        grid_dir / "tables" / f"{table.name}.tex", to_latex(table, f"{grid}: {title}")
    )
    saver.save(story_figure(story, track_keys), grid_dir / "figures", "propagation_story")
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
