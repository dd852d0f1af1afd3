"""Repository root and path resolution for notebooks opened from any folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from endobench.errors import UserError
from endobench.paths import existing_file, repo_path, repo_root

REPO = Path(__file__).resolve().parents[1]


def _checkout(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "endobench"\nversion = "0"\n')
    return root


def test_repo_root_is_found_above_the_working_directory(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "copy")
    assert repo_root(root / "notebooks") == root.resolve()
    assert repo_root(root) == root.resolve()


def test_other_projects_fall_back_to_the_package_checkout(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert repo_root(tmp_path) == REPO  # the checkout this endobench is imported from


def test_repo_path_keeps_absolute_and_anchors_relative(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "copy")
    assert repo_path("/data/x.yaml", root) == Path("/data/x.yaml")
    assert repo_path("configs/smoke.yaml", root) == root.resolve() / "configs" / "smoke.yaml"
    assert repo_path("~/a").is_absolute()


def test_missing_file_error_names_resolved_path_and_cwd(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "copy")
    with pytest.raises(UserError) as caught:
        existing_file("configs/nope.yaml", "grid file", root)
    message = str(caught.value)
    assert "\n" not in message
    assert (
        f"grid file not found: configs/nope.yaml resolved to {root.resolve()}/configs/nope.yaml"
        in message
    )
    assert f"working directory: {os.getcwd()}" in message
    (root / "configs").mkdir()
    (root / "configs" / "ok.yaml").write_text("name: ok\n")
    assert existing_file("configs/ok.yaml", "grid file", root) == root.resolve() / "configs/ok.yaml"
