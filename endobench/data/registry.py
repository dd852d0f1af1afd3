"""The ``datasets.yaml`` registry: load, validate and open named datasets.

Shape of the file (every field but ``format`` and ``root`` is optional)::

    datasets:
      my-davis: {format: davis, root: /data/DAVIS}
      kvasir-seg:
        format: kvasir
        root: ${ENDOBENCH_DATA:-data}/Kvasir-SEG   # env expansion; relative to this file
        splits: {val: [cju0qkwl35piu0993l0dewei2]} # names, or a text file under the root
        classes: {1: polyp}                         # override the reader's class names
        target: {classes: {polyp: [polyp]}}         # select / merge classes (see targets.py)
        fps: 25                                     # override the reader's frame rate
        threshold: 127                              # any other key is a reader option

Which file is used: ``load_registry(path)`` > ``$ENDOBENCH_DATASETS`` > ``./datasets.yaml`` >
the repository's top-level ``datasets.yaml`` (editable installs) > a built-in registry holding
only ``synthetic``. ``synthetic`` is always available, even when a file does not list it.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from endobench.data.clip import Clip
from endobench.data.dataset import Dataset, OnError
from endobench.data.errors import DataError, Problem
from endobench.data.readers import SYNTHETIC_FORMAT
from endobench.data.readers.base import ClipSpec, ReaderOptions, ScanResult, build_clips
from endobench.data.readers.synthetic import (
    SyntheticOptions,
    open_synthetic,
    route_synthetic_override,
)
from endobench.data.targets import TargetSpec, build_label_lut
from endobench.errors import UserError
from endobench.registry import READERS
from endobench.safe_yaml import YamlError, load_yaml_file

ENV_VAR = "ENDOBENCH_DATASETS"
BUILTIN_ENTRIES: dict[str, dict[str, Any]] = {
    "synthetic": {
        "format": SYNTHETIC_FORMAT,
        "description": "built-in procedural endoscopic video (no files needed)",
    }
}
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RegistryError(UserError, ValueError):
    """The registry file or one of its entries is invalid; the message names file, dataset, field."""


class DatasetEntry(BaseModel):
    """One ``datasets:`` entry. Keys not listed here are options of the format's reader."""

    model_config = ConfigDict(extra="allow")

    format: str
    root: str | None = None
    description: str = ""
    splits: dict[str, list[str] | str] = Field(default_factory=dict)
    classes: dict[int, str] | None = None
    target: TargetSpec | None = None
    fps: float | None = Field(None, gt=0)

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        return READERS.check(value, "format")

    @field_validator("classes")
    @classmethod
    def _class_ids(cls, value: dict[int, str] | None) -> dict[int, str] | None:
        if value is not None:
            bad = [k for k in value if not 1 <= k <= 254]
            if bad:
                raise ValueError(f"class ids {bad} outside 1..254 (0 = background, 255 = void)")
        return value

    def options(self) -> dict[str, Any]:
        """The reader-specific keys of this entry."""
        return dict(self.model_extra or {})


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasets: dict[str, dict[str, Any]]


