"""Compile the tracking and metric kernels into numba's disk cache while a sweep starts.

numba compiles a kernel on its first call and keeps it in its disk cache (``cache=True``). In a
fresh checkout, the first notebook that tracks and scores a clip pays that compilation (about
9 s of CPU on the demo machine, twice that on a slow one) in the middle of the sweep, where it
holds up that worker's queue of short notebooks. ``endobench ablate`` therefore runs this
module (:func:`in_background`) as a separate lowest-priority process while it plans: it tracks a
tiny synthetic clip forward and bidirectionally by DIS flow and scores it with J&F, Dice / HD95
and T, which compiles what the tracking notebooks run while the planner keeps one core busy.
Afterwards it only takes CPU time that nothing else wants. With the cache warm it loads the
kernels and exits within about a second. It changes no result: the notebooks load the very
code numba would otherwise compile for them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

#: What the warm-up scores: every per-frame metric a tracking notebook asks for.
METRICS = ("jf", "dice", "hd95", "t")


def compile_kernels() -> None:
    """Track and score a 12-frame 48x64 synthetic clip, forward and bidirectional."""
    from endobench.data.synthetic import generate_clip
    from endobench.data.synthetic_config import SyntheticConfig
    from endobench.propagation import track_and_score

    clip = generate_clip(SyntheticConfig(num_frames=12, height=48, width=64), seed=0)
    for bidirectional in (False, True):
        track_and_score(
            [clip], "flow:dis", "every:6", metrics=METRICS, keyframe_source="gt",
            bidirectional=bidirectional, progress=False,
        )  # fmt: skip


@contextlib.contextmanager
def in_background(enabled: bool = True) -> Iterator[None]:
    """Run :func:`compile_kernels` in a new lowest-priority process (output discarded) while the
    block runs; on leaving, wait for it (it is done long before a sweep is, and a command that
    waits for it accounts for its CPU time). ``enabled=False`` starts nothing."""
    process = None
    if enabled:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        yield
    finally:
        if process is not None:
            process.wait()


if __name__ == "__main__":
    os.nice(19)
    compile_kernels()
