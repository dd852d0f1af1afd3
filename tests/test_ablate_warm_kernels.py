"""Warm kernels: papermill kernels forked from a zygote that imported the heavy modules once.

Real zygotes, real ipykernel kernels, real papermill runs: a warm kernel must see what a cold
one sees (working directory, sys.path, environment, its own session) while its modules are
already imported and its parent is the zygote.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from endobench.ablate import warm_kernels
from endobench.ablate.warm_kernels import (
    KERNEL,
    ForkedKernel,
    _module_level_imports,
    close_zygotes,
    preload_for,
    warm_kernel_manager,
    zygote_for,
)

PROBE = """import json, os, sys
preloaded = "numpy" in sys.modules
import numpy
print(json.dumps({
    "preloaded": preloaded,
    "cwd": os.getcwd(),
    "path": sys.path[:3],
    "probe": os.environ.get("ENDOBENCH_PROBE"),
    "threads": os.environ.get("OMP_NUM_THREADS"),
    "session_leader": os.getsid(0) == os.getpid(),
    "pid": os.getpid(),
    "ppid": os.getppid(),
}))"""


def _write(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def _probe(notebook: Path, out: Path, cwd: Path, **kw: object) -> dict:
    done = papermill.execute_notebook(
        str(notebook), str(out), kernel_name="python3", progress_bar=False, cwd=str(cwd), **kw
    )
    return json.loads(done.cells[0].outputs[0]["text"])


def test_module_level_imports_skip_lazy_and_type_checking_ones() -> None:
    source = """
import os, numpy.linalg as la
from . import sibling
from ..up import thing
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import torch
try:
    import cv2
except ImportError:
    cv2 = None

def lazy():
    import timm
