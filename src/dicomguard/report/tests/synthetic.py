"""Synthetic scan databases for report tests and benchmarks: any size, fast, deterministic.

Records follow the scan output contract and come in the kinds real surveys find (open archives,
locked ones, guessable AE titles, TLS with and without client certificates, Orthanc REST ports,
DICOMHawk-like honeypots, echo-only servers). Addresses are in 127.0.0.0/8 and nothing is ever
contacted: these are rows in a file. 100,000 endpoints are written in a few seconds: rows go in
with ``executemany`` in one transaction instead of the scanner's commit-per-batch path.

``hostile=True`` puts markup in every string a scanned server controls (version names, AE titles,
HTTP banners, certificate fields, product names, error texts, geoip organisation) to test that
reports escape it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from dicomguard.knowledge.findings import finding
from dicomguard.store import ScanStore
from dicomguard.store.db import worst_severity

#: the script every hostile string carries: it sets a flag if it ever runs
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>\'"&amp;</script>'


def _services(**on: bool) -> dict[str, bool]:
    names = (
        "verification",
        "find_patient_root",
        "find_study_root",
        "move",
        "get",
        "worklist",
        "mpps",
        "storage_commitment",
        "storage",
    )
    return {n: bool(on.get(n)) for n in names}


def _base(host: str, port: int, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "host": host,
        "port": port,
        "state": "open",
        "dicom": True,
        "tls": False,
        "implementation_class_uid": "1.2.276.0.7230010.3.0.3.6.7",
        "implementation_version_name": "OFFIS_DCMTK_367",
        "max_pdu": 16384,
        "product": "DCMTK",
        "product_version": "3.6.7",
        "called_aet": {"enforced": False, "accepted": "DGA907CD8A57", "verified": True},
        "calling_aet": {"enforced": False, "verified": True},
        "user_identity": {"required": False, "accepted_with": None, "verified": True},
        "services": _services(verification=True),
        "exposure": None,
        "findings": [],
        "canary_result": 3,
        "honeypot": None,
    }


def _exposure(rng: random.Random, capped: bool) -> dict[str, Any]:
    first = rng.randint(1998, 2020)
    last = rng.randint(first, 2025)
    studies = rng.randint(1, 5000)
    by_year: dict[str, int] = {}
    left = studies
    for y in range(first, last + 1):
        n = left if y == last else rng.randint(0, left)
        by_year[str(y)] = n
        left -= n
    return {
        "patients": max(1, studies // rng.randint(1, 4)),
        "studies": studies,
        "studies_by_year": {k: v for k, v in by_year.items() if v},
        "earliest_study_date": f"{first}0{rng.randint(1, 9)}1{rng.randint(0, 9)}",
        "latest_study_date": f"{last}1{rng.randint(0, 2)}0{rng.randint(1, 9)}",
        "modalities": ["CT", "MR"],
        "complete": not capped,
    }


KINDS = (
    ("open", 30),
    ("capped", 8),
    ("echo-only", 20),
    ("guessed", 8),
    ("locked", 10),
    ("tls", 6),
    ("mtls", 3),
    ("orthanc-web", 6),
    ("honeypot", 3),
    ("likely-honeypot", 2),
    ("not-dicom", 4),
)


def record(i: int, rng: random.Random, hostile: bool = False, geo: bool = False) -> dict[str, Any]:
    """The ``i``-th synthetic record (kind chosen by weight)."""
    kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
    host = f"127.{100 + (i >> 16) % 100}.{(i >> 8) & 255}.{i & 255}"
    port = {"tls": 2762, "mtls": 2762, "orthanc-web": 8042}.get(kind, rng.choice((104, 11112)))
    r = _base(host, port, i)
    f: list[dict[str, Any]] = []
    if kind in ("open", "capped", "honeypot", "likely-honeypot"):
        r["services"] = _services(
            verification=True, find_patient_root=True, find_study_root=True, move=True, get=True
        )
        r["exposure"] = _exposure(rng, capped=kind == "capped")
        f += [finding("DG-001"), finding("DG-003"), finding("DG-005"), finding("DG-006")]
    if kind == "capped" and rng.random() < 0.3:  # capped at 0: a lower bound that says nothing
        r["exposure"].update(patients=0, studies=0, studies_by_year={}, complete=False)
    if kind == "echo-only":
        f += [finding("DG-001"), finding("DG-003")]
    if kind == "guessed":
        r["called_aet"] = {"enforced": True, "accepted": "ORTHANC", "verified": True}
        r["services"] = _services(verification=True, find_study_root=True)
        r["exposure"] = _exposure(rng, capped=False)
        f += [finding("DG-002", detail="accepted: ORTHANC"), finding("DG-003"), finding("DG-005")]
    if kind == "locked":
        r["called_aet"] = {"enforced": True, "accepted": None, "verified": True}
        r["calling_aet"] = {"enforced": False, "verified": False}
        r["user_identity"] = {"required": False, "accepted_with": None, "verified": False}
        r["services"] = _services()
        r["implementation_class_uid"] = r["implementation_version_name"] = None
        r["product"] = r["product_version"] = r["max_pdu"] = r["canary_result"] = None
        r["reject"] = {
            "result": 1,
            "source": 1,
            "reason": 7,
            "text": "called AE title not recognized",
        }
    if kind in ("tls", "mtls"):
        r["tls"] = True
        r["tls_details"] = {
            "versions": {"TLSv1.2": {"accepted": True}, "TLSv1.3": {"accepted": True}},
            "client_cert": {"requested": kind == "mtls", "required": kind == "mtls"},
            "certificate": {"subject": f"CN=pacs{i}.example", "issuer": "CN=Example CA"},
        }
        f.append(finding("DG-013"))
        if kind == "mtls":
            r["services"] = _services()
            r["called_aet"] = {"enforced": False, "accepted": None, "verified": False}
            r["calling_aet"] = {"enforced": False, "verified": False}
    if kind == "orthanc-web":
        r.update(dicom=False, implementation_class_uid=None, implementation_version_name=None)
        r.update(max_pdu=None, canary_result=None, product="Orthanc", product_version="1.10.1")
        studies = rng.randint(1, 900)
        r["web"] = {
            "scheme": "http",
            "server": "ORTHANC",
            "product": "Orthanc",
            "product_version": "1.10.1",
            "orthanc": {
                "auth_required": False,
                "version": "1.10.1",
                "name": "ORTHANC",
                "dicom_aet": "ORTHANC",
                "counts": {"patients": studies // 2 + 1, "studies": studies},
            },
            "qido": None,
        }
        f = [finding("DG-030", detail=f"{studies} studies"), finding("DG-034"), finding("DG-033")]
    if kind == "not-dicom":
        r.update(dicom=False, implementation_class_uid=None, implementation_version_name=None)
        r.update(product=None, product_version=None, max_pdu=None, canary_result=None)
        r["services"] = _services()
        r["error"] = "ReadTimeout: no A-ASSOCIATE-AC/RJ within 5 s"
        f = [finding("DG-014", detail=r["error"])]
    if kind == "honeypot":  # DICOMHawk's default identity, and it accepts the canary
        r.update(implementation_class_uid="1.2.826.0.1.3680043.9.3811.2.0.1")
        r.update(implementation_version_name="ORTHANC", max_pdu=16382, canary_result=0)
        r["product"], r["product_version"] = "pynetdicom", "2.0.1"
        r["honeypot"] = {
            "suspected": True,
            "score": 5,
            "confidence": "high",
            "signals": [
                {"id": "accepts-unknown-sop-class", "weight": 3, "why": "canary accepted"},
                {"id": "orthanc-version-name", "weight": 2, "why": "version name ORTHANC"},
            ],
        }
    if kind == "likely-honeypot":
        r.update(implementation_version_name="ORTHANC")
        r["honeypot"] = {
            "suspected": True,
            "score": 3,
            "confidence": "medium",
            "signals": [
                {"id": "orthanc-version-name", "weight": 2, "why": "version name ORTHANC"},
                {"id": "max-pdu-4mib", "weight": 1, "why": "4 MiB"},
            ],
        }
    if r["dicom"] and not r.get("tls"):
        f.append(finding("DG-004"))
    if r["dicom"] and r["services"]["verification"]:
        f.append(finding("DG-009"))
    if r.get("implementation_class_uid"):
        f.append(finding("DG-010", detail=f"{r['product']} {r['product_version']}"))
    r["findings"] = f
    if geo:
        cc = rng.choice(("US", "DE", "FR", "BR", "IN", "JP", "CN", None))
        r["country"] = cc
        r["asn"] = rng.choice((3320, 7922, 16509, 4134, None)) if cc else None
        r["as_org"] = {3320: "Deutsche Telekom AG", 7922: "Comcast", 16509: "Amazon"}.get(
            r["asn"] or 0, "Example Net" if r["asn"] else None
        )
    if hostile:
        _poison(r, i)
    return r


def _poison(r: dict[str, Any], i: int) -> None:
    """Markup in every field a stranger controls."""
    x = f"{XSS}{i}"
    r["implementation_version_name"] = f"V{x}"
    r["implementation_class_uid"] = f"1.2.3{x}"
    r["product"] = f"P{x}"
    r["product_version"] = f"9{x}"
    r["called_aet"] = {"enforced": True, "accepted": f"AE{x}", "verified": True}
    r["calling_aet"] = {"enforced": True, "accepted": f"CA{x}", "verified": True}
    r["user_identity"] = {"required": True, "accepted_with": f"u{x}", "verified": True}
    r["error"] = f"E{x}"
    r["reject"] = {"result": 1, "source": 1, "reason": 7, "text": f"R{x}"}
    r["web"] = {
        "scheme": "http",
        "server": f"S{x}",
        "product": f"W{x}",
        "product_version": f"7{x}",
        "orthanc": {"auth_required": False, "name": f"N{x}", "dicom_aet": f"D{x}", "counts": None},
        "qido": {"path": f"/q{x}", "auth_required": False, "studies": 3, "complete": True},
    }
    r["tls_details"] = {
        "versions": {"TLSv1.2": {"accepted": True}},
        "client_cert": {"requested": False, "required": False},
        "certificate": {"subject": f"CN=s{x}", "issuer": f"CN=i{x}", "not_after": f"T{x}"},
    }
    if r.get("exposure"):
        r["exposure"]["earliest_study_date"] = f"2001{x}"
        r["exposure"]["modalities"] = [f"M{x}"]
    r["as_org"] = f"AS{x}"
    r["country"] = f"C{x}"
    r["measured_at"] = f"2026{x}"
    r["scan_id"] = f"id{x}"
    for f in r["findings"]:
        f["detail"] = f"F{x}"


def write_db(path: Path, records: list[dict[str, Any]], *, argv: list[str] | None = None) -> Path:
    """A finished scan database holding ``records`` (one target index each)."""
    store = ScanStore.create(
        path, argv=argv or ["scan", "synthetic"], options={}, targets_total=len(records)
    )
    c = store.conn
    c.execute("BEGIN")
    c.executemany(
        "INSERT INTO endpoints (id, seq, host, port, state, dicom, tls, product,"
        " product_version, patients, studies, worst_severity, record)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            (
                n + 1,
                r["seq"],
                r["host"],
                r["port"],
                r["state"],
                int(bool(r["dicom"])),
                int(bool(r["tls"])),
                r.get("product"),
                r.get("product_version"),
                (r.get("exposure") or {}).get("patients"),
                (r.get("exposure") or {}).get("studies"),
                worst_severity(r["findings"]),
                json.dumps(r, separators=(",", ":")),
            )
            for n, r in enumerate(records)
        ),
    )
    c.executemany(
        "INSERT INTO findings (endpoint_id, finding, severity, title, confidence, detail)"
        " VALUES (?,?,?,?,?,?)",
        (
            (n + 1, f["id"], f["severity"], f["title"], f.get("confidence"), f.get("detail"))
            for n, r in enumerate(records)
            for f in r["findings"]
        ),
    )
    c.execute("INSERT INTO states (state, n) VALUES ('open', ?)", (len(records),))
    c.execute("UPDATE scan SET watermark = ? WHERE id = 1", (len(records),))
    c.execute("COMMIT")
    store.finish({})
    store.close()
    return path


def make_db(
    path: Path, n: int, *, seed: int = 15, hostile: bool = False, geo: bool = False
) -> Path:
    """A finished database of ``n`` synthetic endpoints."""
    rng = random.Random(seed)
    return write_db(path, [record(i, rng, hostile, geo) for i in range(n)])
