"""One registry per extension point: register by decorator, build from a spec string, list names.

A spec string is ``name``, ``name:ARG``, ``name:key=value,key=value`` or
``name:ARG,key=value,...``. ``ARG`` (no ``=``) is the value of the entry's first option field,
verbatim (``every:10``, ``list:0,12,30``, ``dis:medium``); ``key=value`` pairs fill named fields,
and ``none`` means ``None``; when there are pairs, a first item without ``=`` is ``ARG``
(``dis:medium,finest_scale=1``). An entry registered with ``nested=True`` takes another
registry's spec as its first field: everything after ``name:`` is that spec, verbatim
(``flow:dis:medium,finest_scale=1``; ``flow:method=dis`` is the same as ``flow:dis``). Options
are validated by the entry's pydantic model, so a bad spec is a :class:`SpecError` (a
:class:`~endobench.errors.UserError`) naming the extension point, the spec and the field::

    from endobench.registry import KEYFRAME_POLICIES

    @KEYFRAME_POLICIES.register("every", options=EveryOptions, usage="every:K")
    def every(options: EveryOptions) -> EveryK: ...

    KEYFRAME_POLICIES.build("every:10")

The registries are light (no torch): each knows the modules that register its built-in names and
imports them on first lookup. Plugins (entry points of the group ``endobench.plugins``) are
imported by :func:`endobench.plugins.load_plugins`, which ``import endobench`` calls, so papermill
kernels see them too.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from endobench.errors import UserError
from endobench.plugins import plugin_of

T = TypeVar("T")


class RegistryError(UserError, ValueError):
    """An unknown name, or a name registered twice by different modules."""


class SpecError(RegistryError):
    """A spec string that does not parse or whose options do not validate."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the object (a factory or a value) and how to describe and build it."""

    name: str
    obj: T
    description: str
    options: type[BaseModel] | None
    usage: str
    module: str
    nested: bool = False

    @property
    def plugin(self) -> str | None:
        """The entry-point name of the plugin that registered this entry (None: built in)."""
        return plugin_of(self.module)


@dataclass(frozen=True)
class Spec:
    """A parsed, validated spec: the entry's name and its options (None when it takes none)."""

    kind: str
    name: str
    options: BaseModel | None

    def __str__(self) -> str:
        return format_spec(self.name, self.options)


def format_spec(name: str, options: BaseModel | None) -> str:
    """Canonical spec text: ``name`` or ``name:k=v,...`` with the fields that differ from defaults."""
    if options is None:
        return name
    changed = options.model_dump(exclude_defaults=True)
    if not changed:
        return name
    return name + ":" + ",".join(f"{k}={_format_value(v)}" for k, v in changed.items())


def _format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return "|".join(str(v) for v in value)
    return str(value)


