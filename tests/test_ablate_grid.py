"""Grid files: validation messages, expansion with exclude rules, stable run ids."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from endobench.ablate.grid import (
    GridConfigError,
    canonical_json,
    expand_grid,
    load_grid,
    parse_grid,
    run_id,
)

PARAMS = {
    "backbone": "dinov2_vits14",
    "lr": 1e-3,
    "epochs": 2.0,
    "seed": 0,
    "augment": {"preset": "endoscopic", "p": 0.5},
}


def test_run_id_is_a_literal_hash_of_canonical_json() -> None:
    text = '{"augment":{"p":0.5,"preset":"endoscopic"},"backbone":"dinov2_vits14","epochs":2,"lr":0.001,"seed":0}'
    assert canonical_json(PARAMS) == text
    assert run_id(PARAMS) == hashlib.sha256(text.encode()).hexdigest()[:12] == "3eb6f24509d1"


def test_run_id_ignores_key_order_and_integral_float_spelling() -> None:
    reordered = dict(reversed(list(PARAMS.items())))
    assert run_id(reordered) == run_id(PARAMS)
    assert run_id({**PARAMS, "epochs": 2}) == run_id(PARAMS)
    assert run_id({**PARAMS, "lr": 1e-4}) != run_id(PARAMS)
    assert run_id({**PARAMS, "seed": "0"}) != run_id(PARAMS)  # types matter


def test_run_id_is_stable_across_processes() -> None:
    code = (
        "from endobench.ablate.grid import run_id;"
        "print(run_id({'backbone': 'dinov2_vits14', 'lr': 1e-3, 'epochs': 2.0, 'seed': 0,"
        "'augment': {'preset': 'endoscopic', 'p': 0.5}}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "3eb6f24509d1", out.stderr


def test_run_id_rejects_non_finite_numbers() -> None:
    with pytest.raises(ValueError, match="finite"):
        run_id({"lr": float("nan")})


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A notebook file for grids to point at (its content is irrelevant to parsing)."""
    path = tmp_path_factory.mktemp("nb") / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def _grid(notebook: Path, **extra: object) -> dict:
    return {
        "name": "g",
        "stages": [{"name": "only", "notebook": str(notebook)}],
        "axes": {"backbone": ["a", "b"], "policy": ["first", "every:5", "adaptive"]},
        "fixed": {"epochs": 1},
        **extra,
    }


def test_expansion_order_fixed_values_and_exclude(notebook: Path) -> None:
    grid = parse_grid(
        _grid(notebook, exclude=[{"backbone": "b", "policy": "adaptive"}, {"policy": "every:5"}])
    )
    runs = expand_grid(grid)
    assert [(r["backbone"], r["policy"]) for r in runs] == [
        ("a", "first"),
        ("a", "adaptive"),
        ("b", "first"),
    ]
    assert all(r["epochs"] == 1 for r in runs)


def test_exclude_rule_may_name_fixed_values(notebook: Path) -> None:
    grid = parse_grid(_grid(notebook, exclude=[{"epochs": 1, "backbone": "a"}]))
    assert {r["backbone"] for r in expand_grid(grid)} == {"b"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"axes": {"backbone": "a"}}, r"field 'axes.backbone'.*valid list"),
        ({"axes": {"backbone": []}}, r"axis 'backbone': expected a non-empty list"),
        ({"axes": {"backbone": ["a", "a"]}}, r"expected distinct values"),
        ({"fixed": {"backbone": "a"}}, r"both in 'axes' and 'fixed'"),
        ({"exclude": [{"colour": "red"}]}, r"exclude\[0\].*unknown keys \['colour'\]"),
        ({"exclude": [{"backbone": "c"}]}, r"field 'exclude.0': rule .* matches no run"),
        ({"exclude": [{"epochs": 1}]}, r"every run of the grid is excluded"),
        ({"fixed": {"run_dir": "x"}}, r"'run_dir' is reserved"),
        ({"name": "has space"}, r"field 'name'"),
        ({"colour": 1}, r"field 'colour': Extra inputs are not permitted"),
        (
            {"stages": [{"name": "s", "notebook": "missing.ipynb"}]},
            r"stages.s.notebook.*does not exist",
        ),
    ],
)
def test_invalid_grids_name_file_field_and_expectation(
    notebook: Path, change: dict, message: str
) -> None:
    with pytest.raises(GridConfigError, match=message) as err:
        parse_grid({**_grid(notebook), **change}, source=notebook.parent / "grid.yaml")
    assert str(notebook.parent / "grid.yaml") in str(err.value)


def test_stage_inputs_must_name_an_earlier_stage(notebook: Path) -> None:
    stages = [
        {"name": "a", "notebook": str(notebook), "inputs": {"ckpt": "b/model.pt"}},
        {"name": "b", "notebook": str(notebook)},
    ]
    with pytest.raises(GridConfigError, match=r"stages.a.inputs.ckpt: expected an earlier stage"):
        parse_grid({**_grid(notebook), "stages": stages})


def test_load_grid_reads_yaml_relative_paths_and_scientific_floats(
    tmp_path: Path, notebook: Path
) -> None:
    (tmp_path / "nbs").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "nbs" / "t.ipynb")
    path = tmp_path / "grid.yaml"
    path.write_text(
        "name: y\nstages:\n  - {name: t, notebook: nbs/t.ipynb}\n"
        "axes:\n  lr: [1e-3, 2.5e-4]\nfixed: {epochs: 3}\n"
    )
    grid = load_grid(path)
    assert grid.axes["lr"] == [0.001, 0.00025]
    assert grid.notebook_path(grid.stages[0]) == (tmp_path / "nbs" / "t.ipynb").resolve()


def test_load_grid_errors_for_missing_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(GridConfigError, match="grid file not found"):
        load_grid(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(GridConfigError, match=r"bad.yaml: expected a mapping"):
        load_grid(bad)
