"""``papermill()``: import papermill without compiling rfc3987-syntax's grammars up front.

papermill imports nbformat, which imports jsonschema, which imports ``rfc3987_syntax`` (when
installed: jupyter-events pulls it in through ``jsonschema[format-nongpl]``) only to offer the
``iri`` / ``iri-reference`` format checks. That import builds 39 Earley parsers from its grammar:
about 2.5 s of CPU on the demo machine, in every process that imports papermill (the sweep's
planner and each Dask worker), for checks that no notebook schema uses.

:func:`papermill` first puts a stand-in module under that name: the same ``is_valid_syntax``
(what jsonschema takes from it), which imports the real module on its first call and delegates
to it, as does any other attribute. So every check behaves exactly as before; only its first use
pays the compilation.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_GRAMMARS = "rfc3987_syntax"
_lock = threading.Lock()


def _real_module() -> types.ModuleType:
    """The real ``rfc3987_syntax``, imported on first need in place of the stand-in."""
    with _lock:
        module = sys.modules.get(_GRAMMARS)
        if module is None or getattr(module, "__endobench_stand_in__", False):
            sys.modules.pop(_GRAMMARS, None)
            module = importlib.import_module(_GRAMMARS)
        return module


def _is_valid_syntax(term: str, value: str) -> bool:
    result: bool = _real_module().is_valid_syntax(term, value)
    return result


def _attribute(name: str) -> Any:
    if name.startswith("__"):  # the import system probes __path__ and the like: not a use
        raise AttributeError(name)
    return getattr(_real_module(), name)


def defer_rfc3987_grammars() -> None:
    """Install the stand-in unless ``rfc3987_syntax`` is imported already or not installed."""
    with _lock:
        spec = None if _GRAMMARS in sys.modules else importlib.util.find_spec(_GRAMMARS)
        if spec is None:
            return
        stand_in = types.ModuleType(_GRAMMARS, "imports rfc3987_syntax on first use")
        stand_in.__dict__.update(
            __endobench_stand_in__=True,
            __path__=list(spec.submodule_search_locations or []),  # its submodules import as usual
            is_valid_syntax=_is_valid_syntax,
            __getattr__=_attribute,
        )
        sys.modules[_GRAMMARS] = stand_in


def papermill() -> types.ModuleType:
    """The papermill module, imported with rfc3987-syntax's grammars deferred to first use."""
    defer_rfc3987_grammars()
    return importlib.import_module("papermill")
