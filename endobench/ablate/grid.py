"""Ablation grids: the YAML schema, its validation, expansion into runs, and stable run ids.

A grid file looks like::

    name: demo
    stages:                      # notebooks run in order for every run of the grid
      - name: train
        notebook: ../notebooks/02_train_segmentation.ipynb
        dir: checkpoints         # shared, content-addressed: results/<grid>/checkpoints/<id>/
      - name: track
        notebook: ../notebooks/03_propagate_track.ipynb
        inputs: {checkpoint: train/checkpoint.pt}   # notebook parameter <- file of an upstream stage
    axes:                        # every combination of these lists is one run
      backbone: [dinov2_vits14, resnet50]
      policy: [first, "every:5"]
    fixed: {epochs: 2}           # the same in every run
    exclude:                     # a run matching every key of any rule is dropped
      - {backbone: resnet50, policy: "every:5"}

Notebook paths are relative to the grid file. A run is the dict ``fixed | one combination of
axes``; its id is a short hash of its canonical JSON (``run_id``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from endobench.errors import UserError
from endobench.safe_yaml import YamlError, load_yaml_file

# Parameters the runner injects into every notebook; a grid may not set them.
RESERVED_PARAMS = frozenset({"run_dir"})
RUN_ID_LENGTH = 12
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class GridConfigError(UserError, ValueError):
    """A grid file is invalid; the message names the file, the field and what was expected."""


class StageSpec(BaseModel):
    """One notebook of the pipeline every run goes through."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN)
    notebook: str
    # Folder under results/<grid>/ holding this stage's outputs, one sub-folder per stage id.
    # The last stage always writes into runs/<run_id>/.
    dir: str | None = Field(default=None, pattern=_NAME_PATTERN)
    # notebook parameter -> "<upstream stage>" or "<upstream stage>/<file in its folder>"
    inputs: dict[str, str] = Field(default_factory=dict)


class GridConfig(BaseModel):
    """A validated grid file (``load_grid``); ``source`` is the file it was read from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN)
    description: str = ""
    stages: list[StageSpec] = Field(min_length=1)
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    kernel: str = "python3"
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("axes")
    @classmethod
    def _axes_are_non_empty_lists_without_duplicates(
        cls, axes: dict[str, list[Any]]
    ) -> dict[str, list[Any]]:
        for key, values in axes.items():
            if not values:
                raise ValueError(f"axis {key!r}: expected a non-empty list of values")
            seen = [canonical_json(v) for v in values]
            if len(set(seen)) != len(seen):
                raise ValueError(f"axis {key!r}: expected distinct values, got {values}")
        return axes

    @model_validator(mode="after")
    def _check_names(self) -> GridConfig:
        both = set(self.axes) & set(self.fixed)
        if both:
            raise ValueError(f"parameters {sorted(both)} are both in 'axes' and 'fixed'")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: expected distinct stage names, got {names}")
        for key in RESERVED_PARAMS & self.parameter_names:
            raise ValueError(f"parameter {key!r} is reserved: the runner sets it for every stage")
        earlier: set[str] = set()
        for stage in self.stages:
            for param, ref in stage.inputs.items():
                upstream = ref.split("/", 1)[0]
                if upstream not in earlier:
                    raise ValueError(
                        f"stages.{stage.name}.inputs.{param}: expected an earlier stage "
                        f"(one of {sorted(earlier)}) optionally followed by /<file>, got {ref!r}"
                    )
                if param in self.parameter_names:
                    raise ValueError(
                        f"stages.{stage.name}.inputs.{param}: also set in axes/fixed; "
                        "an input is filled in by the runner"
                    )
            earlier.add(stage.name)
        for i, rule in enumerate(self.exclude):
            unknown = set(rule) - self.parameter_names
            if not rule or unknown:
                raise ValueError(
                    f"exclude[{i}]: expected a non-empty mapping of grid parameters "
                    f"(from {sorted(self.parameter_names)}), unknown keys {sorted(unknown)}"
                )
        for key, value in self.fixed.items():
            try:
                canonical_json(value)
            except ValueError as err:
                raise ValueError(f"fixed.{key}: {err}") from err
        return self

    @property
    def parameter_names(self) -> set[str]:
        """Names of all parameters a run of this grid has."""
        return set(self.axes) | set(self.fixed)

    @property
    def base_dir(self) -> Path:
        """Folder that relative notebook paths are resolved against (the grid file's)."""
        return self.source.parent if self.source is not None else Path.cwd()

    def notebook_path(self, stage: StageSpec) -> Path:
        """Absolute path of a stage's notebook."""
        return (self.base_dir / stage.notebook).resolve()


def load_grid(path: str | Path) -> GridConfig:
    """Read and validate a grid YAML file; errors name the file and the offending field."""
    path = Path(path)
    if not path.exists():
        raise GridConfigError(
            f"{path}: grid file not found (resolved: {path.resolve()}, working directory "
            f"{Path.cwd()})"
        )
    try:
        raw = load_yaml_file(path)
    except YamlError as err:
        raise GridConfigError(str(err)) from None
    if not isinstance(raw, dict):
        raise GridConfigError(f"{path}: expected a mapping with 'name', 'stages', 'axes'")
    return parse_grid(raw, source=path)


def parse_grid(raw: dict[str, Any], source: str | Path | None = None) -> GridConfig:
    """Validate a grid given as a dict (``source``: the file it came from, for messages/paths)."""
    where = str(source) if source is not None else "<grid>"
    try:
        grid = GridConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in e['loc']) or '<root>'}': {e['msg']}"
            for e in err.errors()
        )
        raise GridConfigError(f"{where}: {problems}") from None
    grid.source = Path(source).resolve() if source is not None else None
    for stage in grid.stages:
        if not grid.notebook_path(stage).is_file():
            raise GridConfigError(
                f"{where}: field 'stages.{stage.name}.notebook': expected an existing notebook "
                f"(relative to the grid file), {grid.notebook_path(stage)} does not exist"
            )
    runs = expand_grid(grid)
    for i, rule in enumerate(grid.exclude):
        if not any(_matches(rule, run) for run in _all_combinations(grid)):
            raise GridConfigError(
                f"{where}: field 'exclude.{i}': rule {rule} matches no run (check the values)"
            )
    if not runs:
        raise GridConfigError(f"{where}: field 'exclude': every run of the grid is excluded")
    return grid


def _all_combinations(grid: GridConfig) -> list[dict[str, Any]]:
    keys = list(grid.axes)
    return [
        {**dict(zip(keys, combo, strict=True)), **grid.fixed}
        for combo in itertools.product(*(grid.axes[k] for k in keys))
    ]


def _matches(rule: dict[str, Any], run: dict[str, Any]) -> bool:
    return all(canonical_json(run.get(k)) == canonical_json(v) for k, v in rule.items())


def expand_grid(grid: GridConfig) -> list[dict[str, Any]]:
    """All runs of ``grid`` in axis order (first axis slowest), excluded ones dropped."""
    return [
        run for run in _all_combinations(grid) if not any(_matches(r, run) for r in grid.exclude)
    ]


def _normalise(value: Any) -> Any:
    """JSON-ready copy with floats made canonical: integral floats become ints (1.0 == 1)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    raise ValueError(f"expected a YAML scalar, list or mapping, got {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, ASCII, floats as shortest round-trip repr."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def run_id(params: dict[str, Any]) -> str:
    """Short stable id of a run: the first 12 hex digits of sha256(canonical JSON)."""
    digest = hashlib.sha256(canonical_json(params).encode("ascii")).hexdigest()
    return digest[:RUN_ID_LENGTH]
