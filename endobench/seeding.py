"""Seeds derived from names: every random draw of a run is a pure function of its purpose."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 31-bit seed that is a pure function of ``parts`` (stable across processes and runs).

    ``derive_seed(seed, "init")`` seeds a model's initialisation, ``derive_seed(seed, "shuffle",
    epoch)`` an epoch's order: SHA-256 of the parts joined by ``|``, first 4 bytes little-endian.
    """
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
