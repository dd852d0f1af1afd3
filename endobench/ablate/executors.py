"""Where stage tasks run: in this process one after another, or on Dask distributed workers.

Both executors take tasks in dependency order with, for each, the keys of the tasks it must
wait for, and yield ``(key, result or exception)`` as tasks finish. Dask runs a LocalCluster
(one process per worker, one thread each, one GPU each when GPUs exist) or connects to an
existing scheduler, e.g. one started by dask-jobqueue on SLURM or dask-kubernetes; there the
cluster manager decides which GPU a worker sees, so we leave ``CUDA_VISIBLE_DEVICES`` alone.
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


def worker_environments(n_workers: int, gpus: Sequence[str], cpus: int) -> list[dict[str, str]]:
    """Environment of each local worker: one GPU each (round robin) and an equal CPU share.

    The notebook kernels a worker starts inherit it, so torch in worker ``i`` sees only its GPU
    and uses ``cpus // n_workers`` threads instead of oversubscribing the machine.
    """
    threads = str(max(1, cpus // max(1, n_workers)))
    envs = []
    for i in range(n_workers):
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
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

    def run(self, fn: TaskFn, jobs: Sequence[Job]) -> Iterator[tuple[str, Any]]:
        from distributed import as_completed

        if self._client is None:
            raise RuntimeError("DaskExecutor.run outside `with executor:`")
        client = self._client
        futures = {}
        try:
            for job in jobs:
                deps = [futures[k] for k in job.after if k in futures]
                # Extra positional futures only order the work: Dask waits for them first.
                futures[job.key] = client.submit(
                    _call_after, fn, job.payload, *deps, key=f"endobench-{job.key}", pure=False
                )
            by_future = {f.key: k for k, f in futures.items()}
            for future in as_completed(list(futures.values())):
                key = by_future[future.key]
                try:
                    yield key, future.result()
                except Exception as err:  # e.g. KilledWorker: recorded, the sweep goes on
                    yield key, err
        finally:
            client.cancel([f for f in futures.values() if not f.done()])


def _call_after(fn: TaskFn, payload: Any, *_finished: Any) -> Any:
    return fn(payload)
