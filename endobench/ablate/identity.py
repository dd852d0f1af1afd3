"""What a stage's result depends on: its identity, recorded in run.json and checked before reuse.

A finished stage is reused only while its identity is unchanged. The identity of a stage task is
a JSON dict with:

- ``params``: the grid parameters the notebook receives, and its inputs (files of upstream
  stages) relative to the sweep folder, so a moved ``results/`` keeps every identity;
- ``notebook``: sha256 of the notebook's code cells (their source only: outputs, execution
  counts and metadata are left out, so running and saving a notebook in JupyterLab changes
  nothing, while editing a line of code does);
- ``datasets``: for the dataset the stage reads (its ``dataset`` parameter, else the notebook's
  default, from the registry file named by ``datasets`` or found by the usual lookup): the
  registry file, the resolved entry (every field, the root made absolute with environment
  variables expanded) and a data fingerprint, the sha256 of the sorted list of files under the
  root with their sizes and modification times (computed once per plan; no file is read);
- ``weights``: the backbone weights provenance: sha256 of a local ``weights`` file, or of the
  cached Hugging Face file for ``pretrained: true`` (``null`` while not cached); nothing for
  random initialisation, whose seed is a parameter;
- ``endobench``: the package version;
- ``upstream``: the identity digests of the earlier stages of the run.

The run folder's name is still the hash of the run's parameters (``run_id``), so a changed input
re-executes the run in place, and a plain rerun after changing, say, one dataset's entry in
``datasets.yaml`` re-executes exactly the runs that read that dataset. Besides the identity,
run.json records the sha256 of every output file, and a downstream stage the digest of the
upstream outputs it consumed; ``endobench.ablate.runner.reuse_problem`` checks all three.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import endobench
from endobench.ablate.papermill_import import papermill
from endobench.io_utils import sha256_file

DATASET_PARAM, REGISTRY_PARAM = "dataset", "datasets"
WEIGHTS_PARAM, PRETRAINED_PARAM, BACKBONE_PARAM = "weights", "pretrained", "backbone"


def digest(obj: Any) -> str:
    """sha256 of ``obj``'s canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def notebook_code_sha256(path: str | Path) -> str:
    """sha256 of the source of a notebook's code cells, in order (nothing else of the file)."""
    return code_cells_sha256(Path(path).read_text(encoding="utf-8"))


def code_cells_sha256(notebook_json: str) -> str:
    """sha256 of the code cells' source in a notebook's JSON text."""
    cells = json.loads(notebook_json).get("cells", [])
    return digest(
        [
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells
            if c.get("cell_type") == "code"
        ]
    )


def notebook_defaults(path: str | Path) -> dict[str, Any]:
    """Literal default values of a notebook's parameters cell (non-literals are left out)."""
    pm = papermill()  # imported on first use: slow to import

    out = {}
    for name, info in pm.inspect_notebook(str(path)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError, TypeError):
            continue
    return out


def data_fingerprint(root: Path) -> str:
    """sha256 of ``(relative path, size, mtime_ns)`` of every file under ``root``, sorted."""
    rows = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            try:
                st = path.stat()
            except OSError:
                continue
            rows.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return digest(rows)


