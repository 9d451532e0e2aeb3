"""Aggregate statistics of one scan database: the numbers every report format shows.

All formats (HTML, CSV, SARIF, JSON) are computed from :func:`analyse`, so the headline a CISO
reads in the HTML is exactly what ``--format json`` prints.

Headline figures are **per IP address** (a host), as published surveys count servers, and only
over real-looking hosts: a host with an endpoint flagged as a honeypot (high confidence) or a
likely honeypot (medium confidence, :func:`.verdict.honeypot_class`) is counted apart and adds
nothing to the totals. Per-port figures come second. A host's records exposed are the larger
of what its DICOM ports and its web APIs (Orthanc REST, QIDO-RS) gave, never their sum: an
Orthanc's REST API and its DICOM port front one archive; ports of one host that front one
archive are counted once (``exposure.same_archive_as``, scan.exposure.ArchiveCache).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..knowledge.findings import SEVERITIES, catalog, severity_rank
from ..knowledge.fingerprint import FingerprintDB, load_database
from ..knowledge.honeypot import classify
from ..store.read import StoredScan
from . import verdict as V

Record = dict[str, Any]

#: host classes in display order
HOST_CLASSES = (V.REAL, V.LIKELY_HONEYPOT, V.HONEYPOT)


def leaks(rec: Record) -> bool:
    """An endpoint that let a stranger list at least one patient, study or worklist item
    (over DICOM, or over an open Orthanc REST API / QIDO-RS on a web port)."""
    exp = rec.get("exposure")
    if exp and (
        (exp.get("studies") or 0) > 0
        or (exp.get("patients") or 0) > 0
        or (exp.get("worklist_items") or 0) > 0
    ):  # written out: this runs several times per endpoint of a 10^5-endpoint survey
        return True
    if not rec.get("web"):
        return False
    web = V.web_exposure(rec)
    return any((web.get(k) or 0) > 0 for k in ("patients", "studies"))


def counted_exposure(rec: Record) -> dict[str, Any]:
    """The exposure that adds to totals: empty for a port that fronts an archive already
    counted on another port of the same host (``same_archive_as``)."""
    exp = rec.get("exposure") or {}
    return {} if exp.get("same_archive_as") else exp


def worst(rec: Record) -> str | None:
    sev = [f["severity"] for f in rec.get("findings") or [] if f.get("severity") in SEVERITIES]
    return max(sev, key=severity_rank) if sev else None


def is_service(rec: Record) -> bool:
    """An open endpoint that speaks DICOM, is an identified DICOM web API, or is a TLS port
    that demands a client certificate (DICOM likely behind it, and secured: issue 10)."""
    return bool(rec.get("dicom")) or V.web_service(rec) or _mtls_port(rec)


def _mtls_port(rec: Record) -> bool:
    return not rec.get("web") and V.client_cert_required(rec)


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


@dataclass
class Exposure:
    """Summed patient/study counts; ``*_complete`` false when any part is a lower bound or
    unknown (a leaking endpoint that did not say)."""

    patients: int = 0
    studies: int = 0
    patients_complete: bool = True
    studies_complete: bool = True
    by_year: Counter[str] = field(default_factory=Counter)
    years: list[int] = field(default_factory=list)

    def add(self, exp: dict[str, Any]) -> None:
        if not exp:
            return
        complete = bool(exp.get("complete", True))
        has_data = any((exp.get(k) or 0) > 0 for k in ("patients", "studies", "worklist_items"))
        for key in ("patients", "studies"):
            v = exp.get(key)
            if v is None:
                if has_data:  # it leaks, but this count was refused or not asked
                    setattr(self, f"{key}_complete", False)
                continue
            setattr(self, key, getattr(self, key) + int(v))
            if not complete:
                setattr(self, f"{key}_complete", False)
        for y, n in (exp.get("studies_by_year") or {}).items():
            self.by_year[str(y)] += int(n)
        for d in (exp.get("earliest_study_date"), exp.get("latest_study_date")):
            y = _year(d)
            if y is not None:
                self.years.append(y)

    def merge(self, other: Exposure) -> None:
        self.patients += other.patients
        self.studies += other.studies
        self.patients_complete &= other.patients_complete
        self.studies_complete &= other.studies_complete
        self.by_year.update(other.by_year)
        self.years += other.years


@dataclass
class Host:
    """One IP address with at least one DICOM service or DICOM web API."""

    host: str
    cls: str = V.REAL
    dicom_ports: list[int] = field(default_factory=list)
    web_ports: list[int] = field(default_factory=list)
    leaking: bool = False
    tls_any: bool = False
    tls_all: bool = True
    mtls: bool = False  # some port requires a TLS client certificate
    validates_ae: bool | None = None
    exposure: Exposure = field(default_factory=Exposure)
    worst: str | None = None
    country: str | None = None
    asn: int | None = None
    as_org: str | None = None


@dataclass
class Analysis:
    """One pass over a scan: every record's class, the hosts, and the JSON-ready aggregate."""

    scan: StoredScan
    records: list[Record]  # open endpoints, target order
    services: list[Record]  # DICOM or identified web API
    entry: dict[str, dict[str, Any]]  # "host:port" -> classify() entry (DICOM only)
    cls: dict[str, str]  # "host:port" -> real | likely-honeypot | honeypot
    hosts: dict[str, Host]
    clusters: list[dict[str, Any]]
    data: dict[str, Any]

    def class_of(self, rec: Record) -> str:
        return self.cls.get(f"{rec['host']}:{rec['port']}", V.REAL)


