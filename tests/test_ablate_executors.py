"""Executors: device/thread assignment per worker, in-process failure isolation."""

from __future__ import annotations

import pytest

from endobench.ablate.executors import InProcessExecutor, Job, visible_gpus, worker_environments


def test_one_gpu_per_worker_round_robin_and_an_equal_cpu_share() -> None:
    envs = worker_environments(3, ["0", "1"], cpus=8)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"2"}  # 8 // 3
    assert (
        worker_environments(4, [], cpus=2) == [{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}] * 4
    )  # no GPUs: CUDA_VISIBLE_DEVICES untouched, at least one thread


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
