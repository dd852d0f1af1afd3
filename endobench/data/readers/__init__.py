"""Readers, one module per dataset layout on disk, registered in ``endobench.registry.READERS``
under the ``format`` name that ``datasets.yaml`` entries give (``synthetic`` included).

Importing this package registers the built-in formats; a plugin registers its own reader class
with ``@READERS.register("myformat", options=MyOptions)`` (see CONTRIBUTING.md).
"""

from __future__ import annotations

from endobench.data.readers import (  # noqa: F401  (each module registers its format)
    bagls,
    cholecinstanceseg,
    cholecseg8k,
    davis,
    endovis2017,
    folder,
    pairs,
    synthetic,
)
from endobench.data.readers.base import ClipSpec, FrameRef, Reader, ReaderOptions, ScanResult
from endobench.data.readers.synthetic import SYNTHETIC_FORMAT

__all__ = [
    "SYNTHETIC_FORMAT",
    "ClipSpec",
    "FrameRef",
    "Reader",
    "ReaderOptions",
    "ScanResult",
]
