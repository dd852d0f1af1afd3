"""Errors and problem records raised or collected while reading datasets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from endobench.errors import UserError


class DataError(UserError, ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file.

    ``path`` is the offending file (or folder) and ``problem`` says what was wrong and, where
    useful, what was expected.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset: the file concerned and what is wrong with it."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    @classmethod
    def from_error(cls, error: DataError) -> Problem:
        return cls(error.path, error.problem)
