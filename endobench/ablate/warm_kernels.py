"""Warm notebook kernels: each papermill kernel is forked from a process that imported torch once.

A stage notebook spends most of a short run importing (torch, timm and torchvision's dynamo,
pandas, albumentations: about 10 s of CPU per kernel on the demo machine) before its first line
of work. :class:`WarmKernelManager` (a jupyter_client ``AsyncKernelManager``, passed to papermill
as ``kernel_manager_class``) launches each kernel by asking a *zygote*
(:mod:`endobench.ablate.kernel_zygote`) to fork one: a Python process started once per
environment, with those modules already imported. The kernel is still a new process per notebook
(own memory, cwd, environment, session), started in milliseconds instead of seconds.

Kernels whose command is not ``PYTHON -m ipykernel_launcher ...`` start the usual way, and so
does every kernel of an environment whose zygote did not answer within
:data:`ZYGOTE_START_TIMEOUT` (a machine so loaded that its imports take minutes): one warning
line, and the sweep goes on with cold kernels instead of failing every notebook. A zygote
serves one environment (variables that modules read at import, such as ``OMP_NUM_THREADS``,
must not change under it): another environment gets another zygote. Only variables that no
preloaded module reads are left out of that comparison (``JPY_*``, set per kernel by
jupyter_client, and ``ENDOBENCH_*``, read by endobench when called); each kernel still gets its
own environment exactly.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

#: Never preloaded: they read the kernel's set-up at import (matplotlib its backend from
#: MPLBACKEND, which ipykernel sets; tqdm and ipywidgets whether they run under IPython).
KERNEL_SENSITIVE = frozenset({"matplotlib", "seaborn", "tqdm", "ipywidgets", "endobench"})
KERNEL = "ipykernel.kernelapp"
_PER_KERNEL = ("JPY_", "ENDOBENCH_")  # environment variables no preloaded module reads
_SCRIPT = Path(__file__).with_name("kernel_zygote.py")
_lock = threading.Lock()
_zygotes: dict[str, Zygote] = {}
_failed: set[str] = set()  # environments whose zygote did not start: their kernels start cold
logger = logging.getLogger(__name__)

#: Seconds a new zygote may take to import its modules and answer.
ZYGOTE_START_TIMEOUT = 120.0


class Zygote:
    """One zygote process: ``spawn`` forks a kernel, ``returncode`` asks how a kernel ended."""

    def __init__(
        self,
        python: str,
        env: dict[str, str],
        preload: tuple[str, ...],
        timeout: float | None = None,
    ) -> None:
        timeout = ZYGOTE_START_TIMEOUT if timeout is None else timeout
        self._dir = tempfile.mkdtemp(prefix="endobench-zygote-")
        self.socket_path = os.path.join(self._dir, "zygote.sock")
        # stdout / stderr inherited, as a kernel started by jupyter_client inherits them
        self.process = subprocess.Popen(
            [python, str(_SCRIPT), self.socket_path, *preload], env=env, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if not self.alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"kernel zygote {python} {_SCRIPT} did not start")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            self._ask({"op": "status", "pid": -1})
        except OSError:
            return False
        return True

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30.0)
            conn.connect(self.socket_path)
            conn.sendall((json.dumps(request) + "\n").encode("utf-8"))
            return json.loads(conn.makefile("r", encoding="utf-8").readline())

    def alive(self) -> bool:
        return self.process.poll() is None

    def spawn(self, args: list[str], env: dict[str, str], cwd: str) -> int:
        """Pid of a new kernel ``python -m ARGS`` running in ``cwd`` with ``env``."""
        return int(self._ask({"op": "spawn", "args": args, "env": env, "cwd": cwd})["pid"])

    def returncode(self, pid: int) -> int | None:
        """Exit code of kernel ``pid``, None while it runs."""
        if not self.alive():  # its kernels exited with it (they poll their parent)
            return -signal.SIGKILL if _exists(pid) else 0
        return self._ask({"op": "status", "pid": pid})["returncode"]

    def close(self) -> None:
        if self.alive():
            self.process.terminate()
            self.process.wait()
        for name in os.listdir(self._dir):
            os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def preload_for(notebooks: Iterable[str | Path]) -> tuple[str, ...]:
    """Third-party packages a zygote imports for these notebooks (then ipykernel).

    The packages their code cells import, and those that the endobench modules they import
    import in turn at module level (read from the source, so lazy imports stay lazy), except
    the standard library (cheap) and :data:`KERNEL_SENSITIVE`. Tiny notebooks get a zygote that
    costs nothing; the demo's get torch, timm, pandas, albumentations, OpenCV and numba.
    """
    found: dict[str, None] = {}
    for path in notebooks:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            if cell.get("cell_type") == "code":
                source = "".join(cell.get("source", ""))
                lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
                found.update(dict.fromkeys(_module_level_imports("\n".join(lines), "")))
    local = [n for n in found if n.split(".")[0] == "endobench"]
    found.update(dict.fromkeys(_eager_imports_of(local)))
    tops = dict.fromkeys(n.split(".")[0] for n in found)
    third_party = [
        n for n in tops if n not in sys.stdlib_module_names and n not in KERNEL_SENSITIVE
    ]
    return (*third_party, KERNEL)


def _module_level_imports(source: str, package: str) -> list[str]:
    """Modules imported when ``source`` runs (not inside functions or ``if TYPE_CHECKING``)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return []
    names: list[str] = []
    while body:
        node, body = body[0], body[1:]
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            body = [*node.body, *node.orelse, *body]
        elif isinstance(node, ast.Try):
            body = [*node.body, *body]
    return names


