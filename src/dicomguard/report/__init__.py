"""Reports from a scan database: HTML for people, CSV, SARIF and JSON for tools, and diff."""

from __future__ import annotations

from pathlib import Path

FORMATS = ("html", "csv", "sarif", "json", "defectdojo")
#: file name extension of each format
EXTENSIONS = {
    "html": ".html",
    "csv": ".csv",
    "sarif": ".sarif",
    "json": ".json",
    "defectdojo": ".defectdojo.json",
}


def render(db: str | Path, fmt: str) -> str:
    """The report of the scan in ``db`` in one of :data:`FORMATS`."""
    from ..store.read import load_scan

    scan = load_scan(db)
    if fmt == "html":
        from .html import render_html

        return render_html(scan)
    if fmt == "csv":
        from .tabular import render_csv

        return render_csv(scan)
    if fmt == "sarif":
        from .sarif import render_sarif

        return render_sarif(scan)
    if fmt == "defectdojo":
        from .defectdojo import render_defectdojo

        return render_defectdojo(scan)
    if fmt == "json":
        from .tabular import render_json

        return render_json(scan)
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")
