"""Data: Clip / ImageSample, the datasets.yaml registry, readers per layout, synthetic video,
writing the DAVIS layout."""

from endobench.data.clip import VOID_ID, Clip, ImageSample
from endobench.data.dataset import Dataset
from endobench.data.davis_layout import DavisClipFolders, write_davis_clip
from endobench.data.errors import DataError, Problem
from endobench.data.label_png import davis_palette, read_label_png, write_palette_png
from endobench.data.registry import (
    DatasetEntry,
    Registry,
    RegistryError,
    find_registry_path,
    load_registry,
    open_dataset,
)
from endobench.data.targets import TargetSpec, build_label_lut

__all__ = [
    "VOID_ID",
    "Clip",
    "DataError",
    "Dataset",
    "DavisClipFolders",
    "DatasetEntry",
    "ImageSample",
    "Problem",
    "Registry",
    "RegistryError",
    "TargetSpec",
    "build_label_lut",
    "davis_palette",
    "find_registry_path",
    "load_registry",
    "open_dataset",
    "read_label_png",
    "write_davis_clip",
    "write_palette_png",
]