def expand_env(text: str, where: str) -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}`` and a leading ``~``; unset VAR raises."""

    def replace(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        value = os.environ.get(var)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise RegistryError(
                    f"{where}: environment variable {var} is not set; set it or write "
                    f"${{{var}:-default}}"
                )
            return default
        return value

    return os.path.expanduser(_ENV_RE.sub(replace, text))


def _format_validation(exc: ValidationError, where: str, prefix: tuple = ()) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (*prefix, *err["loc"])) or "(entry)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        got = err.get("input")
        shown = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {got!r:.80})"
        lines.append(f"{where}: field {loc}: {msg}{shown}")
    return "; ".join(lines)


class Registry:
    """Named dataset entries from one registry file (plus the built-in ``synthetic``)."""

    def __init__(self, raw_entries: Mapping[str, Mapping[str, Any]], path: Path | None) -> None:
        self.path = path
        self.base_dir = path.parent if path is not None else Path.cwd()
        self._raw: dict[str, dict[str, Any]] = {k: dict(v) for k, v in raw_entries.items()}
        for name, entry in BUILTIN_ENTRIES.items():
            self._raw.setdefault(name, dict(entry))
        self._entries = {name: self._validate(name, raw) for name, raw in self._raw.items()}

    def __repr__(self) -> str:
        return (
            f"Registry(path={str(self.path) if self.path else '<built-in>'}, names={self.names()})"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    @property
    def source(self) -> str:
        """The registry file, or '<built-in>'."""
        return str(self.path) if self.path is not None else "<built-in>"

    def _where(self, name: str) -> str:
        return f"{self.source}: dataset {name!r}"

    def _validate(self, name: str, raw: Mapping[str, Any]) -> DatasetEntry:
        where = self._where(name)
        if not isinstance(raw, Mapping):
            raise RegistryError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
        try:
            entry = DatasetEntry.model_validate(dict(raw))
        except ValidationError as exc:
            raise RegistryError(_format_validation(exc, where)) from None
        options_model = READERS.get(entry.format).options or ReaderOptions
        try:
            options_model.model_validate(entry.options())
        except ValidationError as exc:
            allowed = sorted({*DatasetEntry.model_fields, *options_model.model_fields})
            raise RegistryError(
                _format_validation(exc, where)
                + f"; fields allowed for format {entry.format!r}: {', '.join(allowed)}"
            ) from None
        if entry.format != SYNTHETIC_FORMAT and not entry.root:
            raise RegistryError(f"{where}: field root: required for format {entry.format!r}")
        return entry

    def names(self) -> list[str]:
        """Dataset names in file order (built-ins last when the file does not list them)."""
        return list(self._entries)

    def entry(self, name: str) -> DatasetEntry:
        """The validated entry of ``name``; RegistryError listing the known names otherwise."""
        if name not in self._entries:
            raise RegistryError(
                f"{self.source}: no dataset named {name!r}; known: {', '.join(self.names())}"
            )
        return self._entries[name]

    def root_of(self, name: str, entry: DatasetEntry | None = None) -> Path | None:
        """The dataset root with env variables expanded, relative paths resolved to the file."""
        entry = entry or self.entry(name)
        if entry.root is None:
            return None
        root = Path(expand_env(entry.root, f"{self._where(name)}: field root"))
        return (root if root.is_absolute() else self.base_dir / root).resolve()

    def open(
        self,
        name: str,
        split: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        on_error: OnError = "raise",
        progress: bool | None = None,
    ) -> Dataset:
        """Open dataset ``name`` (optionally one split), reading no image yet.

        ``overrides`` replace entry fields (for ``synthetic`` also generator fields such as
        ``num_frames``). ``on_error="skip"`` reads every frame once, drops bad ones and
        reports them in ``Dataset.problems`` with one warning; "raise" (default) raises
        `DataError` for the first bad file met. ``progress`` forces the tqdm bar on or off.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}; expected 'raise' or 'skip'")
        entry = self.entry(name)
        if overrides:
            entry = self._with_overrides(name, entry, overrides)
        where = self._where(name)
        if entry.format == SYNTHETIC_FORMAT:
            dataset = open_synthetic(
                name, SyntheticOptions.model_validate(entry.options()), entry.target,
                RegistryError, where,
            )  # fmt: skip
            return _select_synthetic_split(dataset, entry, split, where)
        return self._open_files(name, entry, split, on_error, progress)

    def _with_overrides(
        self, name: str, entry: DatasetEntry, overrides: Mapping[str, Any]
    ) -> DatasetEntry:
        raw = copy.deepcopy(self._raw[name])
        for key, value in overrides.items():
            if entry.format == SYNTHETIC_FORMAT and key not in DatasetEntry.model_fields:
                path = route_synthetic_override(key)
            else:
                path = (key,)
            node = raw
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        where = f"{self._where(name)} (with overrides {dict(overrides)})"
        try:
            return self._validate(name, raw)
        except RegistryError as exc:
            raise RegistryError(str(exc).replace(self._where(name), where, 1)) from None

    def _open_files(
        self,
        name: str,
        entry: DatasetEntry,
        split: str | None,
        on_error: OnError,
        progress: bool | None,
    ) -> Dataset:
        where = self._where(name)
        root = self.root_of(name, entry)
        assert root is not None  # _validate requires a root for file formats
        if not root.is_dir():
            raise DataError(root, f"dataset root folder not found ({where}, field root)")
        reader_entry = READERS.get(entry.format)
        options = (reader_entry.options or ReaderOptions).model_validate(entry.options())
        reader = reader_entry.obj(root, options)
        scan = reader.scan()
        if split is not None:
            scan = _select_split(scan, self._split_names(name, entry, root, split), where, split)
        if scan.problems and on_error == "raise":
            more = len(scan.problems) - 1
            suffix = f" (and {more} more problem(s); run `endobench datasets check {name}`)"
            first = scan.problems[0]
            raise DataError(first.path, first.message + (suffix if more else ""))
        if not any(spec.frames for spec in scan.clips):
            raise DataError(root, f"no frames found for dataset {name!r}")
        source_classes = entry.classes or reader.source_classes()
        try:
            lut, classes = build_label_lut(source_classes, entry.target)
        except ValueError as exc:
            raise RegistryError(f"{where}: field target: {exc}") from None
        object_classes = _union_clip_classes(scan.clips)
        if object_classes is not None and entry.target is None and entry.classes is None:
            classes = object_classes
        fps = entry.fps or reader.default_fps
        problems: list[Problem] = list(scan.problems)

        def make_clips() -> list[Clip]:
            return build_clips(
                reader, scan.clips, source_classes, classes, lut, fps, on_error,
                problems, name, progress,
            )  # fmt: skip

        dataset = Dataset(
            name, reader.kind, classes, make_clips, format=entry.format,
            root=str(root), meta={"registry": self.source, "split": split},
        )  # fmt: skip
        dataset.problems = problems
        return dataset

    def _split_names(self, name: str, entry: DatasetEntry, root: Path, split: str) -> set[str]:
        where = self._where(name)
        if split not in entry.splits:
            known = ", ".join(entry.splits) or "(none defined)"
            raise RegistryError(f"{where}: field splits: no split {split!r}; known: {known}")
        spec = entry.splits[split]
        if isinstance(spec, list):
            return {str(s) for s in spec}
        path = Path(expand_env(spec, f"{where}: field splits.{split}"))
        path = path if path.is_absolute() else root / path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DataError(path, f"cannot read split file for split {split!r} ({exc})") from None
        return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _select_split(scan: ScanResult, names: set[str], where: str, split: str) -> ScanResult:
    """Keep clips named in ``names``, or single frames whose name is listed."""
    clips: list[ClipSpec] = []
    used: set[str] = set()
    for spec in scan.clips:
        if spec.name in names:
            clips.append(spec)
            used.add(spec.name)
            continue
        frames = [f for f in spec.frames if f.name in names]
        used.update(f.name for f in frames)
        if frames:
            clips.append(ClipSpec(spec.name, frames, spec.fps, spec.classes, dict(spec.meta)))
    missing = sorted(names - used)
    if missing:
        raise RegistryError(
            f"{where}: field splits.{split}: {len(missing)} name(s) match no clip or frame: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
        )
    folders = {f.image.parent for c in clips for f in c.frames}
    problems = [p for p in scan.problems if p.path.parent in folders]
    return ScanResult(clips, problems)


