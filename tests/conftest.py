"""Shared fixtures: the one place that locates the real data samples in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _thread_pools_per_worker() -> None:
    """Under xdist, each worker's libraries (and the kernels and commands it starts) get
    ``cores // workers`` threads, as ``endobench ablate`` gives its workers: two workers on two
    cores running two-thread pools each spent CPU on spinning OpenMP threads. Set before any test
    module imports torch, numba or OpenCV; a variable set by the caller wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 0:
        from endobench.ablate.executors import THREAD_VARIABLES

        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, threads)


_thread_pools_per_worker()


def samples_root() -> Path:
    """Root of the real data samples: $ENDOBENCH_SAMPLES, default ../shared/data from the repo."""
    return Path(os.environ.get("ENDOBENCH_SAMPLES", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def samples() -> Path:
    """Path of ``shared/data`` (real DAVIS, Kvasir-SEG, BAGLS, CholecInstanceSeg samples)."""
    root = samples_root()
    if not root.is_dir():
        pytest.fail(f"real data samples not found at {root}; set ENDOBENCH_SAMPLES")
    return root


@pytest.fixture(scope="session")
def metric_vectors(samples: Path) -> Path:
    """Path of ``shared/testdata/metrics`` (reference numbers for the metrics)."""
    root = samples.parent / "testdata" / "metrics"
    if not root.is_dir():
        pytest.fail(f"metric test vectors not found at {root}")
    return root


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    """A notebook with a cell tagged ``parameters`` followed by ``body``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ]
    nbformat.write(nb, path)
    return path
