"""`endobench list`: every extension point with names, usage and descriptions; light imports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from endobench.cli import main
from endobench.registry import REGISTRIES


def test_list_json_names_usage_and_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    kinds = ["keyframe_policies", "propagators", "flow_estimators", "readers"]
    assert main(["list", "--json", *kinds]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["registries"]) == kinds
    policies = data["registries"]["keyframe_policies"]
    assert policies["kind"] == "keyframe policy" and policies["error"] is None
    by_name = {e["name"]: e for e in policies["entries"]}
    assert list(by_name) == ["first", "every", "list", "adaptive", "all"]
    assert by_name["every"]["usage"] == "every:K" and by_name["every"]["options"] == ["k"]
    assert by_name["adaptive"]["options"] == ["confidence", "drift", "min_gap", "budget"]
    assert by_name["first"]["description"] == "Frame 0 only (pure propagation)."
    assert by_name["first"]["module"] == "endobench.propagation.keyframes"
    assert by_name["first"]["plugin"] is None
    propagators = [e["usage"] for e in data["registries"]["propagators"]["entries"]]
    assert propagators == ["affinity:BACKBONE", "copy", "flow:METHOD"]
    flows = [e["name"] for e in data["registries"]["flow_estimators"]["entries"]]
    assert flows == ["dis", "farneback", "raft_large", "raft_small"]
    formats = [e["name"] for e in data["registries"]["readers"]["entries"]]
    assert {"davis", "kvasir", "cvc-clinicdb", "synthetic", "folder"} <= set(formats)
    assert data["plugins"] == {"loaded": {}, "failed": {}}


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package does not exist
        return False


def test_list_text_every_registry(capsys: pytest.CaptureFixture[str]) -> None:
    # Registries whose module another branch adds (training, report) list as errors until then.
    missing = [m for reg in REGISTRIES.values() for m in reg.modules if not importable(m)]
    code = main(["list"])
    out = capsys.readouterr().out
    assert code == (1 if missing else 0)
    headers = [line.split(" (")[0] for line in out.splitlines() if line and line[0] != " "]
    assert headers == [*REGISTRIES, "plugins"]
    assert "  dinov2_vits14       DINOv2 ViT-S/14 (self-supervised, LVD-142M)" in out
    assert (
        "  every     Whenever K frames have passed since the last keyframe. (usage: every:K)" in out
    )
    assert "  linear  Linear probe: BatchNorm + 1x1 convolution on the last level" in out
    assert out.count("cannot load") == len(missing)
    assert "  none installed" in out


def test_list_rejects_an_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main(["list", "policies"])
    assert err.value.code == 2
    assert "invalid choice: 'policies'" in capsys.readouterr().err


LIGHT = """
import sys
import endobench.data, endobench.propagation
from endobench.registry import FLOW_ESTIMATORS, KEYFRAME_POLICIES, PROPAGATORS, READERS
for registry in (FLOW_ESTIMATORS, KEYFRAME_POLICIES, PROPAGATORS, READERS):
    registry.names()
print("torch" in sys.modules)
import endobench.metrics, endobench.models
print(sorted(m for m in ("albumentations", "papermill", "dask", "seaborn") if m in sys.modules))
"""


def test_inference_packages_import_no_training_or_sweep_machinery() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LIGHT], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    # Flow, policies, propagators and readers list without torch; models need it, nothing more.
    assert proc.stdout.splitlines() == ["False", "[]"]
