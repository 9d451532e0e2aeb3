"""Aggregate statistics of one scan database: the numbers every report format shows.

All formats (HTML, CSV, SARIF, JSON) are computed from :func:`aggregate`, so the headline a CISO
reads in the HTML is exactly what ``--format json`` prints and what the database holds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from ..scan.findings import SEVERITIES, catalog, severity_rank
from ..scan.fingerprint import FingerprintDB, load_database
from ..scan.honeypot import classify
from ..store.read import StoredScan

Record = dict[str, Any]


def leaks(rec: Record) -> bool:
    """A DICOM endpoint that let a stranger list at least one patient, study or worklist item."""
    exp = rec.get("exposure") or {}
    return any((exp.get(k) or 0) > 0 for k in ("patients", "studies", "worklist_items"))


def counted_exposure(rec: Record) -> dict[str, Any]:
    """The exposure that adds to totals: empty for a port that fronts an archive already
    counted on another port of the same host (``same_archive_as``)."""
    exp = rec.get("exposure") or {}
    return {} if exp.get("same_archive_as") else exp


def worst(rec: Record) -> str | None:
    sev = [f["severity"] for f in rec.get("findings") or [] if f.get("severity") in SEVERITIES]
    return max(sev, key=severity_rank) if sev else None


def _year(date: str | None) -> int | None:
    if date and len(date) >= 4 and date[:4].isdigit():
        return int(date[:4])
    return None


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int):
        return dt.date(value, 1, 1)
    return None


def release_info(rec: Record, fingerprints: FingerprintDB, when: dt.date) -> dict[str, Any] | None:
    """Release date, age at scan time, end of life and known CVEs of the endpoint's software."""
    product, version = rec.get("product"), rec.get("product_version")
    info = fingerprints.product(product) if product else None
    rel = info.release(version) if info else None
    if rel is None:
        return None
    released = _as_date(rel.released)
    eol = _as_date(rel.end_of_life)
    newer = []
    for other in info.releases if info else ():
        other_date = _as_date(other.released)
        if other_date and released and other_date > released:
            newer.append(other.version)
    return {
        "released": released.isoformat() if released else None,
        "age_years": round((when - released).days / 365.25, 1) if released else None,
        "end_of_life": eol.isoformat() if eol else None,
        "past_end_of_life": bool(eol and eol <= when),
        "newer_releases": newer,
        "cves": list(rel.cves),
        "source": rel.source,
    }


def classification(dicom: list[Record]) -> dict[str, Any]:
    """Confirmed / likely / flagged (honeypot) endpoints, clusters, and the real-looking totals.

    A survey figure must not count decoys: ``real_looking`` (confirmed + likely) is the number
    to publish, with ``flagged`` beside it; see :func:`dicomguard.scan.honeypot.classify`.
    """
    out = classify(dicom)
    cats = out["endpoints"]
    real = [r for r in dicom if cats[f"{r['host']}:{r['port']}"]["category"] != "flagged"]
    real_leaking = [r for r in real if leaks(r)]
    flagged = [
        {
            "endpoint": ep,
            "score": v["honeypot"]["score"],
            "confidence": v["honeypot"]["confidence"],
            "signals": [s["id"] for s in v["honeypot"]["signals"]],
        }
        for ep, v in sorted(cats.items())
        if v["category"] == "flagged"
    ]
    return {
        **out["counts"],
        "real_looking": len(real),
        "real_looking_leaking": len(real_leaking),
        "real_looking_patients_exposed": sum(
            counted_exposure(r).get("patients") or 0 for r in real
        ),
        "flagged_endpoints": flagged,
        "clusters": out["clusters"],
        "category_of": {ep: v["category"] for ep, v in cats.items()},
    }


