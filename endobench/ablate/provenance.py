"""Where a result came from: code version (package + git commit) and notebook content hash."""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import endobench


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``{"endobench": version, "git_commit": sha or None, "git_dirty": bool or None}``.

    The commit is read from the checkout the package is imported from (None outside git).
    """
    repo = Path(endobench.__file__).resolve().parents[1]
    commit = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "endobench": endobench.__version__,
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
    }


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (notebooks: detects a changed notebook behind old results)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
