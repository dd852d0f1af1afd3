"""Notebooks 01 and 04 in a real JupyterLab, driven by headless Chromium: Run All, no errors,
01's frame slider changes the frame, every figure and link of 04's report loads, and the
self-contained report.html shows its figures and sorts its tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from .conftest import Lab, screenshot

RUN_TIMEOUT_MS = 90_000

# All code cells have run: every input prompt shows a number, none shows "*" (running / queued).
_ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


def _run_all(page, lab: Lab, notebook: str) -> None:
    page.goto(lab.tree(notebook))
    page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for(timeout=60_000)
    # The kernel starts by itself, or JupyterLab asks which one (its default is python3).
    idle = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$"))
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    for _ in range(600):
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        if idle.count():
            break
        page.wait_for_timeout(100)
    else:
        pytest.fail(f"{notebook}: the kernel did not become idle in 60 s")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    try:
        page.wait_for_function(_ALL_RAN, timeout=RUN_TIMEOUT_MS)
    except Exception:
        screenshot(page, "failed_run_all")
        prompts = page.locator(
            ".jp-NotebookPanel:visible .jp-CodeCell .jp-InputArea-prompt"
        ).all_inner_texts()
        pytest.fail(f"{notebook}: cells did not all run in time; prompts {prompts}")


def _saved_errors(page, lab: Lab, notebook: str) -> list[str]:
    """Save from the browser (Ctrl+S) and return the error outputs the saved file holds."""
    path = lab.root / notebook
    page.locator(".jp-NotebookPanel:visible .jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    page.wait_for_function(  # the tab is no longer marked as modified: the server has the file
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=30_000,
    )
    nb = nbformat.read(path, as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "nothing was saved"
    return [
        f"{o.ename}: {o.evalue}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]


def test_explore_notebook_runs_and_its_slider_changes_the_frame(page, lab: Lab) -> None:
    _run_all(page, lab, "notebooks/01_explore_data.ipynb")
    frame = page.locator(".widget-interact .jp-OutputArea-output img").first
    frame.wait_for(timeout=30_000)
    first_src = frame.get_attribute("src")
    width = frame.evaluate("img => img.naturalWidth")
    assert width == 640  # the slider frame is shown large (labelled_view), legend underneath
    screenshot(page, "01_slider_t0", frame)
    handle = page.locator(".widget-interact .noUi-handle").first
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    page.wait_for_function(
        "src => { const img = document.querySelector('.widget-interact .jp-OutputArea-output img');"
        " return img && img.getAttribute('src') !== src; }",
        arg=first_src,
        timeout=30_000,
    )
    assert page.locator(".widget-interact .widget-readout").first.inner_text().strip() == "5"
    screenshot(page, "01_slider_t5", page.locator(".widget-interact").first)
    screenshot(page, "01_strip", page.locator(".jp-OutputArea-output img").nth(1))
    assert _saved_errors(page, lab, "notebooks/01_explore_data.ipynb") == []
    # run_dir is relative to the repository root, and the served copy is its own root
    assert (lab.root / "results" / "notebooks" / "01_explore_data" / "summary.json").is_file()


def test_report_notebook_shows_every_figure_and_link(page, lab: Lab) -> None:
    _run_all(page, lab, "notebooks/04_report.ipynb")
    report = page.locator(".jp-RenderedMarkdown", has=page.locator("h1", has_text="Report: smoke"))
    report.wait_for(timeout=30_000)
    images = report.locator("img")
    page.wait_for_function(
        "el => [...el.querySelectorAll('img')].every(i => i.complete)",
        arg=report.element_handle(),
        timeout=30_000,
    )
    sizes = images.evaluate_all("imgs => imgs.map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(sizes) == 4, sizes  # cost/accuracy, Dice per augmentation, stability, strips
    assert all(width > 100 for _, width in sizes), sizes
    hrefs = report.locator("a").evaluate_all("links => links.map(a => a.href)")
    local = [h for h in hrefs if h.startswith(lab.url)]
    assert len(local) >= 6, hrefs  # results.csv, 2 LaTeX tables, 3 PDFs
    for href in local:
        response = page.request.get(href)
        assert response.status == 200, href
    assert not re.findall(r"\b404 GET /files/\S*", lab.server_log())
    panel = page.locator(".jp-NotebookPanel:visible")  # 01 may still be open in another tab
    table = panel.locator(".jp-RenderedHTMLCommon table").first  # results_view
    headers = table.locator("thead th").all_inner_texts()
    assert [h.strip() for h in headers if h.strip()][:4] == ["status", "policy", "J&F", "J"]
    screenshot(page, "04_results_view", table)
    screenshot(page, "04_report", report)
    assert _saved_errors(page, lab, "notebooks/04_report.ipynb") == []


def test_report_html_is_self_contained(page, lab: Lab, tmp_path: Path) -> None:
    source = lab.root / "results" / "smoke" / "report.html"
    if not source.is_file():
        pytest.fail(
            "report.html missing: test_report_notebook_shows_every_figure_and_link writes it"
        )
    alone = tmp_path / "mailed" / "report.html"  # nothing next to it, as an e-mail attachment
    alone.parent.mkdir()
    alone.write_bytes(source.read_bytes())
    page.goto(alone.as_uri())
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    widths = page.evaluate("() => [...document.images].map(i => i.naturalWidth)")
    assert len(widths) == 4 and min(widths) > 100, widths
    table = page.locator("table").first
    column = "() => [...document.querySelector('table').tBodies[0].rows].map(r => r.cells[1].textContent)"
    assert page.evaluate(column) == ["0.612", "0.874"]  # J&F of policies first, all
    table.locator("th", has_text="J&F").click()  # ascending
    table.locator("th", has_text="J&F").click()  # descending
    assert page.evaluate(column) == ["0.874", "0.612"]
    screenshot(page, "report_html", page)