def _host_of(hosts: dict[str, Host], rec: Record) -> Host:
    h = hosts.get(rec["host"])
    if h is None:
        h = hosts[rec["host"]] = Host(rec["host"])
    for key in ("country", "asn", "as_org"):  # geoip enrichment, when the scan has it
        if getattr(h, key) is None and rec.get(key) is not None:
            setattr(h, key, rec[key])
    return h


def _rank(cls: str) -> int:
    return HOST_CLASSES.index(cls)


def _hosts(services: list[Record], cls: dict[str, str]) -> dict[str, Host]:
    hosts: dict[str, Host] = {}
    dicom_exp: dict[str, Exposure] = {}
    web_exp: dict[str, Exposure] = {}
    for r in services:
        h = _host_of(hosts, r)
        c = cls.get(f"{r['host']}:{r['port']}", V.REAL)
        if _rank(c) > _rank(h.cls):
            h.cls = c
        h.mtls |= V.client_cert_required(r)
        if r.get("dicom") or _mtls_port(r):
            h.dicom_ports.append(int(r["port"]))
            dicom_exp.setdefault(r["host"], Exposure()).add(counted_exposure(r))
            v = V.validates_ae(r)
            if v is not None:
                h.validates_ae = v if h.validates_ae is None else (h.validates_ae and v)
        else:
            h.web_ports.append(int(r["port"]))
            web_exp.setdefault(r["host"], Exposure()).add(V.web_exposure(r))
        h.leaking |= leaks(r)
        tls = V.has_tls(r)
        h.tls_any |= tls
        h.tls_all &= tls
        w = worst(r)
        if w and (h.worst is None or severity_rank(w) > severity_rank(h.worst)):
            h.worst = w
    for name, h in hosts.items():
        d, w = dicom_exp.get(name, Exposure()), web_exp.get(name, Exposure())
        h.exposure = d if d.studies >= w.studies else w
    return hosts


def _share(n: int, of: int) -> dict[str, Any]:
    return {"n": n, "of": of, "share": round(n / of, 4) if of else None}


def _headline(probed: int, records: list[Record], hosts: dict[str, Host]) -> dict[str, Any]:
    real = [h for h in hosts.values() if h.cls == V.REAL]
    total = Exposure()
    for h in real:  # a server that capped at 0 adds nothing but makes the total a lower bound
        total.merge(h.exposure)
    known_ae = [h for h in real if h.validates_ae is not None]
    years = total.years
    return {
        "endpoints_probed": probed,
        "open": len(records),
        "servers": len(real),
        "leaking": _share(sum(h.leaking for h in real), len(real)),
        "tls": _share(sum(h.tls_any for h in real), len(real)),
        "tls_only": _share(sum(h.tls_all for h in real), len(real)),
        "client_cert_required": _share(sum(h.mtls for h in real), len(real)),
        "validating_ae": _share(sum(bool(h.validates_ae) for h in known_ae), len(known_ae)),
        "patients_exposed": total.patients,
        "patients_complete": total.patients_complete,
        "studies_exposed": total.studies,
        "studies_complete": total.studies_complete,
        "study_years": [min(years), max(years)] if years else None,
        "studies_by_year": {y: total.by_year[y] for y in sorted(total.by_year)},
        "honeypots": sum(h.cls == V.HONEYPOT for h in hosts.values()),
        "likely_honeypots": sum(h.cls == V.LIKELY_HONEYPOT for h in hosts.values()),
    }


def _per_port(records: list[Record], cls: dict[str, str]) -> dict[str, Any]:
    ports: dict[int, dict[str, int]] = {}
    for r in records:
        p = ports.setdefault(
            int(r["port"]),
            {"open": 0, "dicom": 0, "web": 0, "leaking": 0, "tls": 0, "honeypots": 0},
        )
        p["open"] += 1
        p["dicom"] += bool(r.get("dicom"))
        p["web"] += V.web_service(r)
        if cls.get(f"{r['host']}:{r['port']}", V.REAL) != V.REAL:
            p["honeypots"] += 1
            continue
        if is_service(r):
            p["leaking"] += leaks(r)
            p["tls"] += V.has_tls(r)
    return {str(p): v for p, v in sorted(ports.items())}