"""
    assert _module_level_imports(source, "pkg.sub") == [
        "os", "numpy.linalg", "pkg.sub", "pkg.sub.sibling", "pkg.up", "pkg.up.thing",
        "typing", "typing.TYPE_CHECKING", "cv2",
    ]  # fmt: skip


def test_preload_follows_what_the_notebooks_import_eagerly(tmp_path: Path) -> None:
    tiny = _write(tmp_path / "tiny.ipynb", "%matplotlib inline\nimport json, pathlib\nx = 1")
    assert preload_for([tiny]) == (KERNEL,)  # stdlib only: nothing worth preloading
    light = _write(
        tmp_path / "light.ipynb",
        "import matplotlib.pyplot as plt\nfrom endobench.ablate import Job",
    )
    light_preload = preload_for([light])
    # endobench.ablate imports pandas at module level, torch only inside functions
    assert {"pandas", "numpy", "pydantic", "yaml"} <= set(light_preload)
    assert not {"torch", "matplotlib", "endobench", "json"} & set(light_preload)
    demo = preload_for(Path("notebooks").glob("0[23]_*.ipynb"))
    assert {"torch", "timm", "albumentations", "cv2", "numba", "pandas"} <= set(demo)
    assert not {"matplotlib", "seaborn", "tqdm", "endobench"} & set(demo)
    assert demo[-1] == KERNEL


def test_a_warm_kernel_sees_what_a_cold_kernel_sees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = _write(tmp_path / "probe.ipynb", PROBE)
    work = tmp_path / "work"
    work.mkdir()
    manager = warm_kernel_manager(("numpy", KERNEL))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    outputs = {}
    try:
        for name, kw in (("cold", {}), ("warm", {"kernel_manager_class": manager})):
            # ENDOBENCH_* may differ per kernel without a new zygote: each kernel gets its own
            monkeypatch.setenv("ENDOBENCH_PROBE", name)
            outputs[name] = _probe(notebook, tmp_path / f"{name}.ipynb", work, **kw)
        again = _probe(notebook, tmp_path / "again.ipynb", work, kernel_manager_class=manager)
        zygote = zygote_for(sys.executable, dict(os.environ), manager.preload)
    finally:
        close_zygotes()
    cold, warm = outputs["cold"], outputs["warm"]
    same = ("cwd", "path", "threads", "session_leader")
    assert {k: warm[k] for k in same} == {k: cold[k] for k in same}
    assert cold["cwd"] == str(work) and cold["session_leader"] and cold["threads"] == "1"
    assert (cold["probe"], warm["probe"], again["probe"]) == ("cold", "warm", "warm")
    assert (cold["preloaded"], warm["preloaded"], again["preloaded"]) == (False, True, True)
    assert warm["ppid"] == again["ppid"] == zygote.process.pid  # one zygote, forked twice
    assert warm["pid"] != again["pid"]  # a new process per notebook


def test_one_zygote_per_import_time_environment() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        first = zygote_for(sys.executable, env, ("json",))
        per_kernel = {**env, "ENDOBENCH_FEATURE_CACHE": "/elsewhere", "JPY_SESSION_NAME": "x"}
        assert zygote_for(sys.executable, per_kernel, ("json",)) is first
        other = zygote_for(sys.executable, {**env, "OMP_NUM_THREADS": "2"}, ("json",))
        assert other is not first and other.alive() and first.alive()
    finally:
        close_zygotes()
    assert not first.alive() and not other.alive()


def test_forked_kernel_reports_its_exit_code_and_takes_signals(tmp_path: Path) -> None:
    try:
        zygote = zygote_for(sys.executable, dict(os.environ), (KERNEL,))
        helped = ForkedKernel(  # prints ipykernel's help and exits with 0
            zygote.spawn(["ipykernel_launcher", "--help"], dict(os.environ), str(tmp_path)),
            zygote,
        )
        assert helped.wait(timeout=60) == 0
        conn = tmp_path / "kernel.json"
        kernel = ForkedKernel(
            zygote.spawn(["ipykernel_launcher", "-f", str(conn)], dict(os.environ), str(tmp_path)),
            zygote,
        )
        assert kernel.poll() is None
        kernel.send_signal(signal.SIGKILL)
        assert kernel.wait(timeout=60) == -signal.SIGKILL
        kernel.kill()  # a finished kernel takes no more signals, and says nothing
    finally:
        close_zygotes()


def test_a_zygote_that_does_not_answer_in_time_gives_cold_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On a machine too loaded to import in time the sweep goes on with ordinary kernels."""
    notebook = _write(tmp_path / "probe.ipynb", PROBE)
    monkeypatch.setattr(warm_kernels, "ZYGOTE_START_TIMEOUT", 0.0)
    env = {**os.environ, "ENDOBENCH_PROBE": "late"}
    monkeypatch.setattr(warm_kernels, "_failed", set())
    try:
        with caplog.at_level("WARNING", logger="endobench.ablate.warm_kernels"):
            assert zygote_for(sys.executable, env, ("numpy", KERNEL)) is None
            assert zygote_for(sys.executable, env, ("numpy", KERNEL)) is None  # not retried
        manager = warm_kernel_manager(("numpy", KERNEL))
        cold = _probe(notebook, tmp_path / "out.ipynb", tmp_path, kernel_manager_class=manager)
    finally:
        close_zygotes()
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        f"kernel zygote {sys.executable} {warm_kernels._SCRIPT} did not start"
    ]
    assert cold["preloaded"] is False and cold["ppid"] == os.getpid()  # started the usual way


def test_an_in_process_sweep_forks_its_kernels_from_one_zygote(tmp_path: Path) -> None:
    """``run_sweep(workers=1)``: both notebooks run in kernels forked by one zygote that
    imported what they import (pandas), not in interpreters this process started."""
    from conftest import write_notebook

    from endobench.ablate import load_grid, run_sweep

    write_notebook(
        tmp_path / "nb.ipynb",
        'run_dir = ""\ni = 0',
        "import os, sys\npreloaded = 'pandas' in sys.modules\nimport pandas as pd\n"
        "from endobench.ablate import write_run_outputs\n"
        "write_run_outputs(run_dir, pd.DataFrame({'i': [i]}),"
        " {'i': i, 'ppid': os.getppid(), 'preloaded': preloaded})",
    )
    grid = {
        "name": "warm",
        "stages": [{"name": "s", "notebook": "nb.ipynb"}],
        "axes": {"i": [0, 1]},
    }
    (tmp_path / "g.yaml").write_text(json.dumps(grid))
    try:
        result = run_sweep(load_grid(tmp_path / "g.yaml"), tmp_path / "results", progress=False)
        (zygote,) = warm_kernels._zygotes.values()
        zygote_pid = zygote.process.pid
    finally:
        close_zygotes()
    assert sorted(o.status for o in result.outcomes.values()) == ["done", "done"]
    summaries = [
        json.loads((t.out_dir / "summary.json").read_text()) for t in result.plan.tasks.values()
    ]
    assert sorted(s["i"] for s in summaries) == [0, 1]
    assert all(s["ppid"] == zygote_pid != os.getpid() and s["preloaded"] for s in summaries)
