"""The one exception type for a user's mistake, which the CLI turns into a single line.

Raise :class:`UserError` (or a subclass) for anything the user can fix: a bad file, field or
value. The message is one line that names the file / field / value and what was expected. Any
other exception escaping a command is a bug and is shown with its traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class UserError(Exception):
    """A mistake in the user's input; ``str(error)`` is the one line the CLI prints."""


def validation_message(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    """One line for a pydantic error: ``field 'epochs': value 'ten': <what is allowed>; ...``.

    ``names`` renames fields (model field -> the name the user wrote, e.g. a notebook parameter).
    """
    names = names or {}
    parts = []
    for err in exc.errors():
        loc = ".".join(names.get(str(p), str(p)) for p in err["loc"]) or "(all fields)"
        shown = err["type"] not in ("missing", "extra_forbidden") and err["loc"]
        value = f"value {err['input']!r}: " if shown else ""
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        msg = msg.removeprefix("Value error, ")
        parts.append(f"field '{loc}': {value}{msg}")
    return " ".join("; ".join(parts).split())
