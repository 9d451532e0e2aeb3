"""Reports separate confirmed, likely and flagged (honeypot) endpoints: a lab with decoys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from dicomguard.report.html import render_html
from dicomguard.report.stats import aggregate
from dicomguard.report.summary import render_summary
from dicomguard.store.read import load_scan

from .conftest import scan_lab

NETWORK = "127.77.6.0/29"  # .1-.5 lab hosts
PERSONAS = {"open": 2, "honeypot-dicomhawk": 2, "honeypot-dicompot": 1}


@pytest.fixture(scope="module")
def decoy_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield scan_lab(tmp_path_factory.mktemp("decoys") / "decoys.db", NETWORK, PERSONAS)


def test_statistics_count_real_looking_and_flagged_separately(decoy_db: Path) -> None:
    c = aggregate(load_scan(decoy_db))["classification"]
    assert (c["confirmed"], c["likely"], c["flagged"]) == (2, 0, 3)
    assert c["real_looking"] == 2
    assert {f["endpoint"].split(":")[0] for f in c["flagged_endpoints"]} == {
        "127.77.6.3",
        "127.77.6.4",
        "127.77.6.5",
    }
    canned = [cl for cl in c["clusters"] if cl["canned_data"]]
    assert [cl["size"] for cl in canned] == [2]  # the two DICOMHawk imitations


def test_html_and_summary_show_the_three_classes(decoy_db: Path) -> None:
    html = render_html(load_scan(decoy_db))
    assert 'id="h-confirmed">2<' in html and 'id="h-flagged">3<' in html
    assert 'id="clusters"' in html and "accepts-unknown-sop-class" in html
    # none of the decoys adds to the per-IP headline
    assert 'id="h-servers">2<' in html
    console = Console(record=True, width=160, force_terminal=False)
    records = load_scan(decoy_db).records
    render_summary(records, {"endpoints": 8, "states": {}}, console)
    text = console.export_text()
    assert "2 confirmed, 0 likely, 3 flagged as honeypots" in text
    assert "flagged 127.77.6.5:11112" in text


def test_csv_has_honeypot_and_confidence_columns(decoy_db: Path) -> None:
    import csv
    import io

    from dicomguard.knowledge.verdicts import VERDICTS
    from dicomguard.report import render

    rows = list(csv.DictReader(io.StringIO(render(decoy_db, "csv"))))
    by_host = {r["host"]: r for r in rows if r["dicom"] == "1"}
    assert {h for h, r in by_host.items() if r["honeypot_class"] != "real"} == {
        "127.77.6.3",
        "127.77.6.4",
        "127.77.6.5",
    }
    for h in ("127.77.6.3", "127.77.6.4", "127.77.6.5"):
        assert int(by_host[h]["honeypot_score"]) >= 3 and by_host[h]["honeypot_signals"]
    assert by_host["127.77.6.1"]["honeypot_class"] == "real"
    for v in VERDICTS:  # how each verdict was reached, per endpoint
        assert by_host["127.77.6.1"][f"confidence_{v}"] in ("observed", "inferred", "unknown")
