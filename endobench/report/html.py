"""``report.md`` as one self-contained HTML page: figures and linked files embedded, tables sortable.

The page needs nothing next to it: every image (``<img src="figures/x.png">``) becomes a
``data:`` URI, every link to a file of the sweep folder under :data:`EMBED_LIMIT` bytes
(results.csv, LaTeX tables, PDF figures, tracebacks) becomes a ``data:`` download link, so it
opens in any browser and survives being attached to an e-mail. Clicking a table header sorts
the table by that column (numbers by value, ``mean ± std`` cells by their mean).
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

import mistune

from endobench.io_utils import atomic_write_text

EMBED_LIMIT = 2_000_000  # bytes: larger linked files stay relative links
_ATTR = re.compile(r'(<(?:img|a)\b[^>]*?\s(src|href)=")([^"]*)(")')

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""

# Sort on header click; "0.850 ± 0.050" sorts by 0.850, "–" and text after numbers.
_SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      function key(row) {
        var text = row.cells[col].textContent.trim(), num = parseFloat(text);
        return isNaN(num) ? [1, text] : [0, num];
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x[0] !== y[0]) return x[0] - y[0];
        return (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) * dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def markdown_to_html(text: str) -> str:
    """HTML body of GitHub-style Markdown (tables included)."""
    return str(mistune.create_markdown(plugins=["table", "strikethrough"])(text))


def data_uri(path: Path) -> str:
    """``data:<mime>;base64,...`` of a file (mime from its suffix, else octet-stream)."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def embed_local_files(body: str, base_dir: Path, limit: int = EMBED_LIMIT) -> str:
    """Replace relative ``src`` / ``href`` values naming files under ``base_dir`` by data URIs.

    Links get a ``download`` attribute with the file name; absolute, external and missing
    targets, and files over ``limit`` bytes, are left as they are.
    """
    base_dir = base_dir.resolve()

    def replace(match: re.Match[str]) -> str:
        start, attr, url, end = match.groups()
        target = html.unescape(url)
        if re.match(r"^([a-z][a-z0-9+.-]*:|/|#)", target, re.IGNORECASE):
            return match.group(0)
        path = (base_dir / target).resolve()
        if not path.is_file() or not path.is_relative_to(base_dir) or path.stat().st_size > limit:
            return match.group(0)
        replaced = f"{start}{data_uri(path)}{end}"
        if attr == "href":
            replaced += f' download="{html.escape(path.name)}"'
        return replaced

    return _ATTR.sub(replace, body)


def write_html_report(markdown_path: str | Path) -> Path:
    """Write ``report.html`` next to ``markdown_path`` (a report.md); returns its path."""
    markdown_path = Path(markdown_path)
    text = markdown_path.read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip() if text else "Report"
    body = embed_local_files(markdown_to_html(text), markdown_path.parent)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n<script>{_SCRIPT}</script>\n"
        "</body>\n</html>\n"
    )
    return atomic_write_text(markdown_path.with_suffix(".html"), page)
