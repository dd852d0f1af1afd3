"""The ``endobench`` command: one sub-command per module in ``endobench.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command name -> module in endobench.commands exposing ``add_parser(subparsers)``, which
# registers the parser and sets ``func`` (called with the parsed args, returns an exit code).
COMMANDS = {
    "datasets": "datasets",
    "synth": "synth",
    "eval": "evaluate",
    "train": "train",
    "track": "track",
    "ablate": "ablate",
    "report": "report",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="endobench",
        description="Benchmark self-supervised backbones on endoscopic segmentation and tracking.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        module = importlib.import_module(f"endobench.commands.{module_name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``endobench`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from endobench import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
