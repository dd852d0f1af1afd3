"""Shared fixtures (the one place that locates the real data samples in ../shared) and how the
suite shares the cores: thread pools per xdist worker, longest files first."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from endobench.ablate.executors import worker_environments

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Test files that take longest, longest first (``pytest --durations=0`` on 2 cores). The
#: scheduler hands them out before everything else, so the workers finish together instead of
#: one starting a two-minute file at the end.
LONGEST_FIRST = (
    "tests/test_notebooks.py",
    "tests/test_ablate_runner.py",
    "tests/test_train.py",
    "tests/test_affinity.py",
    "tests/test_tracker.py",
    "tests/test_tracker_bidirectional.py",
    "tests/test_report.py",
    "notebooks/02_train_segmentation.ipynb",
    "tests/test_metrics_vectors.py",
    "tests/test_models_load.py",
    "tests/test_ablate_dask_faults.py",
    "tests/test_ablate_integrity.py",
    "tests/test_metrics_temporal.py",
)


def _share_the_cores_between_workers() -> None:
    """Give each xdist worker's thread pools ``cores // workers`` threads, as ``endobench ablate``
    gives its workers: the kernels and subprocesses a test starts inherit them. Pools sized for
    every core in every worker oversubscribe the machine and spin-wait for each other. Set at
    import, before any test imports torch or OpenCV (numpy's BLAS pool, loaded already, does
    little work here)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is None:
        return
    (share,) = worker_environments(1, [], (os.cpu_count() or 1) // int(workers))
    for name, threads in share.items():
        os.environ.setdefault(name, threads)  # an explicit setting wins


_share_the_cores_between_workers()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist=loadfile`` (pyproject's default) that hands out the longest work first.

    A file stays on one worker (module fixtures, and a notebook's nbval cells share a kernel);
    the files of :data:`LONGEST_FIRST` go out first, in that order, then the rest as xdist
    orders them (most tests first).
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    def rank(scope: str) -> int:
        return LONGEST_FIRST.index(scope) if scope in LONGEST_FIRST else len(LONGEST_FIRST)

    class LongestFirst(LoadFileScheduling):
        def _assign_work_unit(self, node: object) -> None:
            longest = min(self.workqueue, key=rank)  # the first of those ranked equal
            self.workqueue.move_to_end(longest, last=False)
            super()._assign_work_unit(node)

    return LongestFirst(config, log)


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
