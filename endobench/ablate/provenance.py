"""Where a result came from: the code version (package, git commit, uncommitted code changes).

``git_dirty`` means uncommitted changes to *code*: a tracked notebook whose code cells equal
the committed ones (only outputs, execution counts or metadata differ, as after running and
saving it in JupyterLab) does not count.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import endobench
from endobench.ablate.identity import code_cells_sha256


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``{"endobench": version, "git_commit": sha or None, "git_dirty": bool or None}``.

    The commit is read from the checkout the package is imported from (None outside git);
    ``git_dirty`` lists code changes only (see the module docstring).
    """
    repo = Path(endobench.__file__).resolve().parents[1]
    commit = _git(repo, "rev-parse", "HEAD")
    changed = uncommitted_code_changes(repo) if commit else None
    return {
        "endobench": endobench.__version__,
        "git_commit": commit,
        "git_dirty": None if changed is None else bool(changed),
    }


def uncommitted_code_changes(repo: Path) -> list[str] | None:
    """Tracked files of ``repo`` with uncommitted changes, notebooks only if their code changed."""
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    if status is None:
        return None
    changed = []
    for line in status.splitlines():
        name = line[3:].split(" -> ")[-1].strip('"')
        if name.endswith(".ipynb") and line[:2].strip() == "M" and _same_code(repo, name):
            continue
        changed.append(name)
    return changed


def _same_code(repo: Path, name: str) -> bool:
    """Whether notebook ``name`` has the code cells of its committed version."""
    committed = _git(repo, "show", f"HEAD:{name}")
    try:
        return committed is not None and code_cells_sha256(committed) == code_cells_sha256(
            (repo / name).read_text(encoding="utf-8")
        )
    except (OSError, ValueError, KeyError):
        return False


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()
