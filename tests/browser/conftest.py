"""A real JupyterLab on 127.0.0.1 (random free port, random token) serving a temporary copy of
the repository's notebooks and configs, and Debian's Chromium driven headless by Playwright.

Nothing is written into the repository: the served root is a temp folder with its own
``pyproject.toml`` (so ``endobench.paths.repo_root`` finds it) and a finished sweep of
``configs/smoke.yaml`` made by hand (:func:`build_smoke_sweep`), so notebook 04 reports without
running notebooks 02 and 03. Chromium comes from ``apt-get install -y chromium`` (``.ci/run``
installs it); ``ENDOBENCH_CHROMIUM`` names another binary. ``ENDOBENCH_SCREENSHOTS=DIR`` keeps
screenshots of each page.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from endobench.ablate.run_files import write_run_outputs, write_status
from endobench.data import open_dataset
from endobench.viz import comparison_sheet

REPO = Path(__file__).resolve().parents[2]
POLICIES = {"first": (0.612, 12.5), "all": (0.874, 100.0)}  # J&F, keyframes per 100 frames


def chromium_path() -> str:
    path = os.environ.get("ENDOBENCH_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium not found: apt-get install -y chromium (or set ENDOBENCH_CHROMIUM)")
    return path


def build_smoke_sweep(grid_dir: Path) -> None:
    """A finished two-run sweep of configs/smoke.yaml: one shared training, two policies.

    Strips are real synthetic frames (ground truth above a copy of it shifted by 4 pixels).
    """
    clip = open_dataset("synthetic", overrides={"num_clips": 1, "num_frames": 4}).clips()[0]
    frames = [clip.frame(t) for t in range(len(clip))]
    truth = [clip.mask(t) for t in range(len(clip))]
    predicted = [np.roll(m, 4, axis=1) for m in truth]
    strip = comparison_sheet(frames, truth, predicted, clip.classes, tile_width=160)
    weights = {"name": "vit_small_patch14_dinov2.lvd142m", "source": "random-init",
               "sha256": "random-init"}  # fmt: skip
    train_dir = grid_dir / "checkpoints" / "t0"
    write_run_outputs(train_dir, pd.DataFrame({"epoch": [1]}),
                      {"dice": 0.7012, "iou": 0.5401, "weights": weights})  # fmt: skip
    write_status(train_dir, "done")
    runs = []
    for policy, (jf, kf) in POLICIES.items():
        run_id = f"r{policy}"
        params = {"policy": policy, "backbone": "dinov2_vits14", "augmentation": "basic"}
        runs.append({"run_id": run_id, "params": params,
                     "stage_ids": {"train": "t0", "track": run_id}})  # fmt: skip
        run_dir = grid_dir / "runs" / run_id
        summary = {"J&F-Mean": jf, "J-Mean": jf - 0.02, "F-Mean": jf + 0.02, "T-Mean": 0.31,
                   "keyframes_per_100": kf, "seconds_per_frame": 0.046, "weights": weights}  # fmt: skip
        write_run_outputs(run_dir, pd.DataFrame({"frame": [0]}), summary, {"qualitative": strip})
        code = {"endobench": "0.1.0", "git_commit": "0123456789abcdef", "git_dirty": False}
        (run_dir / "run.json").write_text(json.dumps({"code": code, "seconds": 2.0}))
        write_status(run_dir, "done")
    stages = [
        {"name": "train", "notebook": "02_train_segmentation.ipynb", "dir": "checkpoints",
         "params": ["backbone", "augmentation"]},
        {"name": "track", "notebook": "03_propagate_track.ipynb", "dir": "runs",
         "params": ["policy"]},
    ]  # fmt: skip
    plan = {"grid": "smoke", "axes": {"policy": list(POLICIES)}, "fixed": {"backbone": "dinov2_vits14"},
            "stages": stages, "runs": runs}  # fmt: skip
    (grid_dir / "plan.json").write_text(json.dumps(plan))


def _set_parameter(path: Path, name: str, value: str) -> None:
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = [f"{name} = {value}" if line.startswith(f"{name} = ") else line
             for line in cell.source.splitlines()]  # fmt: skip
    cell.source = "\n".join(lines)
    nbformat.write(nb, path)


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lab") / "endobench"
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copy(REPO / "pyproject.toml", root)
    build_smoke_sweep(root / "results" / "smoke")
    _set_parameter(root / "notebooks" / "04_report.ipynb", "execute", "False")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path
    log: Path

    def tree(self, path: str) -> str:
        """URL opening ``path`` alone (``reset``: no tabs restored from an earlier page)."""
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def lab(lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("jupyter-home")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    # Every cell in the DOM (no windowing), no news or update pop-ups over the notebook.
    settings = {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        path = home / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    log = home / "server.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lab_root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield Lab(url, token, lab_root, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: object, name: str, target: object | None = None) -> None:
    """Screenshot of ``target`` (a locator; default the whole page) into
    ``$ENDOBENCH_SCREENSHOTS/NAME.png`` when that variable is set."""
    folder = os.environ.get("ENDOBENCH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = str(Path(folder) / f"{name}.png")
        (target or page).screenshot(path=path, **({} if target else {"full_page": True}))
