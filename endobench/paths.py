"""Where the repository is, so notebooks work from any folder they are opened or copied to.

A notebook's path parameters (``config``, ``results``, ``run_dir``) are relative to the
repository root, not to the notebook's working directory: ``repo_path("configs/smoke.yaml")``
means the same file whether the kernel runs in ``notebooks/``, at the root or in a copy elsewhere.
The root is the nearest folder at or above the working directory whose ``pyproject.toml``
declares the ``endobench`` project, else the checkout the imported package lives in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from endobench.errors import UserError

_PROJECT_NAME = re.compile(r'^name\s*=\s*"endobench"\s*$', re.MULTILINE)


class RepoNotFoundError(UserError):
    """No endobench checkout above the working directory nor around the installed package."""


def _is_repo(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    return pyproject.is_file() and bool(_PROJECT_NAME.search(pyproject.read_text("utf-8")))


def repo_root(start: str | Path | None = None) -> Path:
    """The endobench checkout holding ``start`` (default: the working directory), absolute.

    Falls back to the checkout of the imported ``endobench`` package (an editable install);
    raises :class:`RepoNotFoundError` when neither is one.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_repo(folder):
            return folder
    package_checkout = Path(__file__).resolve().parents[1]
    if _is_repo(package_checkout):
        return package_checkout
    raise RepoNotFoundError(
        f"no endobench repository (a pyproject.toml naming endobench) at or above {here} nor at "
        f"{package_checkout}; pass absolute paths instead"
    )


def repo_path(path: str | Path, root: str | Path | None = None) -> Path:
    """``path`` made absolute: kept when absolute or ``~``-based, else under ``root`` (the repo)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return Path(root).resolve() / path if root is not None else repo_root() / path


def existing_file(path: str | Path, what: str, root: str | Path | None = None) -> Path:
    """``repo_path(path)``, checked to be a file; the error names both paths and the cwd."""
    resolved = repo_path(path, root)
    if not resolved.is_file():
        raise UserError(
            f"{what} not found: {path!s} resolved to {resolved} (relative paths are relative to "
            f"the repository root; working directory: {os.getcwd()})"
        )
    return resolved