@dataclass
class IdentityResolver:
    """Computes stage identities for one plan, caching registries, fingerprints and hashes."""

    _registries: dict[Any, Any] = field(default_factory=dict)
    _fingerprints: dict[Path, str] = field(default_factory=dict)
    _files: dict[tuple[str, int, int], str] = field(default_factory=dict)
    _notebooks: dict[Path, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def notebook(self, path: Path) -> tuple[str, dict[str, Any]]:
        """(code sha256, literal parameter defaults) of a notebook."""
        if path not in self._notebooks:
            self._notebooks[path] = (notebook_code_sha256(path), notebook_defaults(path))
        return self._notebooks[path]

    def file_sha256(self, path: Path) -> str:
        """sha256 of a file, cached by path, size and mtime."""
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in self._files:
            self._files[key] = sha256_file(path)
        return self._files[key]

    def dataset(self, name: str, registry_file: str | None) -> dict[str, Any]:
        """Registry file, resolved entry and data fingerprint of dataset ``name``."""
        from endobench.data.registry import load_registry

        if registry_file not in self._registries:
            self._registries[registry_file] = load_registry(registry_file)
        registry = self._registries[registry_file]
        entry = registry.entry(name)
        record: dict[str, Any] = {
            "registry": registry.source,
            "entry": entry.model_dump(mode="json"),
        }
        root = registry.root_of(name, entry)
        if root is not None:
            record["entry"]["root"] = str(root)
            if root not in self._fingerprints:
                self._fingerprints[root] = data_fingerprint(root) if root.is_dir() else "missing"
            record["data"] = self._fingerprints[root]
        return record

    def weights(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """Provenance of the backbone weights a stage loads (None when it loads none)."""
        weights = params.get(WEIGHTS_PARAM)
        if weights:
            path = Path(str(weights)).expanduser()
            sha = self.file_sha256(path) if path.is_file() else "missing"
            return {"file": str(path.resolve()), "sha256": sha}
        if params.get(PRETRAINED_PARAM) is True and params.get(BACKBONE_PARAM):
            hub_id, hub_sha = self._hub_weights(params)
            return {"backbone": str(params[BACKBONE_PARAM]), "hub": hub_id, "sha256": hub_sha}
        return None

    def _hub_weights(self, params: dict[str, Any]) -> tuple[str | None, str | None]:
        """(Hub repo, sha256 of its cached weights file); None for what is unknown / not cached."""
        try:
            import timm
            from huggingface_hub import try_to_load_from_cache

            from endobench.models.weights import HUB_FILENAMES
            from endobench.registry import BACKBONES, RegistryError

            spec = BACKBONES.get(str(params[BACKBONE_PARAM])).obj
            cfg = timm.models.get_pretrained_cfg(spec.timm_name)
        except (KeyError, RegistryError, AttributeError, ImportError, RuntimeError):
            return None, None
        hub_id = cfg.hf_hub_id if cfg is not None else None
        if hub_id is None:
            return None, None
        for filename in HUB_FILENAMES:
            cached = try_to_load_from_cache(hub_id, filename)
            if isinstance(cached, str):
                return hub_id, self.file_sha256(Path(cached))
        return hub_id, None

    def stage(
        self,
        notebook: Path,
        params: dict[str, Any],
        upstream: list[str],
    ) -> dict[str, Any]:
        """The identity dict of a stage task (see the module docstring)."""
        code, defaults = self.notebook(notebook)
        effective = {**defaults, **params}
        identity: dict[str, Any] = {
            "params": params,
            "notebook": code,
            "endobench": endobench.__version__,
            "upstream": upstream,
        }
        name = effective.get(DATASET_PARAM)
        if isinstance(name, str) and name:
            identity["datasets"] = {name: self.dataset(name, effective.get(REGISTRY_PARAM))}
        weights = self.weights(effective) if BACKBONE_PARAM in effective else None
        if weights is not None:
            identity["weights"] = weights
        return identity


def changed_parts(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Which parts of an identity differ, in words (empty when they are the same)."""
    if not recorded:
        return ["no recorded identity (run by an older endobench)"]
    words = {
        "params": "parameters",
        "notebook": "notebook code",
        "endobench": "endobench version",
        "upstream": "upstream stage",
        "weights": "backbone weights",
    }
    out = []
    for key in sorted(set(recorded) | set(current)):
        if recorded.get(key) == current.get(key):
            continue
        if key == "datasets":
            for name in sorted(set(recorded.get(key) or {}) | set(current.get(key) or {})):
                old = (recorded.get(key) or {}).get(name) or {}
                new = (current.get(key) or {}).get(name) or {}
                if old.get("entry") != new.get("entry") or old.get("registry") != new.get(
                    "registry"
                ):
                    out.append(f"registry entry of dataset {name!r}")
                elif old.get("data") != new.get("data"):
                    out.append(f"data files of dataset {name!r}")
        else:
            out.append(words.get(key, key))
    return out
