"""Packaging habits: one version source, package data that exists, cited docs that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import read_configuration

import endobench
from endobench.cli import main

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "endobench"


@pytest.fixture(scope="module")
def config() -> dict:
    return read_configuration(REPO / "pyproject.toml", expand=True)


def test_version_is_written_once_and_setuptools_reads_it(config: dict) -> None:
    assert config["project"]["dynamic"] == ["version"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "endobench.__version__"}
    # setuptools resolves the attribute statically: the built distribution's version is ours.
    assert config["project"]["version"] == endobench.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", endobench.__version__)


def test_cli_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"{endobench.__version__}\n"


def test_version_answers_without_importing_the_commands() -> None:
    code = "import sys; from endobench.cli import main; main(['--version']); print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    version, modules = out.stdout.splitlines()
    assert version == endobench.__version__
    assert "'torch'" not in modules and "endobench.commands" not in modules


def test_every_package_data_pattern_ships_a_file(config: dict) -> None:
    patterns = config["tool"]["setuptools"]["package-data"]["endobench"]
    assert "py.typed" in patterns
    for pattern in patterns:
        assert list(PACKAGE.glob(pattern)), f"package-data pattern {pattern!r} matches no file"


def _cited_docs() -> dict[str, set[str]]:
    """``docs/...`` files cited by the library's sources, README and CONTRIBUTING -> citing files."""
    cited: dict[str, set[str]] = {}
    texts = [*PACKAGE.rglob("*.py"), *(REPO / n for n in ("README.md", "CONTRIBUTING.md"))]
    for path in texts:
        if not path.is_file():
            continue
        # not ../shared/docs/... (another folder), only the repository's own docs/
        for ref in re.findall(r"(?<![\w./])docs/[\w./-]*\w", path.read_text(encoding="utf-8")):
            cited.setdefault(ref, set()).add(str(path.relative_to(REPO)))
    return cited


def test_every_cited_doc_exists() -> None:
    cited = _cited_docs()
    assert "docs/METRICS.md" in cited  # the metric modules cite their definitions
    missing = {ref: sorted(by) for ref, by in cited.items() if not (REPO / ref).exists()}
    assert not missing, missing