def _union_clip_classes(specs: list[ClipSpec]) -> dict[int, str] | None:
    """Union of per-clip classes (DAVIS objects), or None when the reader sets none."""
    per_clip = [s.classes for s in specs if s.classes is not None]
    if not per_clip:
        return None
    merged: dict[int, str] = {}
    for classes in per_clip:
        merged.update(classes)
    return dict(sorted(merged.items()))


def _select_synthetic_split(
    dataset: Dataset, entry: DatasetEntry, split: str | None, where: str
) -> Dataset:
    if split is None:
        return dataset
    if split not in entry.splits or not isinstance(entry.splits[split], list):
        raise RegistryError(
            f"{where}: field splits: no split {split!r} (synthetic splits list clip names)"
        )
    names = set(entry.splits[split])
    return Dataset(
        dataset.name, dataset.kind, dataset.classes,
        lambda: [c for c in dataset.clips() if c.name in names],
        format=dataset.format, meta={**dataset.meta, "split": split},
    )  # fmt: skip


def find_registry_path(path: str | Path | None = None) -> Path | None:
    """The registry file to use, by the documented resolution order (None = built-in only)."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise RegistryError(f"{p}: registry file not found")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise RegistryError(f"{p}: registry file named by ${ENV_VAR} not found")
        return p
    cwd = Path.cwd() / "datasets.yaml"
    if cwd.is_file():
        return cwd
    repo = Path(__file__).resolve().parents[2] / "datasets.yaml"
    if repo.is_file():
        return repo
    return None


def load_registry(path: str | Path | None = None) -> Registry:
    """Load and validate the registry (see the module docstring for which file is used)."""
    file = find_registry_path(path)
    if file is None:
        return Registry({}, None)
    try:
        data = load_yaml_file(file)
    except YamlError as exc:
        raise RegistryError(str(exc)) from None
    if data is None:
        data = {"datasets": {}}
    if not isinstance(data, dict):
        raise RegistryError(f"{file}: expected a mapping with a top-level 'datasets:' key")
    try:
        parsed = _RegistryFile.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(_format_validation(exc, str(file))) from None
    return Registry(parsed.datasets, file.resolve())


def open_dataset(
    name: str,
    split: str | None = None,
    registry: Registry | str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    on_error: OnError = "raise",
) -> Dataset:
    """Open ``name`` from ``registry`` (a Registry, a registry file, or None = default lookup)."""
    if not isinstance(registry, Registry):
        registry = load_registry(registry)
    return registry.open(name, split=split, overrides=overrides, on_error=on_error)


__all__ = [
    "DatasetEntry",
    "Problem",
    "Registry",
    "RegistryError",
    "expand_env",
    "find_registry_path",
    "load_registry",
    "open_dataset",
]
