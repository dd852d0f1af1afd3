"""Executors: device/thread assignment per worker, in-process failure isolation."""

from __future__ import annotations

import os

import pytest

from endobench.ablate.executors import (
    THREAD_VARIABLES,
    DaskExecutor,
    InProcessExecutor,
    Job,
    order_by_dependents,
    visible_gpus,
    worker_environments,
)


def test_one_gpu_per_worker_round_robin_and_an_equal_cpu_share() -> None:
    envs = worker_environments(3, ["0", "1"], cpus=8)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"2"}  # 8 // 3
    assert {v for e in envs for k, v in e.items() if k in THREAD_VARIABLES} == {"2"}
    assert (
        worker_environments(4, [], cpus=2) == [dict.fromkeys(THREAD_VARIABLES, "1")] * 4
    )  # no GPUs: CUDA_VISIBLE_DEVICES untouched, at least one thread
    assert {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"} <= set(THREAD_VARIABLES)


@pytest.mark.parametrize(
    ("env", "expected"), [("2,3", ["2", "3"]), ("", []), ("-1", []), (" 1 , ", ["1"])]
)
def test_visible_gpus_respects_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, env: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    assert visible_gpus() == expected


def test_in_process_executor_yields_errors_and_goes_on() -> None:
    def square(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x * x

    out = list(InProcessExecutor().run(square, [Job(str(i), i) for i in range(4)]))
    assert [k for k, _ in out] == ["0", "1", "2", "3"]
    assert [v for _, v in out if not isinstance(v, Exception)] == [0, 1, 9]
    assert str(out[2][1]) == "two"


# t2 <- b, t2 <- c <- d, t1 <- a: t2 has 3 jobs waiting for it, t1 and c one each.
DIAMOND = [
    Job("t1", 1),
    Job("t2", 2),
    Job("a", 3, ("t1",)),
    Job("b", 4, ("t2",)),
    Job("c", 5, ("t2",)),
    Job("d", 6, ("c",)),
]


def test_jobs_that_more_jobs_wait_for_come_first_ties_keep_their_order() -> None:
    assert [j.key for j in order_by_dependents(DIAMOND)] == ["t2", "t1", "c", "a", "b", "d"]
    assert order_by_dependents(DIAMOND[:2]) == DIAMOND[:2]


def test_ties_go_to_the_head_of_the_costliest_chain() -> None:
    # t1 and t2 have one job waiting each: t1's chain costs 1 + 10, t2's 5 + 1; then a before b
    jobs = [Job("t2", 2, (), 5.0), Job("t1", 1, (), 1.0), Job("b", 4, ("t2",), 1.0)]
    jobs.append(Job("a", 3, ("t1",), 10.0))
    assert [j.key for j in order_by_dependents(jobs)] == ["t1", "t2", "a", "b"]


def _started_at(payload: int) -> tuple[int, float]:
    import time

    started = time.monotonic()
    time.sleep(0.05)
    return payload, started


def test_dask_runs_ready_jobs_by_dependents_one_per_worker_thread() -> None:
    # One single-threaded worker: the start order is the schedule itself. After t2 and t1,
    # c (one job waits for it) goes before a and b (none), d last (it waits for c).
    with DaskExecutor(n_workers=1) as executor:
        out = dict(executor.run(_started_at, DIAMOND))
        kernel_env = dict(executor.run(_kernel_environment, [Job("env", None)]))["env"]
    starts = sorted(out, key=lambda key: out[key][1])
    assert starts == ["t2", "t1", "c", "a", "b", "d"]
    assert {k: v[0] for k, v in out.items()} == {j.key: j.payload for j in DIAMOND}
    # what the notebook kernels a worker starts inherit: Dask's nanny gave the worker
    # MALLOC_TRIM_THRESHOLD_=65536, kernels must not get it (8.6x the page faults in training)
    worker_trim, kernel_trim, threads = kernel_env
    assert worker_trim == "65536" and kernel_trim is None
    assert threads == worker_environments(1, [], os.cpu_count() or 1)[0]["OMP_NUM_THREADS"]


def _kernel_environment(_payload: None) -> tuple[str | None, str | None, str | None]:
    """MALLOC_TRIM_THRESHOLD_ of this worker process (from /proc) and of its children."""
    import os
    from pathlib import Path

    own = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{os.getpid()}/environ").read_text().split("\0")
        if "=" in item
    )
    return (
        own.get("MALLOC_TRIM_THRESHOLD_"),
        os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        os.environ.get("OMP_NUM_THREADS"),
    )
