"""Every format words a verdict with the same function (report/verdict.py).

The HTML once showed an endpoint accepting *any* called AE title as "guessed DGA907CD8A57" (the
scanner's random probe title) while the terminal summary said "any".
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from dicomguard.knowledge.findings import finding
from dicomguard.report import render
from dicomguard.report import verdict as V
from dicomguard.report.html import context
from dicomguard.report.summary import render_summary
from dicomguard.store.read import load_scan

from .synthetic import _base, write_db

PROBE_TITLE = "DGA907CD8A57"


def _records() -> list[dict]:
    any_ae = _base("127.0.15.1", 104, 0)  # accepted our random title: checks nothing
    guessed = _base("127.0.15.2", 104, 1)
    guessed["called_aet"] = {"enforced": True, "accepted": "ORTHANC", "verified": True}
    enforced = _base("127.0.15.3", 104, 2)
    enforced["called_aet"] = {"enforced": True, "accepted": None, "verified": True}
    unknown = _base("127.0.15.4", 104, 3)  # the calling-AE check came first
    unknown["called_aet"] = {"enforced": False, "accepted": None, "verified": False}
    unknown["calling_aet"] = {"enforced": True, "accepted": "STORESCU", "verified": True}
    recs = [any_ae, guessed, enforced, unknown]
    for r in recs:
        r["findings"] = [finding("DG-010", detail="DCMTK 3.6.7")]
    return recs


EXPECTED = {
    "127.0.15.1": ("any", "any"),
    "127.0.15.2": ("guessed ORTHANC", "any"),
    "127.0.15.3": ("enforced", "any"),
    "127.0.15.4": ("unknown", "enforced, admitted STORESCU"),
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return write_db(tmp_path / "v.db", _records())


def test_called_and_calling_ae_wording(db: Path) -> None:
    for rec in load_scan(db).records:
        assert (V.called_aet(rec), V.calling_aet(rec)) == EXPECTED[rec["host"]]


def test_html_csv_and_summary_say_the_same(db: Path) -> None:
    scan = load_scan(db)
    data = context(scan)["endpoint_data"]
    strings = data["strings"]
    html_rows = {r[0]: (strings[r[6]], strings[r[7]]) for r in data["rows"]}
    assert html_rows == EXPECTED

    rows = list(csv.DictReader(io.StringIO(render(db, "csv"))))
    assert {r["host"]: (r["called_aet"], r["calling_aet"]) for r in rows} == EXPECTED
    # the raw column no longer carries the scanner's own probe title as if it had been guessed
    assert {r["host"]: r["called_aet_accepted"] for r in rows}["127.0.15.1"] == ""

    console = Console(record=True, width=220, force_terminal=False)
    render_summary(scan.records, {"endpoints": 4, "states": {"open": 4}}, console)
    text = console.export_text()
    for host, (called, calling) in EXPECTED.items():
        line = next(ln for ln in text.splitlines() if host in ln)
        assert called in line and calling.split(",")[0] in line, line
    sarif = json.loads(render(db, "sarif"))
    props = {
        r["properties"]["host"]: r["properties"]["called_aet"] for r in sarif["runs"][0]["results"]
    }
    assert props == {h: v[0] for h, v in EXPECTED.items()}

    html = render(db, "html")
    assert PROBE_TITLE not in html.replace(f'"{PROBE_TITLE}"', "")  # only raw JSON, if at all
    assert f"guessed {PROBE_TITLE}" not in html


def test_counts_never_show_a_lower_bound_of_zero() -> None:
    assert V.count_text(0, complete=False) == "unknown"
    assert V.count_text(5, complete=False) == "≥5"
    assert V.count_text(1234, complete=True) == "1,234"
    assert V.count_text(None) == "-"


def test_service_states_beyond_booleans_are_shown_as_states() -> None:
    """A scanner that records 'negotiated, then refused' (issue 10) gets its own wording."""
    rec = _base("127.0.15.9", 104, 0)
    rec["services"].update(find_study_root="refused", move={"state": "refused"})
    assert V.services_text(rec) == "echo find-S(refused) move(refused)"
    assert ("find-S", "refused") in V.services(rec)


def test_mutual_tls_is_its_own_transport() -> None:
    rec = _base("127.0.15.9", 2762, 0)
    rec["tls"] = True
    rec["tls_details"] = {"client_cert": {"requested": True, "required": True}}
    assert V.transport(rec) == "TLS, client certificate required"
    rec["tls_details"]["client_cert"]["required"] = False
    assert V.transport(rec) == "TLS"
