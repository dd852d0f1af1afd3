"""The one exception type for a user's mistake, which the CLI turns into a single line.

Raise :class:`UserError` (or a subclass) for anything the user can fix: a bad file, field or
value. The message is one line that names the file / field / value and what was expected. Any
other exception escaping a command is a bug and is shown with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; ``str(error)`` is the one line the CLI prints."""
