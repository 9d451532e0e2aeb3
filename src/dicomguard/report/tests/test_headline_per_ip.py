"""Headline figures per IP address, honeypots apart, per-port figures second, honest bounds."""

from __future__ import annotations

from pathlib import Path

from dicomguard.knowledge.findings import finding
from dicomguard.report import render
from dicomguard.report.stats import aggregate
from dicomguard.store.read import load_scan

from .synthetic import _base, _services, write_db


def _leaking(host: str, port: int, seq: int, patients: int, studies: int, **exp) -> dict:
    r = _base(host, port, seq)
    r["services"] = _services(verification=True, find_study_root=True, find_patient_root=True)
    r["exposure"] = {
        "patients": patients,
        "studies": studies,
        "studies_by_year": {"2019": studies // 2, "2020": studies - studies // 2},
        "earliest_study_date": "20190105",
        "latest_study_date": "20201230",
        "complete": True,
        **exp,
    }
    r["findings"] = [finding("DG-005"), finding("DG-004")]
    return r


def _records() -> list[dict]:
    a = "127.0.16.1"
    recs = [
        # one archive on two DICOM ports (the scanner marks the second) and its REST API
        _leaking(a, 104, 0, 10, 20),
        _leaking(a, 4242, 1, 10, 20, same_archive_as=f"{a}:104"),
    ]
    web = _base(a, 8042, 2)
    web.update(dicom=False, product="Orthanc", product_version="1.10.1")
    web["web"] = {
        "scheme": "http",
        "product": "Orthanc",
        "orthanc": {"auth_required": False, "counts": {"patients": 10, "studies": 20}},
        "qido": None,
    }
    web["findings"] = [finding("DG-030")]
    recs.append(web)
    # a honeypot full of canned data, and a likely one
    hp = _leaking("127.0.16.2", 104, 3, 1000, 5000)
    hp["honeypot"] = {
        "signals": [
            {"id": "accepts-unknown-sop-class", "weight": 3},
            {"id": "orthanc-version-name", "weight": 2},
        ]
    }
    likely = _leaking("127.0.16.3", 104, 4, 700, 700)
    likely["honeypot"] = {
        "signals": [
            {"id": "orthanc-version-name", "weight": 2},
            {"id": "max-pdu-4mib", "weight": 1},
        ]
    }
    # a server that capped its answers at 0: a lower bound that says nothing
    capped = _base("127.0.16.4", 104, 5)
    capped["exposure"] = {"patients": 0, "studies": 0, "complete": False}
    # TLS with client certificates, AE titles unobservable behind it
    mtls = _base("127.0.16.5", 2762, 6)
    mtls["tls"] = True
    mtls["tls_details"] = {"client_cert": {"requested": True, "required": True}}
    mtls["called_aet"] = {"enforced": False, "accepted": None, "verified": False}
    mtls["calling_aet"] = {"enforced": False, "verified": False}
    # validates the called AE title
    locked = _base("127.0.16.6", 104, 7)
    locked["called_aet"] = {"enforced": True, "accepted": None, "verified": True}
    return [*recs, hp, likely, capped, mtls, locked]


def test_a_port_demanding_a_client_certificate_counts_as_a_secured_server(tmp_path: Path) -> None:
    """Even where the record could not confirm DICOM behind the TLS handshake (issue 10)."""
    rec = _base("127.0.16.7", 2762, 0)
    rec.update(dicom=False, tls=True, implementation_class_uid=None, product=None)
    rec["tls_details"] = {"client_cert": {"requested": True, "required": True}}
    h = aggregate(load_scan(write_db(tmp_path / "m.db", [rec])))["headline"]
    assert h["servers"] == 1 and h["client_cert_required"]["n"] == 1 and h["tls"]["n"] == 1


def test_per_ip_headline(tmp_path: Path) -> None:
    db = write_db(tmp_path / "h.db", _records())
    d = aggregate(load_scan(db))
    h = d["headline"]
    assert h["servers"] == 4  # .1 .4 .5 .6; the honeypots are apart
    assert (h["honeypots"], h["likely_honeypots"]) == (1, 1)
    assert h["leaking"] == {"n": 1, "of": 4, "share": 0.25}
    assert h["tls"]["n"] == 1  # the mutual-TLS server
    assert h["client_cert_required"]["n"] == 1
    # .1 accepts any title, .6 checks it, .4 accepts any; .5 could not be observed
    assert h["validating_ae"] == {"n": 1, "of": 3, "share": round(1 / 3, 4)}
    # the archive behind three ports counted once; the honeypots' thousands not at all
    assert (h["patients_exposed"], h["studies_exposed"]) == (10, 20)
    assert h["studies_complete"] is False  # the server capped at 0 makes the total a bound
    assert h["studies_by_year"] == {"2019": 10, "2020": 10}
    assert h["study_years"] == [2019, 2020]
    # per port, second
    assert d["endpoints"]["dicom_services"] == 7 and d["endpoints"]["web_services"] == 1
    assert d["endpoints"]["honeypot_endpoints"] == 1
    assert d["by_port"]["104"]["honeypots"] == 2


def test_html_shows_bounds_and_never_a_bound_of_zero(tmp_path: Path) -> None:
    recs = _records()
    db = write_db(tmp_path / "h.db", recs)
    html = render(db, "html")
    assert 'id="h-servers">4<' in html
    assert 'id="h-studies">≥20<' in html
    assert "≥0" not in html
    only_capped = write_db(tmp_path / "c.db", [recs[5]])
    html = render(only_capped, "html")
    assert 'id="h-studies">unknown<' in html and "≥0" not in html


def test_terminal_per_port_leaking_is_the_reports_figure(tmp_path: Path) -> None:
    """The terminal's per-port 'leaking' count is the HTML/JSON one: real-looking ports that
    listed data (worklist and web API included, honeypots set apart), not 'ports with studies'
    with honeypots mixed in; and it gives no second, honeypot-inflated patient total."""
    import re

    from rich.console import Console

    from dicomguard.report.summary import render_summary

    recs = _records()
    wl = _base("127.0.16.7", 104, 8)
    wl["exposure"] = {"patients": None, "studies": None, "worklist_items": 5, "complete": True}
    recs.append(wl)
    db = write_db(tmp_path / "s.db", recs)
    data = aggregate(load_scan(db))
    console = Console(record=True, width=400, force_terminal=False)
    render_summary(load_scan(db).records, {"endpoints": len(recs)}, console)
    line = next(ln for ln in console.export_text().splitlines() if ln.startswith("Scanned"))
    m = re.search(r"(\d+) real-looking port\(s\) leaking", line)
    assert m, line
    assert int(m.group(1)) == data["endpoints"]["leaking"]
    assert "5,000" not in line and "1,710" not in line  # no honeypot studies/patients per port


def test_terminal_finding_counts_are_the_reports(tmp_path: Path) -> None:
    """'DG-005 xN' in the terminal is the HTML/JSON 'N endpoint(s)' (real-looking endpoints),
    with the honeypots' share said apart, not a larger figure with honeypots mixed in."""
    from rich.console import Console

    from dicomguard.report.summary import render_summary

    recs = _records()
    db = write_db(tmp_path / "s.db", recs)
    data = aggregate(load_scan(db))
    console = Console(record=True, width=400, force_terminal=False)
    render_summary(load_scan(db).records, {"endpoints": len(recs)}, console)
    text = console.export_text()
    for f in data["findings"]:
        line = next(ln for ln in text.splitlines() if f" {f['id']} x" in ln)
        assert f" {f['id']} x{f['endpoints']}" in line, line
    dg005 = next(ln for ln in text.splitlines() if " DG-005 x" in ln)
    assert "(+2 on honeypots)" in dg005, dg005
