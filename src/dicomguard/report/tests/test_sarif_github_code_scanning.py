"""SARIF that GitHub code scanning accepts: the 2.1.0 schema plus GitHub's documented rules.

GitHub's "SARIF support for code scanning" and "SARIF results exceed limits" pages, and the
GitHub rules of Microsoft's SARIF multitool (GH1001 locations, GH1003 region.startLine, GH1005
relative or file: URIs, GH1007 flattened messages), state what an upload must satisfy;
:func:`github_problems` checks each, and a negative control shows it catches the
``dicom://host:port`` locations GitHub refused.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from dicomguard.report import render
from dicomguard.report.sarif import MAX_RESULTS, artifact_uri

from .synthetic import record, write_db

SCHEMA = Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json"
#: GitHub's hard limits ("SARIF results exceed limit")
LIMITS = {"runs": 20, "results": 25_000, "rules": 25_000, "locations": 1_000, "tags": 20}


def github_problems(doc: dict[str, Any]) -> list[str]:
    """What GitHub code scanning would refuse or not display in ``doc``."""
    out: list[str] = []
    if doc.get("version") != "2.1.0":
        out.append("version must be 2.1.0")
    runs = doc.get("runs") or []
    if len(runs) > LIMITS["runs"]:
        out.append("too many runs")
    for run in runs:
        driver = run["tool"]["driver"]
        if not driver.get("name"):
            out.append("tool.driver.name missing")
        rules = driver.get("rules") or []
        if len(rules) > LIMITS["rules"]:
            out.append("too many rules")
        for rule in rules:
            if not rule.get("id"):
                out.append("rule without id")
            tags = (rule.get("properties") or {}).get("tags") or []
            if len(tags) > LIMITS["tags"]:
                out.append(f"{rule['id']}: too many tags")
            sev = (rule.get("properties") or {}).get("security-severity")
            if sev is not None and not (isinstance(sev, str) and 0.0 <= float(sev) <= 10.0):
                out.append(f"{rule['id']}: security-severity must be a string 0.0-10.0")
        results = run.get("results") or []
        if len(results) > LIMITS["results"]:
            out.append("too many results")
        for i, res in enumerate(results):
            where = f"result {i}"
            if not (res.get("message") or {}).get("text"):
                out.append(f"{where}: message.text missing (GH1007)")
            if "ruleIndex" in res and rules[res["ruleIndex"]]["id"] != res.get("ruleId"):
                out.append(f"{where}: ruleIndex does not match ruleId")
            locs = res.get("locations") or []
            if not locs:
                out.append(f"{where}: no location (GH1001)")
            if len(locs) > LIMITS["locations"]:
                out.append(f"{where}: too many locations")
            for loc in locs:
                phys = loc.get("physicalLocation") or {}
                uri = (phys.get("artifactLocation") or {}).get("uri")
                if not uri:
                    out.append(f"{where}: no artifactLocation.uri (GH1001)")
                    continue
                scheme = urlsplit(uri).scheme
                if scheme and scheme != "file":
                    out.append(f"{where}: {uri!r} is not a relative or file: URI (GH1005)")
                if ((phys.get("region") or {}).get("startLine") or 0) < 1:
                    out.append(f"{where}: region.startLine missing (GH1003)")
    return out


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    return [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]


def test_lab_sarif_meets_schema_and_github_rules(scan_db: Path) -> None:
    doc = json.loads(render(scan_db, "sarif"))
    assert doc["runs"][0]["results"]
    assert _schema_errors(doc) == []
    assert github_problems(doc) == []


def test_the_old_dicom_uris_are_caught(scan_db: Path) -> None:
    """Negative control: the locations GitHub refused are reported by the checker."""
    doc = json.loads(render(scan_db, "sarif"))
    loc = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    loc["artifactLocation"]["uri"] = "dicom://127.77.5.1:11112"
    del loc["region"]
    problems = github_problems(doc)
    assert any("GH1005" in p for p in problems) and any("GH1003" in p for p in problems)


def test_ipv6_endpoint_is_a_relative_uri() -> None:
    uri = artifact_uri("::1", 104)
    assert uri == "dicom-endpoints/%3A%3A1/104"
    assert urlsplit(uri).scheme == ""


def test_more_results_than_github_accepts_keeps_the_most_severe(tmp_path: Path) -> None:
    rng = random.Random(3)
    recs = [record(i, rng) for i in range(6_000)]  # about 30,000 findings
    db = write_db(tmp_path / "big.db", recs)
    total = sum(len(r["findings"]) for r in recs)
    assert total > MAX_RESULTS
    doc = json.loads(render(db, "sarif"))
    run = doc["runs"][0]
    assert len(run["results"]) == MAX_RESULTS
    assert run["properties"]["resultsOmitted"] == total - MAX_RESULTS
    kept = {r["ruleId"] for r in run["results"]}
    assert "DG-005" in kept  # critical ones are kept; info ones went first
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert "GitHub code scanning accepts at most" in notes[0]["message"]["text"]
    assert github_problems(doc) == []
    assert _schema_errors({**doc, "runs": [{**run, "results": run["results"][:200]}]}) == []
