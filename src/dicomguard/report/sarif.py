"""SARIF 2.1.0 output that GitHub code scanning (and other SARIF dashboards) accept.

SARIF was made for source files; a network endpoint has no file. GitHub code scanning only
accepts results whose location is a file path - a relative URI or a ``file:`` URI - with a
``region.startLine`` (GitHub's "SARIF support for code scanning"; Microsoft's SARIF multitool
checks the same as rules GH1001, GH1003 and GH1005), so ``dicom://host:port`` was refused. Each
result's physical location is therefore the relative path ``dicom-endpoints/<host>/<port>``
(percent-encoded, so an IPv6 address's colons never read as a URI scheme), line 1; the endpoint
itself is in the logical location (``kind`` "resource", fully qualified name
``dicom://host:port``) and in the result's properties (``host``, ``port``).

GitHub's documented limits (SARIF results exceed limit): at most 25,000 results per run (only
the 5,000 most severe are shown), 25,000 rules, 20 runs per file, 1,000 locations per result,
20 tags per rule. Above :data:`MAX_RESULTS` the most severe results are kept and the cut is
reported as a tool execution notification and in the run's properties.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..knowledge.findings import catalog, severity_rank
from ..knowledge.honeypot import classify
from ..store.read import StoredScan
from . import verdict as V

LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub's bands: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
#: GitHub code scanning rejects a run with more results than this
MAX_RESULTS = 25_000
#: where the endpoint pseudo-files live (relative to the repository root the SARIF is uploaded to)
ARTIFACT_ROOT = "dicom-endpoints"


def artifact_uri(host: str, port: int) -> str:
    """``dicom-endpoints/<host>/<port>``: a relative URI reference (RFC 3986 4.2)."""
    return f"{ARTIFACT_ROOT}/{quote(str(host), safe='')}/{int(port)}"


def _rule(fid: str) -> dict[str, Any]:
    d = catalog().get(fid)
    if d is None:  # an ID newer than this catalog: still reportable
        return {"id": fid, "shortDescription": {"text": fid}, "help": {"text": fid}}
    return {
        "id": fid,
        "name": "".join(w.capitalize() for w in d.title.replace("(", " ").split() if w.isalpha()),
        "shortDescription": {"text": d.title},
        "fullDescription": {"text": d.why},
        "help": {"text": d.remediation, "markdown": f"**Remediation.** {d.remediation}"},
        "defaultConfiguration": {"level": LEVEL[d.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[d.severity],
            "severity": d.severity,
            "tags": ["security", "dicom"],
        },
    }


def _result(rec: dict[str, Any], f: dict[str, Any], cls: str = V.REAL) -> dict[str, Any]:
    """One result; ``cls`` is the endpoint's :func:`.verdict.honeypot_class`, said in the
    message (as DefectDojo's description does) so an alert on a honeypot is not triaged as a
    real server's."""
    endpoint = V.endpoint(rec)
    fid = f["id"]
    severity = f.get("severity", "info")
    text = f.get("title", fid) + (f" ({f['detail']})" if f.get("detail") else "")
    if cls != V.REAL:
        text += f". Classification: {cls}."
    return {
        "ruleId": fid,
        "level": LEVEL.get(severity, "note"),
        "message": {"text": f"{endpoint}: {text}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact_uri(rec["host"], rec["port"])},
                    "region": {"startLine": 1},
                },
                "logicalLocations": [
                    {
                        "name": endpoint,
                        "fullyQualifiedName": f"dicom://{endpoint}",
                        "kind": "resource",
                    }
                ],
            }
        ],
        # stable across scans, so dashboards track one alert per endpoint and rule
        "partialFingerprints": {"dicomguardEndpointFinding/v1": f"{endpoint}/{fid}"},
        "properties": {
            "host": rec["host"],
            "port": int(rec["port"]),
            "severity": severity,
            "confidence": f.get("confidence"),
            "product": V.product(rec) if rec.get("product") else None,
            "transport": V.transport(rec),
            "called_aet": V.called_aet(rec) if rec.get("dicom") else None,
            "honeypot_class": cls if rec.get("dicom") else None,
        },
    }


def render_sarif(scan: StoredScan) -> str:
    """One SARIF 2.1.0 log with one run; rules are the findings catalog entries used."""
    meta = scan.meta
    dicom = [r for r in scan.records if r.get("state", "open") == "open" and r.get("dicom")]
    cls = {ep: V.honeypot_class(e) for ep, e in classify(dicom)["endpoints"].items()}
    pairs = [
        (rec, f)
        for rec in scan.records
        if rec.get("state", "open") == "open"
        for f in rec.get("findings") or []
    ]
    omitted = 0
    if len(pairs) > MAX_RESULTS:  # keep the most severe; stable order otherwise
        pairs.sort(key=lambda p: -severity_rank(p[1].get("severity", "info")))
        omitted = len(pairs) - MAX_RESULTS
        pairs = pairs[:MAX_RESULTS]
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for rec, f in pairs:
        if f["id"] not in index:
            index[f["id"]] = len(rules)
            rules.append(_rule(f["id"]))
        res = _result(rec, f, cls.get(f"{rec['host']}:{rec['port']}", V.REAL))
        res["ruleIndex"] = index[f["id"]]
        results.append(res)
    invocation: dict[str, Any] = {
        "executionSuccessful": meta.get("finished_at") is not None,
        "commandLine": " ".join(["dicomguard", *(meta.get("argv") or [])]),
    }
    if omitted:
        invocation["toolExecutionNotifications"] = [
            {
                "level": "warning",
                "message": {
                    "text": f"{omitted} less severe results left out: GitHub code scanning "
                    f"accepts at most {MAX_RESULTS} results per run"
                },
            }
        ]
    if meta.get("started_at"):
        invocation["startTimeUtc"] = _zulu(meta["started_at"])
    if meta.get("finished_at"):
        invocation["endTimeUtc"] = _zulu(meta["finished_at"])
    doc = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "dicomguard",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": "dicomguard/"},
                "invocations": [invocation],
                "results": results,
                "properties": {
                    "scanDatabase": scan.path,
                    "endpointsProbed": scan.probed,
                    "resultsOmitted": omitted,
                },
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _zulu(iso: str) -> str:
    return iso.replace("+00:00", "Z")
