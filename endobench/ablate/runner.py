"""Run a sweep: execute every stage task of a plan with papermill, resumably and in parallel.

``run_sweep`` reuses tasks whose folder is ``done`` and verifies (same identity, outputs with
their recorded sha256: ``reuse_problem``), executes the others again saying why in one line,
skips ``failed`` ones unless asked to rerun them (or their inputs changed), records a failure
(traceback, partial notebook) without stopping the others, marks the tasks in flight
``interrupted`` on Ctrl-C, and shows a progress bar counting notebooks per stage.
``execute_stage`` is the unit of work a worker runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from endobench.ablate import run_files as rf
from endobench.ablate.executors import DaskExecutor, InProcessExecutor, Job
from endobench.ablate.grid import GridConfig
from endobench.ablate.identity import changed_parts, digest
from endobench.ablate.papermill_import import papermill
from endobench.ablate.plan import GRID_FILE, PLAN_FILE, StageTask, SweepPlan, plan_sweep
from endobench.ablate.provenance import code_version
from endobench.io_utils import atomic_write_json, atomic_write_text

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SKIPPED = "skipped"
#: Folder of a sweep (beside runs/) where tracking runs share their reference scores.
REFERENCES_DIR = "references"


@dataclass(frozen=True)
class StageOptions:
    """How a stage is executed (the same for every task of a sweep)."""

    kernel: str = "python3"
    cwd: str | None = None  # working directory of the notebook kernels
    start_timeout: int = 120  # seconds to wait for a kernel to start
    # modules imported once by a process that forks the kernels (endobench.ablate.warm_kernels);
    # None: every kernel starts as a new interpreter
    preload: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StageOutcome:
    """What became of one task: ``done``, ``failed`` or ``skipped`` (already done elsewhere)."""

    key: str
    status: str
    seconds: float
    message: str = ""


@dataclass
class SweepResult:
    """The plan and the outcome of every task that was attempted (keyed by task key)."""

    plan: SweepPlan
    outcomes: dict[str, StageOutcome] = field(default_factory=dict)

    def run_statuses(self) -> dict[str, str]:
        """run_id -> status of its last stage on disk."""
        return {r.run_id: rf.read_status(r.run_dir) for r in self.plan.runs}


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """Exclusive lock on a task folder, so two sweeps never execute the same task at once."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _notebook_traceback(err: BaseException) -> str:
    """Readable text of a failure: the failing cell's traceback for notebook errors."""
    cell_tb = getattr(err, "traceback", None)  # papermill.PapermillExecutionError
    if isinstance(cell_tb, list):
        head = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
        cell = getattr(err, "exec_count", None)
        text = f"notebook failed in cell [{cell}]\n{head}\n\n" + "\n".join(cell_tb)
    else:
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return _ANSI.sub("", text)


def reuse_problem(task: StageTask) -> str | None:
    """Why the result in ``task.out_dir`` may not be reused, or None when it may.

    A result is reused when its status is ``done``, its recorded identity equals the task's
    (same parameters, notebook code, dataset entries and files, weights, endobench version,
    upstream stages), every output file still has its recorded sha256, and every upstream
    stage still has the outputs this one consumed.
    """
    status = rf.read_status(task.out_dir)
    if status != rf.DONE:
        return f"it is {status}"
    info = _run_info(task.out_dir)
    if not info:
        return f"{rf.RUN_INFO_FILE} is missing or unreadable"
    changed = changed_parts(info.get("identity"), task.identity)
    if changed:
        return f"its inputs changed ({', '.join(changed)})"
    problem = rf.output_problem(task.out_dir, info.get("outputs"))
    if problem:
        return problem
    consumed = info.get("upstream_outputs", {})
    for path in task.upstream:
        if consumed.get(_stage_name(path)) != _outputs_digest(path):
            return f"upstream stage {_stage_name(path)} has new outputs"
    return None


