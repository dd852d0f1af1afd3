"""Metrics: region (J, Dice), boundary (F), DAVIS statistics and protocols, Hausdorff, temporal.

Pure functions take ``H x W`` masks (numpy or torch; bool or nonzero = inside) and return
floats; :func:`evaluate_sequence` scores whole videos into tidy pandas rows and
:func:`summarize` turns them into the DAVIS table. Definitions: ``docs/METRICS.md``.
"""

from endobench.metrics.boundary import (
    DEFAULT_BOUND_TH,
    bound_pixels,
    boundary_f,
    boundary_map,
    boundary_prf,
    disk,
    jaccard_and_boundary,
    jaccard_and_boundary_per_id,
)
from endobench.metrics.davis import (
    MAX_PROPOSALS,
    PROTOCOLS,
    db_statistics,
    decay_bin_edges,
    hungarian_match,
    object_ids,
    scored_frames,
)
from endobench.metrics.evaluate import (
    DAVIS_COLUMNS,
    evaluate_clip,
    evaluate_sequence,
    object_statistics,
    parse_metrics,
    summarize,
)
from endobench.metrics.hausdorff import (
    HD95_DEFINITIONS,
    directed_surface_distances,
    hausdorff,
    hd95,
    surface,
)
from endobench.metrics.region import dice, jaccard
from endobench.metrics.stability import temporal_stability_t
from endobench.metrics.temporal_consistency import flicker_rate, flow_warped_consistency

__all__ = [
    "DAVIS_COLUMNS",
    "DEFAULT_BOUND_TH",
    "HD95_DEFINITIONS",
    "MAX_PROPOSALS",
    "PROTOCOLS",
    "bound_pixels",
    "boundary_f",
    "boundary_map",
    "boundary_prf",
    "db_statistics",
    "decay_bin_edges",
    "dice",
    "directed_surface_distances",
    "disk",
    "evaluate_clip",
    "evaluate_sequence",
    "flicker_rate",
    "flow_warped_consistency",
    "hausdorff",
    "hd95",
    "hungarian_match",
    "jaccard",
    "jaccard_and_boundary",
    "jaccard_and_boundary_per_id",
    "object_ids",
    "object_statistics",
    "parse_metrics",
    "scored_frames",
    "summarize",
    "surface",
    "temporal_stability_t",
]
