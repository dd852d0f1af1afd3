"""Class targets: select or merge a dataset's classes into the labels a task trains on.

A target is data in ``datasets.yaml``, e.g. all CholecInstanceSeg tools as one binary object::

    target:
      classes: {instrument: all}          # new id 1 <- every non-background source class
      others: background                  # unlisted source classes become 0 (or 255 = void)

or two merged groups (new ids follow the order written)::

    target:
      classes: {grasper: [grasper], other-tool: [hook, clipper, 4]}

It compiles to a 256-entry lookup table applied to every mask (``lut[mask]``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from endobench.data.clip import VOID_ID


class TargetSpec(BaseModel):
    """New classes (ids 1..K in the order given) and what happens to unlisted source classes."""

    model_config = ConfigDict(extra="forbid")

    classes: dict[str, Literal["all"] | list[str | int]]
    others: Literal["background", "void"] = "background"

    @field_validator("classes")
    @classmethod
    def _not_empty(cls, value: dict) -> dict:
        if not value:
            raise ValueError("at least one target class is needed")
        if len(value) > 254:
            raise ValueError("at most 254 target classes fit in a uint8 label map")
        return value


def identity_lut() -> np.ndarray:
    """The lookup table that leaves every label unchanged (256 uint8 entries)."""
    return np.arange(256, dtype=np.uint8)


def build_label_lut(
    source_classes: dict[int, str], target: TargetSpec | None
) -> tuple[np.ndarray, dict[int, str]]:
    """Compile ``target`` against ``source_classes`` into ``(lut, new_classes)``.

    ``lut`` is a ``(256,)`` uint8 array mapping source ids to target ids; background 0 stays 0
    and void 255 stays 255. Source classes may be named (case-insensitive) or given by id;
    ``"all"`` means every id 1..254. Raises ValueError naming an unknown or doubly used class.
    """
    if target is None:
        return identity_lut(), dict(source_classes)
    by_name = {name.lower(): cid for cid, name in source_classes.items()}
    lut = np.full(256, VOID_ID if target.others == "void" else 0, dtype=np.uint8)
    assigned: dict[int, str] = {}
    new_classes: dict[int, str] = {}
    for new_id, (new_name, sources) in enumerate(target.classes.items(), start=1):
        new_classes[new_id] = new_name
        ids = range(1, VOID_ID) if sources == "all" else [_resolve(s, by_name) for s in sources]
        for cid in ids:
            if cid in assigned and sources != "all":
                raise ValueError(
                    f"target classes: source class {source_classes.get(cid, cid)!r} is listed "
                    f"under both {assigned[cid]!r} and {new_name!r}; expected each source once"
                )
            if cid not in assigned:
                assigned[cid] = new_name
                lut[cid] = new_id
    lut[0] = 0
    lut[VOID_ID] = VOID_ID
    return lut, new_classes


def _resolve(source: str | int, by_name: dict[str, int]) -> int:
    """A source class id from its name or id."""
    if isinstance(source, int):
        if not 1 <= source < VOID_ID:
            raise ValueError(f"target classes: source id {source} must lie in 1..254")
        return source
    key = source.lower()
    if key not in by_name:
        known = ", ".join(sorted(by_name)) or "(none)"
        raise ValueError(f"target classes: unknown source class {source!r}; known: {known}")
    return by_name[key]