class Registry(Generic[T]):
    """The names of one extension point (``kind``, e.g. "keyframe policy").

    ``modules`` register the built-in names and are imported on the first lookup, so that building
    the registry costs nothing until a name is needed. Listings are sorted by name, or, with
    ``sort=False``, in registration order (built-ins in the order their module presents them, e.g.
    the simplest keyframe policy first, then plugins).
    """

    def __init__(
        self, kind: str, description: str, modules: tuple[str, ...] = (), *, sort: bool = True
    ) -> None:
        self.kind = kind
        self.description = description
        self.sort = sort
        self._modules = modules
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = not modules

    def register(
        self,
        name: str,
        obj: T | None = None,
        *,
        options: type[BaseModel] | None = None,
        description: str | None = None,
        usage: str | None = None,
        nested: bool = False,
    ) -> Any:
        """Register ``obj`` under ``name``, or return a decorator that registers what it wraps.

        ``description`` defaults to the first line of the object's docstring; ``usage`` (shown in
        listings and error messages) defaults to ``name`` or ``name:FIELD`` for the first option.
        ``nested``: the first option field is a spec of another registry, given verbatim after
        ``name:`` (its own ``:``, ``,`` and ``=`` are not parsed here).
        """
        module = str(sys._getframe(1).f_globals.get("__name__", "?"))
        if obj is not None:
            self._add(name, obj, options, description, usage, module, nested)
            return obj

        def decorator(wrapped: T) -> T:
            self._add(name, wrapped, options, description, usage, module, nested)
            return wrapped

        return decorator

    def _add(
        self,
        name: str,
        obj: T,
        options: type[BaseModel] | None,
        description: str | None,
        usage: str | None,
        module: str,
        nested: bool = False,
    ) -> None:
        if nested and not (options is not None and options.model_fields):
            raise RegistryError(f"{self.kind} {name!r}: nested=True needs an options model")
        if not name or any(c in name for c in ":=, ") or name != name.strip():
            raise RegistryError(f"{self.kind} name {name!r}: expected a word without ':=, '")
        old = self._entries.get(name)
        if old is not None and old.module != module:
            raise RegistryError(
                f"{self.kind} {name!r} is registered twice: by {old.module} and by {module}"
            )
        if description is None:
            doc = (getattr(obj, "__doc__", None) or "").strip()
            description = doc.splitlines()[0].strip() if doc else ""
        if usage is None:
            fields = list(options.model_fields) if options is not None else []
            usage = f"{name}:{fields[0].upper()}" if fields else name
        self._entries[name] = Entry(name, obj, description, options, usage, module, nested)

    @property
    def modules(self) -> tuple[str, ...]:
        """The modules that register the built-in names (imported on the first lookup)."""
        return self._modules

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def entries(self) -> list[Entry[T]]:
        """Every entry, sorted by name (or in registration order, see the class docstring)."""
        self._load()
        names = sorted(self._entries) if self.sort else list(self._entries)
        return [self._entries[n] for n in names]

    def names(self) -> list[str]:
        """Every registered name, in listing order."""
        return [e.name for e in self.entries()]

    def check(self, name: str, what: str | None = None) -> str:
        """``name`` if registered, else :class:`RegistryError` ``"unknown <what> 'x'; expected one
        of a, b"`` (``what`` defaults to the kind): the check for a pydantic field validator."""
        if name not in self:
            raise RegistryError(
                f"unknown {what or self.kind} {name!r}; expected one of {', '.join(self.names())}"
            )
        return name

    def forms(self) -> str:
        """``usage | usage | ...``: what a spec may look like (for help texts and errors)."""
        return " | ".join(e.usage for e in self.entries())

    def get(self, name: str) -> Entry[T]:
        """The entry called ``name``; :class:`RegistryError` listing the names if there is none."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"{self.kind} {name!r} is not registered; expected one of {', '.join(self.names())}"
            ) from None

    def parse(self, spec: str) -> Spec:
        """Validate ``spec`` without building anything; :class:`SpecError` if it is not valid."""
        if not isinstance(spec, str) or not spec.strip():
            raise SpecError(f"{self.kind} {spec!r}: expected a string, one of {self.forms()}")
        name, sep, args = spec.strip().partition(":")
        self._load()
        entry = self._entries.get(name.strip().lower())
        if entry is None:
            raise SpecError(f"{self.kind} {spec!r}: expected one of {self.forms()}")
        if entry.options is None:
            if sep:
                raise SpecError(f"{self.kind} {spec!r}: {entry.name!r} takes no argument")
            return Spec(self.kind, entry.name, None)
        values = _option_values(self.kind, spec, entry, args if sep else "")
        try:
            options = entry.options(**values)
        except ValidationError as exc:
            errors = exc.errors()
            cause = errors[0].get("ctx", {}).get("error") if len(errors) == 1 else None
            if type(cause) is RegistryError:  # a name unknown to another registry (check()):
                raise SpecError(str(cause)) from None  # its one line says it all
            problems = "; ".join(_problem(e) for e in errors)
            raise SpecError(f"{self.kind} {spec!r}: {problems} (usage: {entry.usage})") from None
        return Spec(self.kind, entry.name, options)

    def build(self, spec: str | Spec, *args: Any, **kwargs: Any) -> Any:
        """Call the entry's factory: ``factory(options, *args, **kwargs)`` when it has options,
        else ``factory(*args, **kwargs)``."""
        parsed = spec if isinstance(spec, Spec) else self.parse(spec)
        factory: Any = self.get(parsed.name).obj
        if parsed.options is None:
            return factory(*args, **kwargs)
        return factory(parsed.options, *args, **kwargs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} names)"


def _option_values(kind: str, spec: str, entry: Entry[Any], args: str) -> dict[str, Any]:
    assert entry.options is not None
    fields = list(entry.options.model_fields)
    if not args.strip():
        return {}
    if entry.nested:  # another registry's spec: its own syntax, not parsed here
        return {fields[0]: args.strip().removeprefix(f"{fields[0]}=")}
    if "=" not in args:
        return {fields[0]: args.strip()}
    values: dict[str, Any] = {}
    items = args.split(",")
    if "=" not in items[0]:  # name:ARG,key=value: ARG is the first field
        values[fields[0]] = items.pop(0).strip()
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or key not in entry.options.model_fields:
            raise SpecError(
                f"{kind} {spec!r}: unknown or malformed field {item.strip()!r}; expected "
                f"key=value with keys {', '.join(fields)}"
            )
        if key in values:
            raise SpecError(f"{kind} {spec!r}: field {key!r} is given twice")
        values[key] = None if raw.lower() == "none" else raw
    return values


def _problem(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{loc}: {msg}" if loc else msg


# --- the extension points ------------------------------------------------------------------------

REGISTRIES: dict[str, Registry[Any]] = {}


def _registry(
    key: str, kind: str, description: str, *modules: str, sort: bool = True
) -> Registry[Any]:
    registry: Registry[Any] = Registry(kind, description, modules, sort=sort)
    REGISTRIES[key] = registry
    return registry


BACKBONES = _registry(
    "backbones",
    "backbone",
    "frozen feature extractors (timm)",
    "endobench.models.backbones",
    sort=False,
)
HEADS = _registry(
    "heads", "head", "segmentation heads on backbone features", "endobench.models.heads"
)
READERS = _registry(
    "readers",
    "reader",
    "dataset layouts on disk (datasets.yaml `format`)",
    "endobench.data.readers",
)
AUGMENTATIONS = _registry(
    "augmentations",
    "augmentation preset",
    "training augmentation presets (albumentations)",
    "endobench.training.augment",
)
LOSSES = _registry(
    "losses", "loss", "training loss terms (weighted in `loss:`)", "endobench.training.losses"
)
FLOW_ESTIMATORS = _registry(
    "flow_estimators", "flow estimator", "dense optical flow", "endobench.propagation.flow"
)
PROPAGATORS = _registry(
    "propagators",
    "propagator",
    "carry a mask from one frame to the next",
    "endobench.propagation.propagators",
)
KEYFRAME_POLICIES = _registry(
    "keyframe_policies",
    "keyframe policy",
    "decide which frames are re-segmented",
    "endobench.propagation.keyframes",
    sort=False,
)
METRICS = _registry(
    "metrics", "metric", "per-frame scores of a predicted mask", "endobench.metrics.per_frame"
)
FIGURES = _registry(
    "figures", "figure", "figures of the ablation report", "endobench.report.figures"
)