def _run_info(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / rf.RUN_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _stage_name(out_dir: Path) -> str:
    """``<stage dir>/<stage id>``: an upstream folder's name within its sweep folder."""
    return f"{out_dir.parent.name}/{out_dir.name}"


def _outputs_digest(out_dir: Path) -> str:
    """Digest of the output checksums a finished stage recorded (what downstream consumed)."""
    return digest(_run_info(out_dir).get("outputs"))


def _is_interrupt(err: BaseException) -> bool:
    """A notebook stopped by Ctrl-C / Kernel > Interrupt (papermill reports the kernel's error)."""
    return isinstance(err, KeyboardInterrupt) or getattr(err, "ename", None) == "KeyboardInterrupt"


def execute_stage(task: StageTask, options: StageOptions = StageOptions()) -> StageOutcome:
    """Execute one stage notebook into ``task.out_dir`` and record its status.

    Never raises for a notebook failure: it is written to ``traceback.txt`` and ``status``. A
    Ctrl-C marks the task ``interrupted`` and is raised again.
    """
    pm = papermill()  # imported on first use: slow to import

    out = task.out_dir
    start = time.perf_counter()
    with _locked(out):
        if reuse_problem(task) is None:  # e.g. done by another sweep, or upstream unchanged
            return StageOutcome(task.key, SKIPPED, 0.0, "its result is valid")
        rf.clear_outputs(out)
        info = {
            "stage": task.stage,
            "stage_id": task.stage_id,
            "notebook": str(task.notebook),
            "notebook_code_sha256": task.identity.get("notebook"),
            "identity": task.identity,
            "identity_sha256": digest(task.identity),
            "upstream": [str(p) for p in task.upstream],
            "upstream_outputs": {_stage_name(p): _outputs_digest(p) for p in task.upstream},
            "code": code_version(),
            "host": socket.gethostname(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "started": _now(),
        }
        atomic_write_json(out / rf.PARAMS_FILE, task.record)
        atomic_write_json(out / rf.RUN_INFO_FILE, info)
        not_done = [p for p in task.upstream if rf.read_status(p) != rf.DONE]
        if not_done:
            message = _upstream_failure(not_done)
            rf.write_status(out, rf.FAILED, message)
            return StageOutcome(task.key, rf.FAILED, 0.0, message.splitlines()[0])
        rf.write_status(out, rf.RUNNING)
        interrupted: BaseException | None = None
        tb: str | None
        try:
            pm.execute_notebook(
                str(task.notebook),
                str(out / task.notebook.name),
                parameters=kernel_parameters(task),
                kernel_name=options.kernel,
                progress_bar=False,
                cwd=options.cwd,
                start_timeout=options.start_timeout,
                # Kernel-side log lines (ipykernel's TCP notice, shutdown chatter) would break the
                # progress bar once per notebook; errors still reach the executed notebook.
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
                **_kernel_manager(options),
            )
            missing = [n for n in (rf.METRICS_FILE, rf.SUMMARY_FILE) if not (out / n).is_file()]
            if missing:
                raise RuntimeError(
                    f"{task.notebook.name} finished but did not write {missing} into run_dir "
                    f"{out} (call endobench.ablate.write_run_outputs)"
                )
        except (Exception, KeyboardInterrupt) as err:
            tb = _notebook_traceback(err)
            status, message = rf.FAILED, tb.strip().splitlines()[0] if tb.strip() else repr(err)
            if _is_interrupt(err):
                interrupted = err
                status, tb = rf.INTERRUPTED, f"interrupted (Ctrl-C) at {_now()}\n"
                message = "interrupted"
        else:
            tb, status, message = None, rf.DONE, ""
        seconds = time.perf_counter() - start
        finished = {"finished": _now(), "seconds": round(seconds, 3)}
        if status == rf.DONE:
            finished["outputs"] = rf.output_checksums(out)
        atomic_write_json(out / rf.RUN_INFO_FILE, {**info, **finished})
        rf.write_status(out, status, tb)
        if interrupted is not None:
            raise KeyboardInterrupt(f"{task.key} interrupted") from None
    return StageOutcome(task.key, status, seconds, message)


def kernel_parameters(task: StageTask) -> dict[str, Any]:
    """What the notebook receives: the task's parameters and ``run_dir``; a tracking stage with
    ``reference: true`` also gets ``reference_cache``, the sweep's folder where runs share their
    ground-truth-keyframe references (``endobench.ablate.references``). Neither is part of the
    task's identity, so moving ``results/`` changes no identity."""
    params = {**task.params, "run_dir": str(task.out_dir)}
    if task.params.get("reference") is True and "reference_cache" not in params:
        params["reference_cache"] = str(task.out_dir.parent.parent / REFERENCES_DIR)
    return params


def _kernel_manager(options: StageOptions) -> dict[str, type]:
    """papermill keyword choosing how kernels start: forked warm, or jupyter_client's default."""
    if options.preload is None:
        return {}
    from endobench.ablate.warm_kernels import warm_kernel_manager

    return {"kernel_manager_class": warm_kernel_manager(options.preload)}


def _upstream_failure(stage_dirs: list[Path]) -> str:
    """Traceback text of a task whose upstream stages are not done: theirs, quoted."""
    parts = []
    for path in stage_dirs:
        try:
            upstream_tb = (path / rf.TRACEBACK_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            upstream_tb = "(no traceback: it did not run or was interrupted)\n"
        parts.append(
            f"upstream stage {path} is {rf.read_status(path)}; its traceback:\n{upstream_tb}"
        )
    return "".join(parts)


def _record_crash(task: StageTask, err: BaseException) -> StageOutcome:
    """A task that died outside the notebook (e.g. its worker was killed): mark it failed."""
    task.out_dir.mkdir(parents=True, exist_ok=True)
    text = _notebook_traceback(err)
    rf.write_status(
        task.out_dir, rf.FAILED, f"task {task.key} crashed outside the notebook\n{text}"
    )
    return StageOutcome(task.key, rf.FAILED, 0.0, f"{type(err).__name__}: {err}")


def write_sweep_files(plan: SweepPlan) -> None:
    """Save the grid and the plan into ``results/<grid>/`` (what the report reads)."""
    grid = plan.grid.model_dump(mode="json")
    for record, stage in zip(grid["stages"], plan.grid.stages, strict=True):
        record["notebook"] = str(plan.grid.notebook_path(stage))
    atomic_write_text(plan.grid_dir / GRID_FILE, yaml.safe_dump(grid, sort_keys=False))
    # Not atomic_write_json: that sorts keys, and the report keeps the grid's axis order.
    atomic_write_text(plan.grid_dir / PLAN_FILE, json.dumps(plan.to_dict(), indent=2) + "\n")


@dataclass(frozen=True)
class Todo:
    """The tasks a sweep executes, and why each done or failed one is executed again."""

    tasks: list[StageTask]
    reasons: dict[str, str]  # task key -> one line, for done / failed tasks executed again
    failed_kept: int  # failed tasks left alone (no --rerun-failed)


def tasks_to_execute(plan: SweepPlan, rerun_failed: bool = False) -> Todo:
    """Tasks to execute: not done, not reusable (inputs changed, outputs corrupt), or failed
    with ``rerun_failed`` (failed ones are otherwise kept); plus the done tasks downstream of
    one that executes, which run after it only if its outputs then differ from those they used.
    """
    todo: list[StageTask] = []
    reasons: dict[str, str] = {}
    executing: set[Path] = set()
    failed_kept = 0
    for task in plan.tasks.values():  # upstream stages come first
        status = rf.read_status(task.out_dir)
        upstream = [p for p in task.upstream if p in executing]
        problem = reuse_problem(task) if status == rf.DONE else None
        if status == rf.DONE and problem is None and not upstream:
            continue
        if status == rf.FAILED and not rerun_failed and not upstream:
            changed = _changed_since_failure(task)
            if not changed:
                failed_kept += 1
                continue
            problem = f"its inputs changed since it failed ({', '.join(changed)})"
        if problem or (status == rf.FAILED and not upstream):
            reasons[task.key] = problem or "--rerun-failed"
        todo.append(task)
        executing.add(task.out_dir)
    return Todo(todo, reasons, failed_kept)


def _changed_since_failure(task: StageTask) -> list[str]:
    try:
        info = json.loads((task.out_dir / rf.RUN_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return changed_parts(info.get("identity"), task.identity) if "identity" in info else []


def _open_executor(scheduler: str | None, workers: int) -> DaskExecutor | InProcessExecutor:
    return DaskExecutor(workers, scheduler) if scheduler or workers > 1 else InProcessExecutor()


def _mark_interrupted(tasks: list[StageTask]) -> list[StageTask]:
    """Mark tasks left ``running`` by this sweep ``interrupted`` (unless a process holds them)."""
    marked = []
    for task in tasks:
        if rf.read_status(task.out_dir) != rf.RUNNING:
            continue
        with open(task.out_dir / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # still executing elsewhere (a remote worker)
                continue
            rf.write_status(task.out_dir, rf.INTERRUPTED, f"interrupted (Ctrl-C) at {_now()}\n")
            marked.append(task)
    return marked


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C / Kernel > Interrupt during a sweep; ``str()`` is the one line to show."""


def run_sweep(
    grid: GridConfig,
    results_root: str | Path = "results",
    workers: int = 1,
    scheduler: str | None = None,
    rerun_failed: bool = False,
    progress: bool = True,
    options: StageOptions | None = None,
    plan: SweepPlan | None = None,
) -> SweepResult:
    """Run every task of ``grid`` under ``results_root/<grid.name>/`` that has no valid result.

    workers: 1 runs in this process; more start a Dask LocalCluster with that many workers;
    scheduler: address of an existing Dask scheduler (``workers`` is then ignored). Prints one
    line per result executed again (and why) and "N runs already done, M to run". Ctrl-C marks
    the tasks in flight ``interrupted`` and raises :class:`SweepInterrupted`. ``plan``: the
    result of ``plan_sweep(grid, results_root)`` when the caller has it already.
    """
    plan = plan or plan_sweep(grid, results_root)
    if options is None:
        options = StageOptions(grid.kernel, str(Path.cwd()), preload=_preload(grid, scheduler))
    todo = tasks_to_execute(plan, rerun_failed)
    say = partial(tqdm.write, file=sys.stderr) if progress else _silent
    executor = _open_executor(scheduler, workers)
    with executor:  # connects to the scheduler first: a bad address writes nothing
        plan.grid_dir.mkdir(parents=True, exist_ok=True)
        write_sweep_files(plan)
        for task in todo.tasks:
            if task.key in todo.reasons:
                say(f"executing {task.key} again: {todo.reasons[task.key]}")
        runs_todo = {r.run_id for r in plan.runs if any(t in todo.tasks for t in r.tasks)}
        done = sum(
            r.run_id not in runs_todo and rf.read_status(r.run_dir) == rf.DONE for r in plan.runs
        )
        say(
            f"{grid.name}: {done} runs already done, {len(runs_todo)} to run "
            f"({_per_stage(todo.tasks, grid)} notebooks)"
        )
        if todo.failed_kept:
            say(
                f"{todo.failed_kept} failed notebook(s) are not executed again; "
                "add --rerun-failed to retry them"
            )
        result = _execute(plan, todo.tasks, executor, options, progress)
    return result


def _preload(grid: GridConfig, scheduler: str | None) -> tuple[str, ...] | None:
    """Warm kernels in this process (``workers=1``) and on the LocalCluster a sweep starts; on a
    cluster it does not own (``scheduler``) kernels start as new interpreters."""
    if scheduler:
        return None
    from endobench.ablate.warm_kernels import preload_for

    return preload_for(grid.notebook_path(s) for s in grid.stages)


def _silent(_message: str) -> None:
    return None


def _per_stage(tasks: list[StageTask], grid: GridConfig) -> str:
    counts = {s.name: 0 for s in grid.stages}
    for task in tasks:
        counts[task.stage] += 1
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def _execute(
    plan: SweepPlan,
    todo: list[StageTask],
    executor: DaskExecutor | InProcessExecutor,
    options: StageOptions,
    progress: bool,
) -> SweepResult:
    key_of_dir = {t.out_dir: t.key for t in todo}
    jobs = [
        Job(t.key, t, tuple(key_of_dir[d] for d in t.upstream if d in key_of_dir), t.cost)
        for t in todo
    ]
    result = SweepResult(plan)
    by_key = {t.key: t for t in todo}
    totals = {s.name: 0 for s in plan.grid.stages}
    for task in todo:
        totals[task.stage] += 1
    finished = dict.fromkeys(totals, 0)
    bar = tqdm(
        total=len(todo), desc=f"ablate {plan.grid.name}", unit="notebook", disable=not progress
    )
    failed = 0
    try:
        with bar:
            for key, value in executor.run(partial(execute_stage, options=options), jobs):
                outcome = (
                    value if isinstance(value, StageOutcome) else _record_crash(by_key[key], value)
                )
                result.outcomes[key] = outcome
                failed += outcome.status == rf.FAILED
                finished[by_key[key].stage] += 1
                bar.set_postfix_str(
                    ", ".join(f"{s} {finished[s]}/{n}" for s, n in totals.items() if n)
                    + f", failed {failed}"
                )
                bar.update()
    except KeyboardInterrupt:
        pending = [t for t in todo if t.key not in result.outcomes]
        marked = _mark_interrupted(pending)
        in_flight = marked + [
            t for t in pending if t not in marked and rf.read_status(t.out_dir) == rf.INTERRUPTED
        ]
        example = f" (e.g. {in_flight[0].out_dir})" if in_flight else ""
        raise SweepInterrupted(
            f"{len(in_flight)} notebook(s) in flight marked interrupted{example}; run the same "
            "command again to resume"
        ) from None
    return result
