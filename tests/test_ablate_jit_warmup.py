"""The sweep's numba warm-up compiles what tracking and scoring a real clip needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# In a fresh process with the given numba cache: track the first 12 frames of the real
# CholecSeg8k clip (13 classes, void) forward and bidirectionally, score them as the tracking
# notebooks do, and count, over every numba kernel endobench defines, the signatures loaded
# from the disk cache and those compiled.
TRACK_AND_COUNT = r"""
import json, sys
import numba
from endobench.data import Clip, open_dataset
from endobench.propagation import track_and_score

clip = open_dataset("cholecseg8k").clips()[0]
n = 12
clip = Clip(clip.name, clip.frame_names[:n], clip.frame, clip.mask,
            [t for t in clip.annotated if t < n], clip.classes, clip.fps, clip.fov_mask,
            clip.meta, clip.void_id)
for bidirectional in (False, True):
    track_and_score([clip], "flow:dis", "every:6", metrics=("jf", "dice", "t"),
                    keyframe_source="gt", bidirectional=bidirectional, progress=False)
hits = misses = 0
for name, module in list(sys.modules.items()):
    if not name.startswith("endobench"):
        continue
    for value in vars(module).values():
        if isinstance(value, numba.core.registry.CPUDispatcher):
            hits += sum(value.stats.cache_hits.values())
            misses += sum(value.stats.cache_misses.values())
print(json.dumps({"hits": hits, "misses": misses}))
"""


def _run(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True, timeout=300)


def test_after_the_warmup_a_real_clip_compiles_nothing(tmp_path, samples):
    cache = tmp_path / "numba"
    _run([sys.executable, "-m", "endobench.ablate.jit_warmup"], cache)
    counts = json.loads(
        _run([sys.executable, "-c", TRACK_AND_COUNT], cache).stdout.splitlines()[-1]
    )
    assert counts["misses"] == 0  # every kernel the clip needs came from the cache
    assert counts["hits"] >= 10  # (J/F, boundary, T kernels: the counters do count)
