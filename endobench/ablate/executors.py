"""Where stage tasks run: in this process one after another, or on Dask distributed workers.

Both executors take tasks in dependency order with, for each, the keys of the tasks it must
wait for, and yield ``(key, result or exception)`` as tasks finish. The Dask executor hands a
task to the cluster only once the tasks it waits for have finished and a worker thread is free,
choosing among the ready ones the task that most other tasks wait for, then the one heading the
costliest chain of work (its estimated cost plus that of the costliest chain waiting for it),
then the first in the given order: a sweep starts all its trainings before any tracking, its
longest trainings first, and no long training is left for the end while cheap notebooks go
first. Dask runs a LocalCluster (one process per worker, one thread each, one GPU each when
GPUs exist) or connects to an existing scheduler, e.g. one started by dask-jobqueue on SLURM or
dask-kubernetes; there the cluster manager decides which GPU a worker sees, so we leave
``CUDA_VISIBLE_DEVICES`` alone.
Remote workers need the repository (notebooks, same endobench) and the results folder at the
same paths, i.e. a shared file system, as is usual on SLURM and Kubernetes clusters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from endobench.errors import UserError

TaskFn = Callable[[Any], Any]


@dataclass(frozen=True)
class Job:
    """A unit of work: ``fn(payload)`` once every job named in ``after`` has finished."""

    key: str
    payload: Any
    after: tuple[str, ...] = ()
    cost: float = 0.0  # estimated compute, any unit shared by the jobs of one run (0: unknown)


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``$CUDA_VISIBLE_DEVICES`` if set, else all CUDA devices."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


#: Thread-pool sizes read by the libraries a kernel uses: OpenMP (torch), MKL, OpenBLAS, numexpr,
#: numba and OpenCV (whose pool would otherwise take every core in every kernel).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
)


#: Set by Dask's nanny for its workers (``distributed.nanny.pre-spawn-environ``) and inherited by
#: every kernel they start. A 64 KiB trim threshold switches off glibc's dynamic mmap threshold,
#: so each torch activation is a fresh mmap: a training kernel page-faulted 8.6x as often and
#: spent 1.4x the CPU (sys 5x). Kernels start without it (the worker itself keeps Dask's setting).
KERNEL_UNSET_VARIABLES = ("MALLOC_TRIM_THRESHOLD_",)


def worker_environments(n_workers: int, gpus: Sequence[str], cpus: int) -> list[dict[str, str]]:
    """Environment of each local worker: one GPU each (round robin) and an equal CPU share.

    The notebook kernels a worker starts inherit it, so worker ``i`` sees only its GPU and every
    thread pool in its kernels has ``cpus // n_workers`` threads (at least one) instead of one
    per core in each of them: pools that oversubscribe the cores spin-wait for each other.
    """
    threads = str(max(1, cpus // max(1, n_workers)))
    envs = []
    for i in range(n_workers):
        env = dict.fromkeys(THREAD_VARIABLES, threads)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        envs.append(env)
    return envs


class SchedulerUnreachable(UserError, OSError):
    """No Dask scheduler answers at the address given (``--scheduler``)."""


class InProcessExecutor:
    """Runs jobs one after another in this process (``--workers 1``: no Dask needed)."""

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, fn: TaskFn, jobs: Sequence[Job]) -> Iterator[tuple[str, Any]]:
        for job in jobs:
            try:
                yield job.key, fn(job.payload)
            except Exception as err:  # a failed job must not stop the sweep
                yield job.key, err


def _worker_environment_plugin(envs: list[dict[str, str]]) -> Any:
    """Dask worker plugin setting each LocalCluster worker's environment from its index."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class WorkerEnvironment(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            index = int(worker.name) if str(worker.name).isdigit() else 0
            os.environ.update(envs[index % len(envs)])
            for name in KERNEL_UNSET_VARIABLES:  # read by the kernels' glibc, not by the worker's
                os.environ.pop(name, None)

    return WorkerEnvironment()


class DaskExecutor:
    """Runs jobs on Dask distributed: a new LocalCluster, or the scheduler at ``address``.

    Use as a context manager: entering connects (an unreachable scheduler raises
    :class:`SchedulerUnreachable` after ``connect_timeout`` seconds), leaving disconnects and
    stops a LocalCluster it started.
    """

    def __init__(
        self, n_workers: int = 2, address: str | None = None, connect_timeout: float = 5.0
    ) -> None:
        self.n_workers = n_workers
        self.address = address
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskExecutor:
        self._client, self._cluster = self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def _connect(self) -> Any:
        from distributed import Client, LocalCluster

        if self.address:
            try:
                return Client(self.address, timeout=self.connect_timeout), None
            except (OSError, TimeoutError, ValueError) as err:
                cause = " ".join(str(err).split())[:200] or type(err).__name__
                raise SchedulerUnreachable(
                    f"--scheduler {self.address}: no Dask scheduler answered within "
                    f"{self.connect_timeout:g} s ({cause}); start one (`dask scheduler`) or "
                    "check the address"
                ) from None
        cluster = LocalCluster(
            n_workers=self.n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
        envs = worker_environments(self.n_workers, visible_gpus(), os.cpu_count() or 1)
        client.register_plugin(_worker_environment_plugin(envs), name="endobench-worker-env")
        return client, cluster

    def _slots(self) -> int:
        """Worker threads in the cluster now (workers may join or leave during a sweep)."""
        return max(1, sum(self._client.nthreads().values()))

    def run(self, fn: TaskFn, jobs: Sequence[Job]) -> Iterator[tuple[str, Any]]:
        from distributed import wait

        if self._client is None:
            raise RuntimeError("DaskExecutor.run outside `with executor:`")
        client = self._client
        waiting = order_by_dependents(jobs)
        finished: set[str] = set()
        running: dict[Any, str] = {}  # future -> job key
        try:
            while waiting or running:
                slots = self._slots()
                for job in [j for j in waiting if finished.issuperset(j.after)]:
                    if len(running) >= slots:
                        break
                    waiting.remove(job)
                    future = client.submit(fn, job.payload, key=f"endobench-{job.key}", pure=False)
                    running[future] = job.key
                if not running:  # waits on a job that is not in this sweep
                    raise ValueError(f"jobs wait for unknown jobs: {[j.after for j in waiting]}")
                try:  # the timeout lets workers that join later (dask-jobqueue) take work
                    done = wait(list(running), timeout=5, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    continue
                for future in done:
                    key = running.pop(future)
                    finished.add(key)
                    try:
                        yield key, future.result()
                    except Exception as err:  # e.g. KilledWorker: recorded, the sweep goes on
                        yield key, err
        finally:
            client.cancel([f for f in running if not f.done()])


def order_by_dependents(jobs: Sequence[Job]) -> list[Job]:
    """Jobs by how many jobs wait for them, directly or not (most first), then by the cost of the
    costliest chain they head (own cost plus the costliest chain waiting for them; critical-path
    list scheduling), then in the given order."""
    waiting_on: dict[str, set[str]] = {j.key: set() for j in jobs}
    chain: dict[str, float] = {}
    for job in reversed(jobs):  # dependencies come before their dependents
        chain[job.key] = job.cost + chain.get(job.key, 0.0)
        for key in job.after:
            if key in waiting_on:
                waiting_on[key] |= {job.key} | waiting_on[job.key]
                chain[key] = max(chain.get(key, 0.0), chain[job.key])
    return sorted(jobs, key=lambda j: (-len(waiting_on[j.key]), -chain[j.key]))
