"""``--format defectdojo``: DefectDojo's Generic Findings Import JSON with host/port endpoints.

The rules are DefectDojo's own parser (dojo/tools/generic/json_parser.py): required keys,
a fixed allow-list of finding fields (anything else fails the import), endpoints as Endpoint
model fields, severities spelled as DefectDojo's Finding.SEVERITIES, dates it can parse.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from dicomguard.cli import main

from .conftest import db_figures

REQUIRED = {"title", "severity", "description"}
#: the finding fields DefectDojo's generic JSON parser accepts besides the required ones
ALLOWED = REQUIRED | {
    "date", "cwe", "cve", "epss_score", "epss_percentile", "cvssv3", "cvssv3_score", "cvssv4",
    "cvssv4_score", "mitigation", "impact", "steps_to_reproduce", "severity_justification",
    "references", "active", "verified", "false_p", "out_of_scope", "risk_accepted",
    "under_review", "is_mitigated", "thread_id", "mitigated", "numerical_severity", "param",
    "payload", "line", "file_path", "component_name", "component_version", "static_finding",
    "dynamic_finding", "scanner_confidence", "unique_id_from_tool", "vuln_id_from_tool",
    "sast_source_object", "sast_sink_object", "sast_source_line", "sast_source_file_path",
    "nb_occurences", "publish_date", "service", "planned_remediation_date",
    "planned_remediation_version", "effort_for_fixing", "tags", "kev_date", "known_exploited",
    "ransomware_used", "fix_available", "fix_version",
    # popped before the allow-list check
    "endpoints", "files", "vulnerability_ids", "cwes",
}  # fmt: skip
ENDPOINT_FIELDS = {"protocol", "userinfo", "host", "port", "path", "query", "fragment"}
SEVERITIES = {"Critical", "High", "Medium", "Low", "Info"}


def defectdojo_problems(doc: dict[str, Any]) -> list[str]:
    out = []
    for i, f in enumerate(doc.get("findings", [])):
        if missing := REQUIRED - f.keys():
            out.append(f"{i}: missing {sorted(missing)}")
        if extra := f.keys() - ALLOWED:
            out.append(f"{i}: not allowed {sorted(extra)}")
        if f.get("severity") not in SEVERITIES:
            out.append(f"{i}: severity {f.get('severity')!r}")
        if "date" in f:
            dt.date.fromisoformat(f["date"])
        for e in f.get("endpoints", []):
            if not isinstance(e, dict) or e.keys() - ENDPOINT_FIELDS or not e.get("host"):
                out.append(f"{i}: endpoint {e!r}")
            if not isinstance(e.get("port"), int):
                out.append(f"{i}: port {e.get('port')!r}")
    return out


def test_defectdojo_import_of_the_lab_scan(
    scan_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["report", str(scan_db), "--format", "defectdojo", "-o", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["name"] == "dicomguard" and doc["dynamic_tool"] is True
    assert len(doc["findings"]) == db_figures(scan_db)["findings"] > 0
    assert defectdojo_problems(doc) == []
    ids = [f["unique_id_from_tool"] for f in doc["findings"]]
    assert len(ids) == len(set(ids))  # re-imports match one finding per endpoint and rule
    f = next(f for f in doc["findings"] if f["vuln_id_from_tool"] == "DG-005")
    assert f["severity"] == "Critical" and "C-FIND" in f["title"]
    assert f["mitigation"] and f["endpoints"][0]["protocol"] == "dicom"
    assert f["endpoints"][0]["host"].startswith("127.77.5.")
    assert f["endpoints"][0]["port"] == 11112


def test_checker_catches_what_defectdojo_refuses() -> None:
    bad = {"findings": [{"title": "x", "severity": "high", "endpoint": "dicom://h:1"}]}
    problems = defectdojo_problems(bad)
    assert any("missing" in p for p in problems)
    assert any("not allowed" in p for p in problems)
    assert any("severity" in p for p in problems)
