"""Plugins: every entry point of the group ``endobench.plugins`` is imported with endobench.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."endobench.plugins"]
    my_metrics = "my_package.endobench_plugin"

and registers its names in that module (``@METRICS.register(...)``, see CONTRIBUTING.md). The
entry point may also name a callable (``"my_package.plugin:setup"``), which is called with no
arguments. Standard library only: ``import endobench`` stays light when no plugin is installed.
"""

from __future__ import annotations

import warnings
from importlib import metadata

PLUGIN_GROUP = "endobench.plugins"

LOADED_PLUGINS: dict[str, str] = {}  # entry-point name -> the "module:attr" it points at
FAILED_PLUGINS: dict[str, str] = {}  # entry-point name -> the error that stopped it loading
_TOP_MODULES: dict[str, str] = {}  # top-level module of a plugin -> its entry-point name


def load_plugins() -> dict[str, str]:
    """Import every entry point of ``endobench.plugins`` once per process; ``LOADED_PLUGINS``.

    A plugin that fails to import is reported with a ``RuntimeWarning`` naming it and recorded in
    ``FAILED_PLUGINS``; endobench itself keeps working.
    """
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        if ep.name in LOADED_PLUGINS or ep.name in FAILED_PLUGINS:
            continue
        _TOP_MODULES[ep.module.split(".")[0]] = ep.name
        try:
            loaded = ep.load()
            if ep.attr and callable(loaded):
                loaded()
        except Exception as exc:  # a broken plugin must not break endobench: say so and go on
            FAILED_PLUGINS[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"endobench plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        LOADED_PLUGINS[ep.name] = ep.value
    return LOADED_PLUGINS


def plugin_of(module: str) -> str | None:
    """The entry-point name of the plugin that ``module`` belongs to (None: endobench itself)."""
    return _TOP_MODULES.get(module.split(".")[0])
