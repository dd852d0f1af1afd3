"""The one YAML loader of endobench: safe (no tags run code), strict about duplicate keys.

Every YAML file the project reads (dataset registry, grid files, training configs) goes through
:func:`load_yaml_file` / :func:`load_yaml_text`. It is PyYAML's ``SafeLoader`` (so ``!!python``
tags and other unknown tags are an error, never executed) with two changes:

- a key given twice in one mapping is an error naming both lines (PyYAML keeps the last one);
- ``1e-3`` reads as a float (YAML 1.1 wants ``1.0e-3``, which nobody writes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from endobench.errors import UserError


class YamlError(UserError, ValueError):
    """A YAML file cannot be read: syntax error, unsafe tag or duplicate key (one line)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader refusing duplicate keys and reading ``1e-3`` as a float."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen.setdefault(key, line)
            except TypeError:  # unhashable key: SafeLoader reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} on lines {first} and {line}", None
                )
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _one_line(err: yaml.YAMLError) -> str:
    """``line L, column C: problem`` from a PyYAML error (its own text spans several lines)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    text = " ".join(str(problem).split())
    if "could not determine a constructor" in text:
        text += " (YAML tags are not allowed)"
    elif context and not text.startswith("duplicate key"):
        text = f"{' '.join(str(context).split())}: {text}"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    if text.startswith("duplicate key"):
        where = ""
    return f"{where}{text}"


def load_yaml_text(text: str, source: str | Path = "<string>") -> Any:
    """Parse YAML ``text``; :class:`YamlError` ``"<source>: not valid YAML: line L, ..."``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise YamlError(f"{source}: not valid YAML: {_one_line(err)}") from None


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing or unreadable file is a :class:`YamlError` too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise YamlError(f"{path}: is a folder, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise YamlError(f"{path}: cannot read ({err})") from None
    return load_yaml_text(text, path)