def aggregate(scan: StoredScan, fingerprints: FingerprintDB | None = None) -> dict[str, Any]:
    """Everything the reports show, as plain JSON-ready data."""
    fingerprints = fingerprints or load_database()
    meta = scan.meta
    when = dt.date.fromisoformat((meta.get("started_at") or dt.date.today().isoformat())[:10])
    records = [r for r in scan.records if r.get("state", "open") == "open"]
    dicom = [r for r in records if r.get("dicom")]
    leaking = [r for r in dicom if leaks(r)]

    patients = sum(counted_exposure(r).get("patients") or 0 for r in dicom)
    studies = sum(counted_exposure(r).get("studies") or 0 for r in dicom)
    lower_bound = any(not (r.get("exposure") or {}).get("complete", True) for r in leaking)
    years = [
        y
        for r in leaking
        for y in (
            _year((r.get("exposure") or {}).get("earliest_study_date")),
            _year((r.get("exposure") or {}).get("latest_study_date")),
        )
        if y is not None
    ]

    by_product: Counter[tuple[str, str]] = Counter()
    leaking_by_product: Counter[tuple[str, str]] = Counter()
    for r in dicom:
        key = (r.get("product") or "unidentified", r.get("product_version") or "")
        by_product[key] += 1
        leaking_by_product[key] += leaks(r)
    products = []
    for (name, version), n in sorted(by_product.items(), key=lambda kv: (-kv[1], kv[0])):
        rel = release_info({"product": name, "product_version": version}, fingerprints, when)
        products.append(
            {
                "product": name,
                "version": version or None,
                "endpoints": n,
                "leaking": leaking_by_product[(name, version)],
                "release": rel,
            }
        )

    worst_counts = Counter(worst(r) or "none" for r in dicom)
    finding_counts: Counter[str] = Counter()
    for r in dicom:
        for fid in {f["id"] for f in r.get("findings") or []}:
            finding_counts[fid] += 1
    cat = catalog()
    findings = [
        {
            "id": fid,
            "severity": cat[fid].severity if fid in cat else "info",
            "title": cat[fid].title if fid in cat else fid,
            "endpoints": n,
            "remediation": cat[fid].remediation if fid in cat else None,
        }
        for fid, n in finding_counts.items()
    ]
    findings.sort(key=lambda f: (-severity_rank(f["severity"]), -f["endpoints"], f["id"]))

    ports: dict[int, dict[str, int]] = {}
    for r in records:
        p = ports.setdefault(int(r["port"]), {"open": 0, "dicom": 0, "leaking": 0})
        p["open"] += 1
        p["dicom"] += bool(r.get("dicom"))
        p["leaking"] += leaks(r)

    # exposure over study years: how many leaking endpoints hold studies from each year (the
    # exposure record gives a date span, so an endpoint counts in every year of its span)
    year_endpoints: Counter[int] = Counter()
    for r in leaking:
        exp = r.get("exposure") or {}
        first = _year(exp.get("earliest_study_date"))
        last = _year(exp.get("latest_study_date"))
        if first is None or last is None:
            continue
        for y in range(first, last + 1):
            year_endpoints[y] += 1

    probed = scan.probed
    return {
        "scan": {
            "database": scan.path,
            "dicomguard_version": meta.get("version"),
            "argv": meta.get("argv"),
            "started_at": meta.get("started_at"),
            "finished_at": meta.get("finished_at"),
            "complete": meta.get("finished_at") is not None,
            "resumed": meta.get("resumed", 0),
            "targets_total": meta.get("targets_total"),
        },
        "headline": {
            "endpoints_probed": probed,
            "open": len(records),
            "dicom_services": len(dicom),
            "tls": sum(1 for r in dicom if r.get("tls")),
            # mutual TLS: DICOM is inferred (dicom_likelihood) but the endpoint is secured
            "tls_client_cert_required": sum(
                1
                for r in dicom
                if r.get("tls")
                and ((r.get("tls_details") or {}).get("client_cert") or {}).get("required")
            ),
            "dicom_inferred": sum(1 for r in dicom if r.get("dicom_likelihood")),
            "leaking": len(leaking),
            "leaking_share": round(len(leaking) / len(dicom), 4) if dicom else 0.0,
            "patients_exposed": patients,
            "studies_exposed": studies,
            "counts_are_lower_bounds": lower_bound,
            "study_years": [min(years), max(years)] if years else None,
        },
        "states": meta.get("states", {}),
        "by_product": products,
        "by_worst_severity": {s: worst_counts.get(s, 0) for s in (*reversed(SEVERITIES), "none")},
        "findings": findings,
        "by_port": {str(p): v for p, v in sorted(ports.items())},
        "by_study_year": {str(y): n for y, n in sorted(year_endpoints.items())},
        "classification": classification(dicom),
    }
