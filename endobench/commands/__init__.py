"""Sub-commands of the ``endobench`` CLI, one module each."""
