"""Errors and warnings of evaluation: a user's mistake in the files or options given to score."""

from __future__ import annotations

from endobench.errors import UserError


class EvaluationError(UserError, ValueError):
    """Ground truth, predictions or options cannot be scored as given; the one-line message
    names the file, folder or option and what was expected."""


class EvaluationWarning(UserWarning):
    """Something was left out of the evaluation (e.g. prediction files or folders that match
    no ground truth); the message is one line naming what and where."""
