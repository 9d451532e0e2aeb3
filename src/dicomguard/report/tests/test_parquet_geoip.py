"""report --format parquet (one row per endpoint, facts flattened) and --geoip enrichment.

The MaxMind databases are built here with mmdb-writer (GeoIP2-Country and GeoLite2-ASN
layouts) for the loopback lab addresses, with user-assigned country codes (XA, XB) and a
documentation AS number (RFC 5398); dicomguard reads them with the maxminddb library.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from dicomguard.cli import main
from dicomguard.lab.fleet import FleetThread
from dicomguard.testing.scans import stored_records

from .conftest import db_figures


def build_mmdbs(tmp: Path, low: str, high: str, whole: str) -> tuple[Path, Path]:
    """A country database (low half XA, high half XB) and an ASN database (all AS64500)."""
    country = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country")
    country.insert_network(IPSet([low]), {"country": {"iso_code": "XA"}})
    country.insert_network(IPSet([high]), {"country": {"iso_code": "XB"}})
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    asn.insert_network(
        IPSet([whole]),
        {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Lab AS"},
    )
    paths = (tmp / "country.mmdb", tmp / "asn.mmdb")
    country.to_db_file(str(paths[0]))
    asn.to_db_file(str(paths[1]))
    return paths


def test_parquet_has_one_row_per_endpoint_with_flat_columns(scan_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.parquet"
    assert main(["report", str(scan_db), "--format", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out)
    figures = db_figures(scan_db)
    assert table.num_rows == figures["endpoints"]
    names = table.column_names
    assert names[:4] == ["scan_id", "measured_at", "host", "port"]
    for column in (
        "called_aet_enforced",
        "calling_aet_enforced",
        "user_identity_required",
        "services_verification",
        "exposure_patients",
        "finding_ids",
        "worst_severity",
        "country",
        "asn",
        "as_org",
    ):
        assert column in names, column
    rows = table.to_pylist()
    assert sum(r["exposure_patients"] or 0 for r in rows if r["dicom"]) == figures["patients"]
    assert sum(len(r["finding_ids"]) for r in rows) == figures["findings"]
    assert {r["country"] for r in rows} == {None}  # no --geoip: unknown, not guessed
    meta = table.schema.metadata
    assert b"dicomguard.version" in meta


def test_report_geoip_adds_country_and_as(scan_db: Path, tmp_path: Path) -> None:
    country, asn = build_mmdbs(tmp_path, "127.77.5.0/30", "127.77.5.4/30", "127.77.5.0/29")
    out = tmp_path / "geo.parquet"
    argv = ["report", str(scan_db), "--format", "parquet", "-o", str(out)]
    assert main([*argv, "--geoip", str(country), "--geoip", str(asn)]) == 0
    rows = pq.read_table(out).to_pylist()
    assert rows
    for r in rows:
        last = int(r["host"].rsplit(".", 1)[1])
        assert r["country"] == ("XA" if last < 4 else "XB"), r["host"]
        assert (r["asn"], r["as_org"]) == (64500, "Example Lab AS")


def test_scan_geoip_stores_the_fields_in_each_record(tmp_path: Path) -> None:
    network = "127.42.142.0/29"
    country, asn = build_mmdbs(tmp_path, "127.42.142.0/30", "127.42.142.4/31", network)
    db = tmp_path / "geo.db"
    with FleetThread(network, {"open": 2, "echo-only": 2}, ports=(11112,), max_patients=10):
        argv = ["scan", network, "-p", "11112", "--rate", "0", "--timeout", "2", "--no-progress"]
        argv += ["-q", "--db", str(db), "--geoip", str(country), "--geoip", str(asn)]
        assert main(argv) == 0
    records = stored_records(db)
    assert len(records) == 4
    for r in records:
        last = int(r["host"].rsplit(".", 1)[1])
        expected = "XA" if last < 4 else "XB" if last < 6 else None
        assert (r["country"], r["asn"], r["as_org"]) == (expected, 64500, "Example Lab AS")


def test_a_bad_geoip_file_is_one_line_and_exit_2(
    scan_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"not a maxmind database at all")
    argv = ["report", str(scan_db), "--format", "csv", "-o", str(tmp_path / "x.csv")]
    assert main([*argv, "--geoip", str(bogus)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a MaxMind DB file" in err[0], err


def test_parquet_holds_no_patient_identifier(tmp_path: Path) -> None:
    """Parquet is compressed, so the byte search of the other outputs cannot see inside it:
    decode every cell and look there, with --collect-identifiers on (hashes only)."""
    import json

    from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX

    network = "127.42.144.0/29"
    db = tmp_path / "ids.db"
    with FleetThread(network, ["open", "capped", "open"], ports=(11112,), max_patients=30) as lab:
        argv = ["scan", network, "-p", "11112", "--rate", "0", "--timeout", "2", "--no-progress"]
        assert main([*argv, "-q", "--db", str(db), "--collect-identifiers"]) == 0
        patients = [p for plan in lab.fleet.plan for p in plan.patients()]
    out = tmp_path / "ids.parquet"
    assert main(["report", str(db), "--format", "parquet", "-o", str(out)]) == 0
    text = json.dumps(pq.read_table(out).to_pylist(), default=str)
    assert '"exposure_patients": ' in text and patients
    assert NAME_PREFIX not in text and ID_PREFIX not in text
    assert not any(p.patient_id in text for p in patients)
