"""The HTML report in real headless chromium: no requests, no console errors, numbers visible."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest

from dicomguard.cli import main

from . import chromium
from .conftest import db_figures


@pytest.fixture(scope="module")
def report(scan_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    assert main(["report", str(scan_db), "--format", "html", "-o", str(out)]) == 0
    return out


def test_file_references_nothing_outside(report: Path) -> None:
    html = report.read_text()
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", html, re.I)
    assert "default-src 'none'" in html  # the CSP: even a missed reference could not load


def _png_is_not_blank(png: bytes) -> bool:
    """Decompress the image data; a blank page's filtered scanlines hold a handful of values."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw)) > 64


def test_opens_offline_without_errors_and_shows_the_database_numbers(
    report: Path, scan_db: Path, tmp_path: Path
) -> None:
    chromium.need()
    fig = db_figures(scan_db)
    assert fig["dicom"] >= 5 and fig["patients"] > 0  # the lab was really scanned
    with chromium.Page(1400, 2000) as page:
        page.open(report.as_uri())
        assert page.requested_urls() == [report.as_uri()], "the page fetched something"
        assert page.console_errors() == []
        shown = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.cards .num')].map("
            "e => { const r = e.getBoundingClientRect();"
            " return [e.id, {text: e.textContent, top: r.top, h: r.height}]; }))"
        )
        png = page.screenshot()
        (tmp_path / "report.png").write_bytes(png)

        def num(key: str) -> int:
            return int(re.sub(r"[^0-9]", "", shown[key]["text"]))

        # one lab server per address, no honeypot: per-IP and per-port figures coincide
        assert num("p-probed") == fig["probed"]
        assert num("p-dicom") == fig["dicom"] == num("h-servers")
        assert num("h-patients") == fig["patients"]
        assert num("h-studies") == fig["studies"]
        for key in ("h-servers", "h-leaking", "h-patients", "h-studies", "p-probed"):
            item = shown[key]  # rendered, inside the 1400x2000 screenshot
            assert item["h"] > 0 and 0 <= item["top"] < 2000
        assert _png_is_not_blank(png)

        # the endpoint table is drawn by the page's script, one row per DICOM endpoint
        rows = page.evaluate("document.querySelectorAll('#ep-table tbody tr.row').length")
        assert rows == fig["dicom"]
        # it sorts: the patients heading once gives the largest count first
        first = page.evaluate(
            "(() => { document.querySelector('#ep-table th[data-sort=\"10\"]').click();"
            " return document.querySelector('#ep-table tbody tr').cells[8].textContent; })()"
        )
        assert int(re.sub(r"[^0-9]", "", first)) == max(
            int(re.sub(r"[^0-9]", "", c) or 0)
            for c in page.evaluate(
                "[...document.querySelectorAll('#ep-table tbody tr.row')]"
                ".map(r => r.cells[8].textContent)"
            )
        )


def test_findings_link_to_their_remediation_and_filter_the_table(report: Path) -> None:
    chromium.need()
    with chromium.Page(1400, 1000) as page:
        page.open(report.as_uri())
        links = page.evaluate(
            "[...document.querySelectorAll('#ep-table a.fid')].map(a => a.getAttribute('href'))"
        )
        assert links and all(h.startswith("#fix-DG-") for h in links)
        targets = page.evaluate(
            "[...new Set([...document.querySelectorAll('a.fid')].map(a => a.hash))]"
            ".map(h => [h, !!document.getElementById(h.slice(1)),"
            " (document.getElementById(h.slice(1)) || {}).textContent || ''])"
        )
        for href, exists, text in targets:  # every link lands on a row with the fix
            assert exists, href
            assert "DG-" in text and len(text) > 60, href
        # a finding's "list all" filters the endpoint table to the endpoints that have it
        counts = page.evaluate(
            "(() => { const a = document.querySelector('#findings-table a[data-show-finding]');"
            " a.click(); const fid = a.dataset.showFinding;"
            " const rows = [...document.querySelectorAll('#ep-table tbody tr.row')];"
            " return [a.textContent, rows.length,"
            " rows.every(r => [...r.querySelectorAll('a.fid')].some(x => x.textContent === fid))];"
            " })()"
        )
        assert int(counts[0]) == counts[1] and counts[2]
        # a row opens its details on click
        detail = page.evaluate(
            "(() => { document.querySelector('#ep-table tbody tr.row').click();"
            " return document.querySelector('#ep-table tr.detail').textContent; })()"
        )
        assert "implementation class UID" in detail


def test_detection_works_on_a_page_that_does_fetch(report: Path, tmp_path: Path) -> None:
    """Negative control: the same page plus a loopback image must be caught by both checks."""
    chromium.need()
    bad = tmp_path / "bad.html"
    html = report.read_text().replace("<main>", "<main><img src='http://127.0.0.1:9/x.png'>", 1)
    bad.write_text(html)
    with chromium.Page() as page:
        page.open(bad.as_uri())
        assert page.console_errors(), "a CSP-blocked fetch must show up as a console error"