def _geo(hosts: dict[str, Host]) -> dict[str, Any] | None:
    real = [h for h in hosts.values() if h.cls == V.REAL]
    if not any(h.country or h.asn for h in real):
        return None
    countries: dict[str, dict[str, int]] = {}
    ases: dict[int | None, dict[str, Any]] = {}
    for h in real:
        c = countries.setdefault(h.country or "unknown", {"servers": 0, "leaking": 0})
        c["servers"] += 1
        c["leaking"] += h.leaking
        a = ases.setdefault(h.asn, {"asn": h.asn, "as_org": h.as_org, "servers": 0, "leaking": 0})
        a["servers"] += 1
        a["leaking"] += h.leaking
        a["as_org"] = a["as_org"] or h.as_org
    return {
        "by_country": dict(sorted(countries.items(), key=lambda kv: (-kv[1]["servers"], kv[0]))),
        "by_as": sorted(ases.values(), key=lambda a: (-a["servers"], a["asn"] or 0))[:50],
    }


def per_ip(records: list[Record], probed: int) -> dict[str, Any]:
    """The per-IP headline of a list of records (the terminal summary's), as in
    :func:`analyse`."""
    records = [r for r in records if r.get("state", "open") == "open"]
    entry = classify([r for r in records if r.get("dicom")])["endpoints"]
    cls = {ep: V.honeypot_class(e) for ep, e in entry.items()}
    hosts = _hosts([r for r in records if is_service(r)], cls)
    return _headline(probed, records, hosts)


def share_text(s: dict[str, Any]) -> str:
    """``42% (21 of 50)``; ``-`` when there is nothing to divide by."""
    if not s["of"]:
        return "-"
    return f"{s['share'] * 100:.0f}% ({s['n']:,} of {s['of']:,})"


def analyse(scan: StoredScan, fingerprints: FingerprintDB | None = None) -> Analysis:
    """Everything the reports show, computed once."""
    fingerprints = fingerprints or load_database()
    meta = scan.meta
    when = dt.date.fromisoformat((meta.get("started_at") or dt.date.today().isoformat())[:10])
    records = [r for r in scan.records if r.get("state", "open") == "open"]
    dicom = [r for r in records if r.get("dicom")]
    services = [r for r in records if is_service(r)]
    classified = classify(dicom)
    entry = classified["endpoints"]
    cls = {ep: V.honeypot_class(e) for ep, e in entry.items()}
    hosts = _hosts(services, cls)
    real_services = [r for r in services if cls.get(f"{r['host']}:{r['port']}", V.REAL) == V.REAL]
    real_records = [r for r in records if cls.get(f"{r['host']}:{r['port']}", V.REAL) == V.REAL]

    by_product: Counter[tuple[str, str]] = Counter()
    leaking_by_product: Counter[tuple[str, str]] = Counter()
    for r in real_services:
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

    worst_counts = Counter(worst(r) or "none" for r in real_services)
    finding_counts: Counter[str] = Counter()
    for r in real_records:
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

    counts = classified["counts"]
    flagged = [
        {
            "endpoint": ep,
            "class": cls[ep],
            "score": v["honeypot"]["score"],
            "confidence": v["honeypot"]["confidence"],
            "signals": [s["id"] for s in v["honeypot"]["signals"]],
        }
        for ep, v in sorted(entry.items())
        if v["category"] == "flagged"
    ]
    real_dicom = [r for r in dicom if cls.get(f"{r['host']}:{r['port']}", V.REAL) == V.REAL]
    data = {
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
        # per IP address, honeypots and likely honeypots excluded (counted in the last keys)
        "headline": _headline(scan.probed, records, hosts),
        # per port (endpoint), second: what the scanner saw on each host:port
        "endpoints": {
            "open": len(records),
            "dicom_services": len(dicom),
            "web_services": sum(V.web_service(r) for r in records),
            "real_looking_services": len(real_services),
            "leaking": sum(leaks(r) for r in real_services),
            "tls": sum(V.has_tls(r) for r in real_services),
            "honeypot_endpoints": sum(c == V.HONEYPOT for c in cls.values()),
            "likely_honeypot_endpoints": sum(c == V.LIKELY_HONEYPOT for c in cls.values()),
        },
        "states": meta.get("states", {}),
        "by_product": products,
        "by_worst_severity": {s: worst_counts.get(s, 0) for s in (*reversed(SEVERITIES), "none")},
        "findings": findings,
        "by_port": _per_port(records, cls),
        "geo": _geo(hosts),
        "classification": {
            **counts,
            "real_looking": len(real_dicom),
            "real_looking_leaking": sum(leaks(r) for r in real_dicom),
            "flagged_endpoints": flagged,
            "clusters": classified["clusters"],
        },
    }
    return Analysis(
        scan=scan,
        records=records,
        services=services,
        entry=entry,
        cls=cls,
        hosts=hosts,
        clusters=classified["clusters"],
        data=data,
    )


def aggregate(scan: StoredScan, fingerprints: FingerprintDB | None = None) -> dict[str, Any]:
    """Everything the reports show, as plain JSON-ready data (see :func:`analyse`)."""
    return analyse(scan, fingerprints).data
