"""`endobench list [KIND ...] [--json]`: every extension point, its names, and the plugins loaded.

One block per registry of ``endobench.registry`` (name, spec usage, one-line description, and the
plugin that registered it), then the entry points of ``endobench.plugins`` that loaded or
failed. Naming KINDs loads only those registries' modules: ``endobench list keyframe_policies``
needs no torch, ``heads`` and ``backbones`` do. Exit code 1 when a registry's built-in module
cannot be imported (the listing names it), else 0; a plugin that failed to load is listed, not
fatal.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from endobench.registry import REGISTRIES, Registry


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``endobench list``."""
    p = subparsers.add_parser(
        "list",
        help="list every extension point (backbones, heads, policies, ...) and the plugins loaded",
        description=__doc__,
    )
    p.add_argument(
        "kinds", nargs="*", metavar="KIND", choices=[[], *REGISTRIES],
        help=f"only these registries: {', '.join(REGISTRIES)} (default: all)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def describe_registry(registry: Registry[Any]) -> dict[str, Any]:
    """A registry as plain data: kind, description, entries (or the error that stopped loading)."""
    out: dict[str, Any] = {
        "kind": registry.kind,
        "description": registry.description,
        "modules": list(registry.modules),
        "entries": [],
        "error": None,
    }
    try:
        entries = registry.entries()
    except Exception as exc:  # a module that cannot load is reported, the others still listed
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["entries"] = [
        {
            "name": e.name,
            "usage": e.usage,
            "description": e.description,
            "options": list(e.options.model_fields) if e.options is not None else [],
            "module": e.module,
            "plugin": e.plugin,
        }
        for e in entries
    ]
    return out


def describe_plugins() -> dict[str, dict[str, str]]:
    """``{"loaded": {entry point: "module:attr"}, "failed": {entry point: error}}``."""
    from endobench.plugins import FAILED_PLUGINS, LOADED_PLUGINS

    return {"loaded": dict(LOADED_PLUGINS), "failed": dict(FAILED_PLUGINS)}


def format_text(registries: dict[str, dict[str, Any]], plugins: dict[str, dict[str, str]]) -> str:
    """The listing as aligned text, one block per registry, then the plugins."""
    lines: list[str] = []
    for key, reg in registries.items():
        lines.append(f"{key} ({reg['kind']}: {reg['description']})")
        if reg["error"] is not None:
            lines.append(f"  cannot load {', '.join(reg['modules'])}: {reg['error']}")
        width = max((len(e["name"]) for e in reg["entries"]), default=0)
        for e in reg["entries"]:
            usage = f" (usage: {e['usage']})" if e["usage"] != e["name"] else ""
            origin = f" [plugin {e['plugin']}]" if e["plugin"] else ""
            lines.append(f"  {e['name']:<{width}}  {e['description']}{usage}{origin}")
        lines.append("")
    lines.append("plugins (entry points 'endobench.plugins'):")
    if not plugins["loaded"] and not plugins["failed"]:
        lines.append("  none installed")
    for name, target in plugins["loaded"].items():
        lines.append(f"  {name}  {target}  loaded")
    for name, error in plugins["failed"].items():
        lines.append(f"  {name}  FAILED: {error}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the listing; 1 if a registry could not be loaded, else 0."""
    keys = list(dict.fromkeys(args.kinds)) or list(REGISTRIES)
    registries = {key: describe_registry(REGISTRIES[key]) for key in keys}
    plugins = describe_plugins()
    if args.json:
        print(json.dumps({"registries": registries, "plugins": plugins}, indent=2))
    else:
        print(format_text(registries, plugins))
    return 1 if any(reg["error"] is not None for reg in registries.values()) else 0
