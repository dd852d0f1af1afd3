"""Readers, one module per dataset layout on disk, keyed by the registry's ``format`` name."""

from __future__ import annotations

from endobench.data.readers.bagls import BaglsReader
from endobench.data.readers.base import ClipSpec, FrameRef, Reader, ReaderOptions, ScanResult
from endobench.data.readers.cholecinstanceseg import CholecInstanceSegReader
from endobench.data.readers.cholecseg8k import CholecSeg8kReader
from endobench.data.readers.davis import DavisReader
from endobench.data.readers.endovis2017 import EndoVis2017Reader
from endobench.data.readers.folder import FolderReader
from endobench.data.readers.pairs import CvcClinicDbReader, KvasirReader, PairsReader

# Format name -> reader class. "synthetic" has no files and is handled by the registry.
READERS: dict[str, type[Reader]] = {
    cls.format: cls
    for cls in (
        PairsReader,
        KvasirReader,
        CvcClinicDbReader,
        DavisReader,
        CholecSeg8kReader,
        CholecInstanceSegReader,
        EndoVis2017Reader,
        BaglsReader,
        FolderReader,
    )
}
SYNTHETIC_FORMAT = "synthetic"
FORMATS: tuple[str, ...] = (*sorted(READERS), SYNTHETIC_FORMAT)

__all__ = [
    "FORMATS",
    "READERS",
    "SYNTHETIC_FORMAT",
    "ClipSpec",
    "FrameRef",
    "Reader",
    "ReaderOptions",
    "ScanResult",
]
