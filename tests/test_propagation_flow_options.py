"""DIS options carried by a propagator spec: ``flow:dis:PRESET,key=value,...`` from the CLI,
notebook 03 and grids, with one-line errors naming the field and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from endobench.cli import main
from endobench.errors import UserError
from endobench.propagation import build_propagator
from endobench.propagation.flow import DISFlow, FlowError
from endobench.propagation.propagators import (
    BIDIRECTIONAL_PROPAGATION,
    DEFAULT_PROPAGATION,
    default_propagation,
)
from endobench.registry import FLOW_ESTIMATORS, PROPAGATORS


def test_propagator_spec_carries_every_dis_option():
    spec = "flow:dis:medium,finest_scale=2,patch_size=12,patch_stride=6,refinement_iterations=1"
    propagator = build_propagator(spec)
    dis = propagator.estimator
    assert isinstance(dis, DISFlow)
    assert (dis.finest_scale, dis.patch_size, dis.patch_stride) == (2, 12, 6)
    assert (dis.refinement_iterations, dis.iterations) == (1, 32)
    # The name is a spec that builds the same estimator again.
    assert propagator.name == spec
    assert FLOW_ESTIMATORS.build(dis.name).info() == dis.info()
    # The old spellings keep their meaning; key=value alone works too.
    assert build_propagator("flow:dis:medium").estimator.info() == DISFlow("medium", 32).info()
    same = build_propagator("flow:method=dis:preset=fast,finest_scale=1").estimator
    assert same.name == "dis:fast,finest_scale=1" and same.refinement_iterations == 5
    assert str(PROPAGATORS.parse("flow")) == "flow"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "flow:dis:medium,finest=1",
            "propagator 'flow:dis:medium,finest=1': method: flow method 'dis:medium,finest=1': "
            "unknown or malformed field 'finest=1'; expected key=value with keys preset, ",
        ),
        ("flow:dis:medium,patch_size=0", "patch_size: Input should be greater than or equal to 1"),
        ("flow:dis:turbo", "preset: Input should be 'ultrafast', 'fast' or 'medium'"),
        ("flow:dis:fast,finest_scale=half", "finest_scale: Input should be a valid integer"),
        ("flow:dis:fast,preset=medium", "field 'preset' is given twice"),
        ("flow:dis:ultrafast:finest_scale=1", "unknown or malformed field"),
    ],
)
def test_bad_dis_options_are_one_line_user_errors(spec: str, expected: str):
    with pytest.raises(UserError) as err:
        PROPAGATORS.parse(spec)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_the_default_flow_depends_on_the_direction():
    assert default_propagation(False) == DEFAULT_PROPAGATION == "flow:dis"
    assert default_propagation(True) == BIDIRECTIONAL_PROPAGATION
    forward = build_propagator(DEFAULT_PROPAGATION).estimator
    offline = build_propagator(BIDIRECTIONAL_PROPAGATION).estimator
    assert (forward.finest_scale, offline.finest_scale) == (2, 1)  # quarter vs half resolution
    assert offline.info() == {**forward.info(), "name": offline.name, "finest_scale": 1}


def test_patch_stride_beyond_patch_size_is_refused():
    with pytest.raises(FlowError, match=r"^DIS patch_stride 9: expected at most patch_size 8"):
        FLOW_ESTIMATORS.build("dis:ultrafast,patch_stride=9")
    for field in ("patch_size", "patch_stride", "refinement_iterations"):
        with pytest.raises(FlowError, match=f"^DIS {field} True: expected an integer"):
            DISFlow("ultrafast", **{field: True})


def test_track_command_takes_dis_options(tmp_path: Path, capsys):
    registry = tmp_path / "datasets.yaml"
    registry.write_text(
        "datasets:\n  tiny:\n    format: synthetic\n    num_clips: 1\n    seed: 3\n"
        "    config: {height: 64, width: 80, num_frames: 6, num_objects: 1}\n"
    )
    base = ["track", "--dataset", "tiny", "--datasets", str(registry), "--no-progress"]
    spec = "flow:dis:ultrafast,finest_scale=1,refinement_iterations=3"
    assert main([*base, "--propagation", spec, "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "track.json").read_text())
    assert record["propagator"]["name"] == spec
    info = record["propagator"]["weights"]
    assert (info["finest_scale"], info["refinement_iterations"], info["patch_size"]) == (1, 3, 8)
    (clip,) = record["clips"].values()
    assert clip["frames"] == 6 and np.isfinite(clip["confidence"]).all()
    # No --propagation: bidirectional (offline) tracking computes DIS at half resolution.
    assert main([*base, "--bidirectional", "--out", str(tmp_path / "bidi")]) == 0
    record = json.loads((tmp_path / "bidi" / "track.json").read_text())
    assert record["parameters"]["propagation"] == BIDIRECTIONAL_PROPAGATION
    assert record["propagator"]["name"] == "flow:dis:ultrafast,finest_scale=1"
    capsys.readouterr()
    bad = [*base, "--propagation", "flow:dis:fast,stride=2", "--out", str(tmp_path / "bad")]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "endobench track: error: --propagation: propagator 'flow:dis:fast,stride=2': method: "
        "flow method "
        "'dis:fast,stride=2': unknown or malformed field 'stride=2'; expected key=value with "
        "keys preset, iterations, finest_scale, patch_size, patch_stride, refinement_iterations "
        "(usage: flow:METHOD)"
    ]
