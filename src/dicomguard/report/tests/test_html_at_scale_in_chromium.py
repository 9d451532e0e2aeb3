"""The HTML report of a 100,000-endpoint survey opens in chromium with a bounded DOM.

A generated database (synthetic.make_db: every kind of endpoint, geoip fields) is rendered
once. The page must open without errors or requests, keep its DOM small whatever the number of
endpoints (one page of the endpoint table, bounded act-first and per-finding lists), and still
reach every endpoint through paging and filters. How long rendering and loading take is
measured in bench/bench_report.py, not asserted here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dicomguard.report.html import ACT_FIRST, PAGE_SIZE, render_html
from dicomguard.report.stats import aggregate
from dicomguard.store.read import load_scan

from . import chromium
from .synthetic import make_db

N = 100_000
#: elements on the page, whatever N is (measured: about 4,000)
MAX_ELEMENTS = 8_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    chromium.need()
    db = make_db(tmp_path_factory.mktemp("big") / "big.db", N, geo=True)
    scan = load_scan(db)
    out = db.with_suffix(".html")
    out.write_text(render_html(scan), encoding="utf-8")
    return out, aggregate(scan)


def test_large_report_opens_with_a_bounded_dom(big: tuple[Path, dict]) -> None:
    html, data = big
    services = data["endpoints"]["dicom_services"] + data["endpoints"]["web_services"]
    assert html.stat().st_size < 400 * N  # about 270 bytes an endpoint
    with chromium.Page(1400, 2400) as page:
        page.open(html.as_uri())
        assert page.console_errors() == []
        assert page.requested_urls() == [html.as_uri()]
        assert page.evaluate("document.getElementsByTagName('*').length") < MAX_ELEMENTS
        assert page.evaluate("document.querySelectorAll('#ep-table tbody tr').length") == PAGE_SIZE
        assert page.evaluate("document.querySelectorAll('#act-first-table tbody tr').length") == (
            ACT_FIRST
        )
        assert page.evaluate("document.getElementById('h-servers').textContent") == (
            f"{data['headline']['servers']:,}"
        )
        pages = math.ceil(services / PAGE_SIZE)
        assert page.evaluate("document.getElementById('ep-page').textContent") == (
            f"page 1 of {pages}"
        )
        # every endpoint is reachable: the last page, and a filter down to one finding
        last = page.evaluate(
            f"(() => {{ for (let i = 1; i < {pages}; i++)"
            " document.getElementById('ep-next').click();"
            " return [document.getElementById('ep-page').textContent,"
            " document.querySelectorAll('#ep-table tbody tr').length]; })()"
        )
        assert last == [f"page {pages} of {pages}", services - (pages - 1) * PAGE_SIZE]
        web = next(f["endpoints"] for f in data["findings"] if f["id"] == "DG-030")
        shown = page.evaluate(
            "(() => { window.dicomguardReport.showFinding('DG-030');"
            " return window.dicomguardReport.view().length; })()"
        )
        assert shown == web
        # a row's detail and the host's other ports come from the same page, no request
        page.evaluate("document.querySelector('#ep-table tbody tr.row').click()")
        assert page.evaluate("document.querySelectorAll('#ep-table tr.detail').length") == 1
        assert page.requested_urls() == [html.as_uri()]
        assert page.evaluate("document.getElementsByTagName('*').length") < MAX_ELEMENTS