def _eager_imports_of(modules: list[str]) -> list[str]:
    """Everything importing these endobench modules imports, following endobench's own source."""
    root = Path(__file__).resolve().parents[2]  # the folder holding the endobench package
    todo, seen, found = list(modules), set(), []
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a module's parent packages are imported first
            module = ".".join(parts[:i])
            if module in seen:
                continue
            seen.add(module)
            folder = root.joinpath(*module.split("."))
            path = folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")
            if not path.is_file():
                continue  # a name imported from a module, not a module
            package = module if folder.is_dir() else module.rpartition(".")[0]
            for imported in _module_level_imports(path.read_text(encoding="utf-8"), package):
                if imported.split(".")[0] == "endobench":
                    todo.append(imported)
                else:
                    found.append(imported)
    return found


def zygote_for(
    python: str, env: dict[str, str], preload: tuple[str, ...] = (KERNEL,)
) -> Zygote | None:
    """The running zygote for this interpreter and environment (started on first use); None
    when it did not start (then or before): the kernel should start the usual way."""
    stable = {k: v for k, v in env.items() if not k.startswith(_PER_KERNEL)}
    key = hashlib.sha256(json.dumps([python, stable, preload], sort_keys=True).encode()).hexdigest()
    with _lock:
        if key in _failed:
            return None
        zygote = _zygotes.get(key)
        if zygote is None or not zygote.alive():
            try:
                zygote = _zygotes[key] = Zygote(python, stable, preload)
            except RuntimeError as err:
                _failed.add(key)
                _zygotes.pop(key, None)
                logger.warning("%s; its kernels start as new interpreters", err)
                return None
        return zygote


@atexit.register
def close_zygotes() -> None:
    """Stop every zygote this process started (running kernels keep running until shut down)."""
    with _lock:
        for zygote in _zygotes.values():
            zygote.close()
        _zygotes.clear()


class ForkedKernel:
    """The ``subprocess.Popen`` surface jupyter_client uses, for a kernel forked by a zygote."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, zygote: Zygote) -> None:
        self.pid, self._zygote = pid, zygote
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._zygote.returncode(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return int(self.returncode or 0)

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(LocalProvisioner):
    """LocalProvisioner that forks ``python -m ipykernel_launcher`` kernels from a zygote."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        if len(cmd) < 3 or cmd[1:3] != ["-m", "ipykernel_launcher"]:
            return await super().launch_kernel(cmd, **kwargs)
        env = dict(kwargs.get("env") or os.environ)
        cwd = str(kwargs.get("cwd") or Path.cwd())
        zygote = zygote_for(cmd[0], env, getattr(self.parent, "preload", (KERNEL,)))
        if zygote is None:
            return await super().launch_kernel(cmd, **kwargs)
        pid = zygote.spawn(cmd[2:], env, cwd)
        self.process = ForkedKernel(pid, zygote)  # type: ignore[assignment]  # Popen's surface
        self.pid = self.pgid = pid  # the kernel leads its own session
        self.cwd = cwd
        return self.connection_info


class WarmKernelManager(AsyncKernelManager):
    """AsyncKernelManager whose local Python kernels are forked from a warm zygote.

    ``preload``: the modules the zygote imports (:func:`warm_kernel_manager` sets them).
    """

    preload: tuple[str, ...] = (KERNEL,)

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or _new_id()
            self.provisioner = ForkProvisioner(
                kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
            )
        return await super()._async_pre_start_kernel(**kw)


def warm_kernel_manager(preload: tuple[str, ...]) -> type[WarmKernelManager]:
    """A :class:`WarmKernelManager` class whose zygote imports ``preload``."""
    return type("WarmKernelManager", (WarmKernelManager,), {"preload": tuple(preload)})


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())
