"""DefectDojo "Generic Findings Import" JSON, so findings land in DefectDojo with their endpoints.

The format is DefectDojo's generic JSON parser (``dojo/tools/generic/json_parser.py`` in
DefectDojo/django-DefectDojo): a top-level object with the test's ``name``, ``type``, ``version``
and ``dynamic_tool``/``static_tool`` flags, and ``findings``, each with the required ``title``,
``severity`` (``Critical``/``High``/``Medium``/``Low``/``Info``) and ``description``, optional
fields from a fixed allow-list (anything else makes the import fail), and ``endpoints`` given as
objects with ``host``, ``port`` and ``protocol`` (fields of DefectDojo's Endpoint model).

One DefectDojo finding per (finding, endpoint), with ``unique_id_from_tool`` set to
``<finding id>@<host:port>`` so re-imports match findings across scans, and the endpoint's
classification (honeypot or not) and verdict confidence in the description.
"""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from ..knowledge.findings import catalog
from ..store.read import StoredScan
from . import verdict as V
from .stats import analyse

SEVERITY = {
    "critical": "Critical",
    "high": "High",
    "medium": "Medium",
    "low": "Low",
    "info": "Info",
}


def _protocol(rec: dict[str, Any]) -> str:
    web = rec.get("web") or {}
    if web:
        return str(web.get("scheme") or "http")
    return "dicom-tls" if rec.get("tls") else "dicom"


def render_defectdojo(scan: StoredScan) -> str:
    """The scan's findings as a Generic Findings Import JSON document."""
    a = analyse(scan)
    cat = catalog()
    date = (scan.meta.get("started_at") or "")[:10] or None
    findings = []
    for rec in a.records:
        cls = a.class_of(rec)
        for f in rec.get("findings") or []:
            fid = f["id"]
            d = cat.get(fid)
            endpoint = V.endpoint(rec)
            lines = [
                f"{d.title if d else f.get('title', fid)} on {endpoint}.",
                d.why if d else "",
                f"Detail: {f['detail']}" if f.get("detail") else "",
                f"Product: {V.product(rec)}; transport: {V.transport(rec)}."
                if rec.get("dicom") or rec.get("web")
                else "",
                f"Classification: {cls}." if cls != V.REAL else "",
            ]
            item: dict[str, Any] = {
                "title": f"{fid} {d.title if d else f.get('title', fid)}",
                "severity": SEVERITY.get(f.get("severity", "info"), "Info"),
                "description": "\n".join(x for x in lines if x),
                "mitigation": d.remediation if d else "",
                "active": True,
                "verified": False,  # DefectDojo: set by a person who checked it
                "false_p": False,
                "static_finding": False,
                "dynamic_finding": True,
                "vuln_id_from_tool": fid,
                "unique_id_from_tool": f"{fid}@{endpoint}",
                "scanner_confidence": 1 if f.get("confidence", "confirmed") == "confirmed" else 4,
                "service": "dicom" if rec.get("dicom") else _protocol(rec),
                "endpoints": [
                    {"host": rec["host"], "port": int(rec["port"]), "protocol": _protocol(rec)}
                ],
            }
            if rec.get("product"):
                item["component_name"] = _clip(str(rec["product"]), 500)
                if rec.get("product_version"):
                    item["component_version"] = _clip(str(rec["product_version"]), 100)
            if date:
                item["date"] = date
            findings.append(item)
    doc = {
        "name": "dicomguard",
        "type": "dicomguard DICOM exposure scan",
        "version": __version__,
        "dynamic_tool": True,
        "static_tool": False,
        "findings": findings,
    }
    return json.dumps(doc, indent=2) + "\n"


def _clip(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters (``…`` last when cut): DefectDojo's Finding
    component_name/component_version are CharField(max_length=500/100) (dojo/finding/models.py)
    and a longer value, which a server chooses, fails the whole import on PostgreSQL."""
    return text if len(text) <= n else text[: n - 1] + "…"
