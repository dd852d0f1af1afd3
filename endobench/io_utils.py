"""Atomic file writes: write a temporary file next to the target, then rename it into place.

A reader never sees a half-written file: either the old content or the new one. The temporary
file lives in the same directory so the final ``os.replace`` is a rename on one file system.
Files get the mode a plain ``open(path, "w")`` would give (``0666 & ~umask``: 0644 under umask
022), not ``mkstemp``'s private 0600, so colleagues on a shared file system can read results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created); returns the path.

    ``fsync=False`` skips flushing to disk: still never half-written, but a power cut may lose
    the file; right for bulk outputs that are cheap to remake (per-frame PNGs, cache entries).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Leave no temporary file behind whatever went wrong (including KeyboardInterrupt).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return path


def current_umask() -> int:
    """The process umask, read without changing it (``/proc``; else set-and-restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (sorted keys, trailing newline) to ``path`` atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n"
    return atomic_write_text(path, text)


def _json_default(obj: Any) -> Any:
    """Serialise numpy scalars/arrays and paths, which json cannot do on its own."""
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (weights files reach several GiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def unreadable_cause(path: Path, err: BaseException) -> str:
    """Why a torch / safetensors loader failed (``err``) on ``path``: empty, truncated, text ..."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(512)
    detail = " ".join(str(err).split())[:160]
    if size == 0:
        return "the file is empty (0 bytes)"
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            return f"the file is truncated or corrupt ({size} bytes, its zip directory is missing)"
        return f"a torch zip file that cannot be loaded safely ({detail})"
    if head and all(32 <= b < 127 or b in b"\t\n\r" for b in head):
        return f"a text file ({size} bytes), not a torch file"
    return f"not a torch file ({size} bytes; {detail})"
