"""CSV (one row per endpoint, for spreadsheets) and JSON (aggregate statistics) reports.

CSV columns are added at the end, never renamed or removed, so spreadsheets built on them keep
working. Verdict wordings (``called_aet`` ...) come from :mod:`.verdict`, the same functions the
HTML and the terminal use; ``honeypot_class`` is ``real``, ``likely-honeypot`` or ``honeypot``
(:func:`.verdict.honeypot_class`) and ``confidence_<verdict>`` says how each verdict was reached
(observed / inferred / unknown, knowledge.verdicts).
"""

from __future__ import annotations

import csv
import io
import json

from ..knowledge.fingerprint import load_database
from ..knowledge.verdicts import VERDICTS
from ..store.read import StoredScan
from . import verdict as V
from .stats import aggregate, analyse, leaks, release_info, worst

CSV_COLUMNS = (
    "host",
    "port",
    "state",
    "dicom",
    "tls",
    "product",
    "product_version",
    "released",
    "known_cves",
    "implementation_class_uid",
    "implementation_version_name",
    "called_aet_enforced",
    "called_aet_accepted",
    "calling_aet_enforced",
    "user_identity_required",
    "services",
    "leaking",
    "patients",
    "studies",
    "earliest_study_date",
    "latest_study_date",
    "exposure_complete",
    "worst_severity",
    "findings",
    "called_aet",
    "calling_aet",
    "user_identity",
    "transport",
    "web_api",
    "honeypot_class",
    "honeypot_score",
    "honeypot_signals",
    *(f"confidence_{v}" for v in VERDICTS),
    "inferred_findings",
    "country",
    "asn",
    "as_org",
    "measured_at",
    "scan_id",
)


#: a cell starting with one of these is run as a formula by Excel / LibreOffice / Sheets
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """``value`` safe for a spreadsheet: a string that would start a formula gets a leading
    single quote (OWASP "CSV Injection"); servers choose their version names, product strings
    and AE titles, so every string cell goes through here. Numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def render_csv(scan: StoredScan) -> str:
    """Every stored endpoint, flattened; lists joined with spaces so cells stay single values.

    RFC 4180 CRLF line ends, so a CR or LF inside a server's string is quoted with its cell
    (Python's csv quotes only the characters of its line terminator); strings that would start
    a spreadsheet formula are prefixed with ``'`` (:func:`_cell`)."""
    import datetime as dt

    fingerprints = load_database()
    a = analyse(scan, fingerprints)
    when = dt.date.fromisoformat((scan.meta.get("started_at") or "1970-01-01")[:10])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in scan.records:
        exp = r.get("exposure") or {}
        rel = release_info(r, fingerprints, when) or {}
        entry = a.entry.get(f"{r['host']}:{r['port']}") or {}
        hp = entry.get("honeypot") or {}
        conf = r.get("confidence") or {}
        dicom = bool(r.get("dicom"))
        row = [
            r["host"],
            r["port"],
            r.get("state", "open"),
            int(bool(r.get("dicom"))),
            int(bool(r.get("tls"))),
            r.get("product") or "",
            r.get("product_version") or "",
            rel.get("released") or "",
            " ".join(rel.get("cves") or []),
            r.get("implementation_class_uid") or "",
            r.get("implementation_version_name") or "",
            int(bool((r.get("called_aet") or {}).get("enforced"))),
            # the title that got in only where titles are checked; elsewhere "accepted" is
            # the scanner's own random probe title and means nothing (verdict.called_aet)
            (r.get("called_aet") or {}).get("accepted") or ""
            if (r.get("called_aet") or {}).get("enforced")
            else "",
            int(bool((r.get("calling_aet") or {}).get("enforced"))),
            int(bool((r.get("user_identity") or {}).get("required"))),
            " ".join(k for k, v in (r.get("services") or {}).items() if v),
            int(leaks(r)),
            "" if exp.get("patients") is None else exp["patients"],
            "" if exp.get("studies") is None else exp["studies"],
            exp.get("earliest_study_date") or "",
            exp.get("latest_study_date") or "",
            "" if not exp else int(bool(exp.get("complete", True))),
            worst(r) or "",
            " ".join(f["id"] for f in r.get("findings") or []),
            V.called_aet(r) if dicom else "",
            V.calling_aet(r) if dicom else "",
            V.user_identity(r) if dicom else "",
            V.transport(r) if dicom or r.get("web") else "",
            int(V.web_service(r)),
            a.class_of(r) if dicom else "",
            hp.get("score", "") if dicom else "",
            " ".join(s["id"] for s in hp.get("signals") or []),
            *(conf.get(v, "") for v in VERDICTS),
            " ".join(
                f["id"]
                for f in r.get("findings") or []
                if f.get("confidence", "confirmed") != "confirmed"
            ),
            r.get("country") or "",
            "" if r.get("asn") is None else r["asn"],
            r.get("as_org") or "",
            r.get("measured_at") or "",
            r.get("scan_id") or "",
        ]
        w.writerow([_cell(v) for v in row])
    return buf.getvalue()


def render_json(scan: StoredScan) -> str:
    return json.dumps(aggregate(scan), indent=2) + "\n"
