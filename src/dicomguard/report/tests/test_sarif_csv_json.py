"""SARIF validates against the official 2.1.0 schema; CSV and JSON agree with the database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest

from dicomguard.cli import main

from .conftest import db_figures

SCHEMA = Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json"


def _report(db: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["report", str(db), "--format", fmt, "-o", "-"]) == 0
    return capsys.readouterr().out


def test_sarif_is_valid_sarif_2_1_0(scan_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_report(scan_db, "sarif", capsys))
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(doc), key=str)
    assert not errors, "\n".join(e.message for e in errors[:5])
    run = doc["runs"][0]
    assert len(run["results"]) == db_figures(scan_db)["findings"] > 0
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:  # every result points at its rule, with remediation as help
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"] and rule["help"]["text"]
        loc = result["locations"][0]
        assert loc["physicalLocation"]["artifactLocation"]["uri"].startswith(
            "dicom-endpoints/127.77.5."
        )
        assert loc["logicalLocations"][0]["fullyQualifiedName"].startswith("dicom://127.77.5.")
        assert result["properties"]["host"].startswith("127.77.5.")


def test_sarif_validation_catches_a_broken_document(
    scan_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(_report(scan_db, "sarif", capsys))
    doc["runs"][0]["results"][0]["level"] = "fatal"  # not a SARIF level
    schema = json.loads(SCHEMA.read_text())
    assert list(jsonschema.Draft4Validator(schema).iter_errors(doc))


def test_csv_has_one_row_per_stored_endpoint(
    scan_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(io.StringIO(_report(scan_db, "csv", capsys))))
    fig = db_figures(scan_db)
    assert len(rows) == fig["endpoints"]
    assert sum(int(r["dicom"]) for r in rows) == fig["dicom"]
    assert sum(int(r["patients"] or 0) for r in rows if r["dicom"] == "1") == fig["patients"]
    assert all(r["host"].startswith("127.77.5.") for r in rows)


def test_json_headline_equals_database(scan_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(_report(scan_db, "json", capsys))
    fig = db_figures(scan_db)
    h = data["headline"]
    assert h["endpoints_probed"] == fig["probed"] == 8  # a /29 on one port
    # one lab server per address and no honeypot: per-IP servers equal DICOM ports here
    assert h["servers"] == data["endpoints"]["dicom_services"] == fig["dicom"]
    assert h["patients_exposed"] == fig["patients"]
    assert h["studies_exposed"] == fig["studies"]
    assert data["scan"]["complete"] is True
    # the lab's DCMTK personas are dated and carry published CVEs
    dcmtk = [p for p in data["by_product"] if p["product"] == "DCMTK" and p["release"]]
    assert dcmtk and all(p["release"]["released"] and p["release"]["cves"] for p in dcmtk)
