"""SARIF 2.1.0 output, so code-scanning dashboards (GitHub, GitLab, DefectDojo) ingest findings.

SARIF was made for source files; a network endpoint has no file, so each result's location is the
URI ``dicom://host:port`` (tools display it as an artifact) plus a logical location naming the
endpoint. Rules are the findings catalog, with the remediation as the rule's help text and a
``security-severity`` score, which GitHub uses to rank security alerts.
"""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from ..scan.findings import catalog
from ..store.read import StoredScan

LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub's bands: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"


def _rule(fid: str) -> dict[str, Any]:
    d = catalog().get(fid)
    if d is None:  # an ID newer than this catalog: still reportable
        return {"id": fid, "shortDescription": {"text": fid}}
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


def render_sarif(scan: StoredScan) -> str:
    meta = scan.meta
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for rec in scan.records:
        endpoint = f"{rec['host']}:{rec['port']}"
        for f in rec.get("findings") or []:
            fid = f["id"]
            if fid not in index:
                index[fid] = len(rules)
                rules.append(_rule(fid))
            severity = f.get("severity", "info")
            text = f.get("title", fid) + (f" ({f['detail']})" if f.get("detail") else "")
            product = " ".join(x for x in (rec.get("product"), rec.get("product_version")) if x)
            results.append(
                {
                    "ruleId": fid,
                    "ruleIndex": index[fid],
                    "level": LEVEL.get(severity, "note"),
                    "message": {"text": f"{endpoint}: {text}"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": f"dicom://{endpoint}"}
                            },
                            "logicalLocations": [{"name": endpoint, "kind": "endpoint"}],
                        }
                    ],
                    # stable across scans, so dashboards track one alert per endpoint and rule
                    "partialFingerprints": {"dicomguardEndpointFinding/v1": f"{endpoint}/{fid}"},
                    "properties": {
                        "severity": severity,
                        "confidence": f.get("confidence"),
                        "product": product or None,
                        "tls": bool(rec.get("tls")),
                    },
                }
            )
    invocation: dict[str, Any] = {
        "executionSuccessful": meta.get("finished_at") is not None,
        "commandLine": " ".join(["dicomguard", *(meta.get("argv") or [])]),
    }
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
                "invocations": [invocation],
                "results": results,
                "properties": {"scanDatabase": scan.path, "endpointsProbed": scan.probed},
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _zulu(iso: str) -> str:
    return iso.replace("+00:00", "Z")
