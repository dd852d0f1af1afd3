"""A pre-imported Python process that forks ipykernel kernels on request (run as a script).

Started by :mod:`endobench.ablate.warm_kernels` as ``python kernel_zygote.py SOCKET MODULE...``
(by path, not ``-m``: importing ``endobench`` here would import ``tqdm.auto`` outside IPython
and fix its choice of progress bar for every kernel). It imports the heavy third-party modules
once (torch, timm, pandas, ...), then serves one JSON line per connection on a Unix socket:

- ``{"op": "spawn", "args": [...], "env": {...}, "cwd": "..."}`` forks a child that becomes
  ``python -m ipykernel_launcher ARGS`` in ``cwd`` with exactly ``env``, in a new session;
  the reply is ``{"pid": N}``;
- ``{"op": "status", "pid": N}`` replies ``{"returncode": int or null}`` (null: still running).

Stdlib only until a fork; never runs a torch operation, so no thread pool or CUDA context
exists to be inherited. Exits when its parent process goes away.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys

# Environment-dependent modules that must be imported inside the kernel, not here:
# tqdm.auto picks widgets or text depending on whether it runs under IPython.
_REIMPORT_IN_KERNEL = ("tqdm.auto", "tqdm.autonotebook")


def _preload(modules: list[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the kernel imports it again and reports the error where it matters
            continue
    for name in _REIMPORT_IN_KERNEL:
        sys.modules.pop(name, None)


def _reap(finished: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        finished[pid] = os.waitstatus_to_exitcode(status)


def _become_kernel(args: list[str], env: dict[str, str], cwd: str, zygote_pid: int) -> None:
    """In the forked child: look like ``python -m ipykernel_launcher ARGS`` started afresh."""
    os.setsid()  # like jupyter_client's start_new_session: interrupts reach the whole group
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)  # JPY_PARENT_PID stays the launching process, as for any kernel
    # ipykernel read JPY_PARENT_PID when the zygote imported it; name the real parent: the
    # kernel then polls the zygote (and exits with it, as the zygote exits with the launching
    # process) and prints no "connect another client" banner
    args = [*args, f"--IPKernelApp.parent_handle={zygote_pid}"]
    sys.argv = ["-m", *args]
    import random

    random.seed()  # a fresh interpreter seeds from the OS; so does this kernel
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=args)


def serve(path: str, modules: list[str]) -> None:
    """Preload ``modules``, then fork kernels for requests on the Unix socket ``path``."""
    parent, me = os.getppid(), os.getpid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the sweep and its kernels
    _preload(modules)
    finished: dict[int, int] = {}
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    server.settimeout(1.0)
    while os.getppid() == parent:
        _reap(finished)
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(30.0)
            request = json.loads(conn.makefile("r", encoding="utf-8").readline())
            if request["op"] == "status":
                _reap(finished)
                reply = {"returncode": finished.pop(request["pid"], None)}
            else:
                pid = os.fork()
                if pid == 0:
                    server.close()
                    conn.close()
                    code = 0
                    try:
                        _become_kernel(request["args"], request["env"], request["cwd"], me)
                    except SystemExit as stop:
                        code = stop.code if isinstance(stop.code, int) else 1
                    except BaseException:
                        import traceback

                        traceback.print_exc()
                        code = 1
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(code)
                reply = {"pid": pid}
            conn.sendall((json.dumps(reply) + "\n").encode("utf-8"))
    server.close()


if __name__ == "__main__":
    del sys.path[0]  # this script's folder (endobench/ablate) is no place to import from
    serve(sys.argv[1], sys.argv[2:])
