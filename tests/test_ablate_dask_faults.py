"""A sweep on a real Dask cluster survives the loss of a worker: nothing lost, nothing run twice.

Starts ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (random free ports),
runs ``endobench ablate --scheduler`` on a 3-run grid whose notebook logs its start (with its
worker's pid) and then waits for a release file, kills one worker (and its kernel) while it runs
a notebook, releases, and checks that every run finishes, the killed run on the other worker,
and that no run was executed to the end twice.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_notebook

from endobench.ablate import load_results

NOTEBOOK = """\
import os, time
from pathlib import Path
import pandas as pd
from endobench.ablate.run_files import write_run_outputs
with open(log, "a") as f:
    f.write(f"start {item} {os.getpid()} {os.getppid()}\\n")
deadline = time.time() + 60
while not Path(release).exists() and time.time() < deadline:
    time.sleep(0.05)
with open(log, "a") as f:
    f.write(f"end {item}\\n")
write_run_outputs(run_dir, pd.DataFrame({"x": [1]}), {"item": item})
"""
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def log_lines(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture()
def cluster(tmp_path: Path):
    """A scheduler and two single-threaded workers without nannies: (address, workers)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(
            [
                BIN / "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
            ],
            **quiet,
        )  # fmt: skip
    ]
    try:
        wait_for(lambda: _listening(port), 30, "the scheduler")
        for name in ("wA", "wB"):
            procs.append(
                subprocess.Popen(
                    [
                        BIN / "dask",
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--name",
                        name,
                        "--dashboard-address",
                        ":0",
                        "--local-directory",
                        str(tmp_path / name),
                    ],
                    **quiet,
                )  # fmt: skip
            )
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=30)
        yield address, procs[1:]
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_killed_worker_runs_are_rescheduled_and_finish_once(
    tmp_path: Path, cluster: tuple[str, list[subprocess.Popen]]
) -> None:
    address, workers = cluster
    write_notebook(
        tmp_path / "work.ipynb", 'run_dir = ""\nitem = ""\nlog = ""\nrelease = ""', NOTEBOOK
    )
    log, release = tmp_path / "log", tmp_path / "release"
    grid = {
        "name": "faults",
        "stages": [{"name": "work", "notebook": "work.ipynb"}],
        "axes": {"item": ["i1", "i2", "i3"]},
        "fixed": {"log": str(log), "release": str(release)},
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    sweep = subprocess.Popen(
        [BIN / "endobench", "ablate", str(tmp_path / "g.yaml"), "--scheduler", address,
         "--results", str(tmp_path / "results"), "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # Both workers are inside a notebook; kill the first one's worker and its kernel.
        wait_for(lambda: len(log_lines(log)) >= 2, 120, "two notebooks to start")
        _, victim_item, kernel_pid, worker_pid = log_lines(log)[0]
        victim = next(w for w in workers if w.pid == int(worker_pid))
        os.kill(int(kernel_pid), signal.SIGKILL)
        victim.kill()
        victim.wait(timeout=10)
        release.touch()
        output, _ = sweep.communicate(timeout=120)
    except AssertionError:
        sweep.kill()
        raise AssertionError(f"sweep output:\n{sweep.communicate()[0]}") from None
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, output
    lines = log_lines(log)
    starts = sorted(line[1] for line in lines if line[0] == "start")
    ends = sorted(line[1] for line in lines if line[0] == "end")
    assert ends == ["i1", "i2", "i3"]  # every run finished exactly once
    assert starts == sorted(["i1", "i2", "i3", victim_item])  # only the victim restarted
    survivor = next(w for w in workers if w is not victim)
    restarted = [line for line in lines if line[0] == "start" and line[1] == victim_item][1]
    assert int(restarted[3]) == survivor.pid  # rescheduled onto the other worker
    table = load_results(tmp_path / "results" / "faults")
    assert sorted(table["item"]) == ["i1", "i2", "i3"]
    assert list(table["status"]) == ["done"] * 3
