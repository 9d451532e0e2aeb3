"""Reports from a scan database: HTML for people, CSV, SARIF and JSON for tools, and diff."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

FORMATS = ("html", "csv", "sarif", "json", "defectdojo", "parquet")
#: file name extension of each format
EXTENSIONS = {
    "html": ".html",
    "csv": ".csv",
    "sarif": ".sarif",
    "json": ".json",
    "defectdojo": ".defectdojo.json",
    "parquet": ".parquet",
}


def render(db: str | Path, fmt: str, *, geoip: Sequence[str | Path] = ()) -> str | bytes:
    """The report of the scan in ``db`` in one of :data:`FORMATS` (parquet: bytes).

    ``geoip``: MaxMind DB files; records get ``country``/``asn``/``as_org`` from them first.
    """
    from ..store.read import load_scan

    scan = load_scan(db)
    if geoip:
        from ..geoip import GeoIP

        with GeoIP(geoip) as geo:
            geo.enrich_all(scan.records)
    if fmt == "parquet":
        from .parquet import render_parquet

        return render_parquet(scan)
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
