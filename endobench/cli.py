"""The ``endobench`` command: one sub-command per module in ``endobench.commands``."""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import NoReturn

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
    "list": "list",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered (or only the one named ``only``,
    so that running a command imports that command's module alone)."""
    parser = argparse.ArgumentParser(
        prog="endobench",
        description="Benchmark self-supervised backbones on endoscopic segmentation and tracking.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"endobench.commands.{module_name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``endobench`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    if argv == ["--version"]:
        only = "--version"  # no sub-command registered: importing them all would load torch
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if args.version:
        from endobench import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(args)


# Commands that do no large linear algebra, where numpy's and scipy's OpenBLAS thread pools
# (started at import, then spinning a while) only take CPU from the work: about 0.25 s of CPU at
# each start on 2 cores. They run with one BLAS thread unless OPENBLAS_NUM_THREADS is set.
ONE_BLAS_THREAD = ("track", "eval")


def console() -> NoReturn:
    """The ``endobench`` console script: ``main``, then a prompt end of the process.

    When a command returns, its files are written and closed and its worker threads joined;
    what remains of a normal exit is the interpreter's teardown (collecting every module, LLVM's
    and OpenBLAS's destructors), about 0.3 s once a numba kernel has been loaded, for no effect
    on the results. So the exit hooks run here (``atexit``'s, which include logging's flush),
    the standard streams are flushed, and the process ends with the command's exit code. While
    a non-daemon thread is still alive the usual exit is taken instead, which waits for it.
    """
    if sys.argv[1:2] and sys.argv[1] in ONE_BLAS_THREAD:  # before numpy is imported
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    code = main()
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BrokenPipeError:  # the reader went away (see ``run_command``)
            pass
    os._exit(code)


BUG_HINT = "this is a bug in endobench; please report it with the traceback above"


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed sub-command inside the CLI's one error boundary.

    A :class:`~endobench.errors.UserError` becomes one line on stderr and exit code 2; Ctrl-C
    becomes one line and exit code 130; anything else is a bug: traceback plus a hint.
    """
    from endobench.errors import UserError

    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"endobench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        detail = f": {err}" if str(err) else ""
        print(f"endobench {args.command}: interrupted{detail}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (`endobench datasets list | head`): not an error.
        sys.stdout = None  # no flush of the dead pipe at exit
        return 141
    except Exception:
        traceback.print_exc()
        print(f"endobench {args.command}: {BUG_HINT}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    console()
