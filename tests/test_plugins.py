"""Plugins from a real installed distribution: entry points ``endobench.plugins`` in fresh processes.

The test writes two distributions into a folder put on ``PYTHONPATH`` (a module plus a
``*.dist-info`` with METADATA and ``entry_points.txt``, exactly what pip installs): ``demo``
registers a keyframe policy and a flow estimator, ``broken`` raises on import. Every check runs in
a new process, as a papermill kernel or a shell would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

DEMO_PLUGIN = '''\
"""An endobench plugin: keyframes on even frames, and a flow estimator that sees no motion."""

import numpy as np

from endobench.propagation.flow import FlowEstimator
from endobench.registry import FLOW_ESTIMATORS, KEYFRAME_POLICIES


class EvenFrames:
    spec = "evens"
    needs_confidence = False
    needs_drift = False

    def decide(self, t, state):
        return t % 2 == 0


@KEYFRAME_POLICIES.register("evens")
def evens():
    """Keyframe on every even frame."""
    return EvenFrames()


class ZeroFlow(FlowEstimator):
    name = "zero"

    def __call__(self, prev, nxt):
        return np.zeros((*np.asarray(prev).shape[:2], 2), np.float32)


@FLOW_ESTIMATORS.register("zero")
def zero(weights=None, allow_random_init=False, device=None):
    """No motion at all (a copy through the flow machinery)."""
    return ZeroFlow()
'''


def _distribution(site: Path, name: str, module: str, source: str) -> None:
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[endobench.plugins]\n{name} = {module}\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugins")
    _distribution(root, "demo", "eb_demo_plugin", DEMO_PLUGIN)
    _distribution(root, "broken", "eb_broken_plugin", 'raise RuntimeError("boom")\n')
    (root / "r.yaml").write_text(
        "datasets:\n  tiny:\n    format: synthetic\n    num_clips: 1\n"
        "    config: {num_frames: 7, height: 48, width: 64}\n"
    )
    return root


def run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{REPO_ROOT}", PYTHONWARNINGS="default")
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=site, env=env, timeout=300
    )


BROKEN_WARNING = "endobench plugin 'broken' (eb_broken_plugin) failed to load: boom"


def test_list_shows_plugins_their_names_and_the_failure(site: Path) -> None:
    proc = run(site, "-m", "endobench.cli", "list", "keyframe_policies", "flow_estimators")
    assert proc.returncode == 0, proc.stderr
    assert BROKEN_WARNING in proc.stderr and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert "  evens     Keyframe on every even frame. [plugin demo]" in lines
    assert (
        "  zero        No motion at all (a copy through the flow machinery). [plugin demo]" in lines
    )
    assert "  demo  eb_demo_plugin  loaded" in lines
    assert "  broken  FAILED: RuntimeError: boom" in lines

    data = json.loads(
        run(site, "-m", "endobench.cli", "list", "--json", "keyframe_policies").stdout
    )
    names = [e["name"] for e in data["registries"]["keyframe_policies"]["entries"]]
    assert names == ["first", "every", "list", "adaptive", "all", "evens"]  # plugins last
    assert data["plugins"] == {
        "loaded": {"demo": "eb_demo_plugin"},
        "failed": {"broken": "RuntimeError: boom"},
    }


def test_track_accepts_the_plugin_policy_and_flow(site: Path) -> None:
    out = site / "out"
    proc = run(
        site, "-m", "endobench.cli", "track", "--dataset", "tiny", "--datasets", "r.yaml",
        "--keyframes", "evens", "--propagation", "flow:zero", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "track.json").read_text())
    (clip,) = record["clips"].values()
    assert clip["keyframes"] == [0, 2, 4, 6] and clip["frames"] == 7
    assert record["parameters"]["keyframes"] == "evens"
    assert record["propagator"]["name"] == "flow:zero"
    assert len(list(next(out.glob("synthetic*")).glob("*.png"))) == 7


def test_a_fresh_interpreter_sees_the_plugin_and_endobench_survives_the_broken_one(
    site: Path,
) -> None:
    code = (
        "from endobench.registry import KEYFRAME_POLICIES, PROPAGATORS\n"
        "policy = KEYFRAME_POLICIES.build('evens')\n"
        "print(policy.spec, [t for t in range(5) if policy.decide(t, None)])\n"
        "print(PROPAGATORS.parse('flow:zero').options.method)\n"
        "print(KEYFRAME_POLICIES.build('every:3').spec)\n"
    )
    proc = run(site, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["evens [0, 2, 4]", "zero", "every:3"]
    assert BROKEN_WARNING in proc.stderr
