"""Markup in every string a scanned server controls stays text in real headless chromium.

AE titles, version names, implementation UIDs, HTTP banners, Orthanc names, QIDO paths,
certificate fields, reject and error texts, finding details, modalities, geoip organisation,
measurement time and scan id all carry ``<img onerror>`` and ``<script>`` payloads
(synthetic.XSS). The page must run none of them, show each as text, and the file must hold
none of them raw.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dicomguard.report import render

from . import chromium
from .synthetic import XSS, record, write_db

#: the prefix synthetic._poison puts before the payload in each field, and where it shows
FIELDS = {
    "V": "implementation version name",
    "1.2.3": "implementation class UID",
    "P": "product",
    "guessed AE": "called AE title",
    "enforced, admitted CA": "calling AE title",
    "any u": "user identity kind",
    "E": "error text",
    "R": "A-ASSOCIATE-RJ text",
    "S": "HTTP Server banner",
    "W": "web product",
    "N": "Orthanc name",
    "D": "Orthanc DICOM AE title",
    "/q": "QIDO-RS path",
    "CN=s": "certificate subject",
    "CN=i": "certificate issuer",
    "T": "certificate validity",
    "M": "modality",
    "AS": "AS organisation",
    "C": "country",
    "2026": "measured_at",
    "id": "scan id",
    "F": "finding detail",
    "h": "host name",
    "-iL t": "command line",
}
PAYLOAD = XSS[:20]  # '<img src=x onerror=' as text


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(7)
    recs = [record(i, rng, hostile=True, geo=True) for i in range(60)]
    # a host name from someone's target list, and a clone of a leaking hostile server on
    # another host: a cluster (canned data) whose identity is the hostile version name
    recs[0]["host"] = f"h{XSS}.example"
    leaking = next(r for r in recs if (r.get("exposure") or {}).get("studies") and r["max_pdu"])
    recs.append({**leaking, "host": "127.0.99.1", "seq": len(recs)})
    db = write_db(tmp_path_factory.mktemp("xss") / "xss.db", recs, argv=["scan", f"-iL t{XSS}.txt"])
    out = db.with_suffix(".html")
    out.write_text(render(db, "html"), encoding="utf-8")
    return out


def test_file_holds_no_raw_payload(hostile: Path) -> None:
    html = hostile.read_text()
    assert "<img" not in html
    assert "<script>window" not in html and 'onerror="window' not in html
    assert html.count("<script") == 2  # the endpoint data block and the page's own script


def test_chromium_runs_nothing_and_shows_every_field_as_text(hostile: Path) -> None:
    chromium.need()
    with chromium.Page(1400, 1600) as page:
        page.open(hostile.as_uri())
        assert page.console_errors() == []
        assert page.requested_urls() == [hostile.as_uri()]
        # open every row's detail (all 60 fit on the first page) and the raw figures
        opened = page.evaluate(
            "(() => { const rows = [...document.querySelectorAll('#ep-table tbody tr.row')];"
            " rows.forEach(r => r.click());"
            " document.querySelectorAll('details').forEach(d => d.open = true);"
            " return document.querySelectorAll('#ep-table tr.detail').length; })()"
        )
        assert opened >= 50
        assert page.evaluate("window.__xss === undefined")
        assert page.evaluate("document.images.length") == 0
        assert page.evaluate("document.scripts.length") == 2
        shown = page.evaluate(
            "document.querySelector('main').innerText + document.querySelector('header').innerText"
        )
        missing = [what for prefix, what in FIELDS.items() if f"{prefix}{PAYLOAD}" not in shown]
        assert not missing, f"not shown as text: {missing}"
        clusters = page.evaluate("document.getElementById('clusters').innerText")
        assert f"V{PAYLOAD}" in clusters  # the clone's identity, in the clusters table
        assert f"-iL t{PAYLOAD}" in page.evaluate("document.querySelector('header').innerText")
        (hostile.parent / "xss.png").write_bytes(page.screenshot())
        assert page.evaluate("window.__xss === undefined")


def test_detection_catches_a_raw_payload(hostile: Path, tmp_path: Path) -> None:
    """Negative control: the same page with one payload left raw must trip the checks."""
    chromium.need()
    bad = tmp_path / "bad.html"
    bad.write_text(hostile.read_text().replace("<main>", f"<main>{XSS}", 1))
    with chromium.Page() as page:
        page.open(bad.as_uri())
        assert page.evaluate("window.__xss") == 1 or page.evaluate("document.images.length")
