"""CSV (one row per endpoint, for spreadsheets) and JSON (aggregate statistics) reports."""

from __future__ import annotations

import csv
import io
import json

from ..scan.fingerprint import load_database
from ..store.read import StoredScan
from .stats import aggregate, leaks, release_info, worst

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
)


def render_csv(scan: StoredScan) -> str:
    """Every stored endpoint, flattened; lists joined with spaces so cells stay single values."""
    import datetime as dt

    fingerprints = load_database()
    when = dt.date.fromisoformat((scan.meta.get("started_at") or "1970-01-01")[:10])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in scan.records:
        exp = r.get("exposure") or {}
        rel = release_info(r, fingerprints, when) or {}
        w.writerow(
            [
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
                (r.get("called_aet") or {}).get("accepted") or "",
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
            ]
        )
    return buf.getvalue()


def render_json(scan: StoredScan) -> str:
    return json.dumps(aggregate(scan), indent=2) + "\n"
