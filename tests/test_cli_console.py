"""The ``endobench`` console script ends the process itself once a command has returned:
exit hooks run, buffered output reaches the pipe in full, the exit code is the command's, and
a thread still running is waited for."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from endobench import __version__


def _console(prelude: str, *argv: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(prelude) + (
        f"\nimport sys\nfrom endobench.cli import console\nsys.argv = {['endobench', *argv]!r}\n"
        "console()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


def test_the_console_script_is_console():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "endobench"]
    assert script.value == "endobench.cli:console"


def test_exit_hooks_run_and_buffered_output_is_flushed_in_full():
    done = _console(
        """
        import atexit
        lines = [f"line {i}" for i in range(50_000)]  # far more than a pipe's buffer
        atexit.register(lambda: print("\\n".join(lines)))
        """,
        "--version",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == __version__
    assert out[1:] == [f"line {i}" for i in range(50_000)]


@pytest.mark.parametrize(
    ("argv", "code"),
    [(("synth", "--out", "unused", "--frames", "0"), 2), (("frobnicate",), 2)],
)
def test_the_exit_code_is_the_commands(argv, code):
    done = _console("", *argv)
    assert done.returncode == code
    assert done.stderr.startswith("endobench") or "invalid choice" in done.stderr


def test_a_running_thread_is_waited_for():
    done = _console(
        """
        import threading, time
        threading.Thread(target=lambda: (time.sleep(0.5), print("thread done", flush=True))).start()
        """,
        "--version",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [__version__, "thread done"]


@pytest.mark.parametrize(
    ("command", "preset", "threads"),
    [("track", None, "1"), ("eval", None, "1"), ("eval", "2", "2"), ("datasets", None, None)],
)
def test_track_and_eval_run_with_one_blas_thread_unless_the_user_chose(command, preset, threads):
    done = _console(
        f"""
        import atexit, os, sys
        os.environ.pop("OPENBLAS_NUM_THREADS", None)
        if {preset!r} is not None:
            os.environ["OPENBLAS_NUM_THREADS"] = {preset!r}
        atexit.register(lambda: print("blas", os.environ.get("OPENBLAS_NUM_THREADS")))
        """,
        command,
        "--help",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"blas {threads}"
