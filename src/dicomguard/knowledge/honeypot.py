"""Honeypot and clone awareness: which DICOM endpoints are probably decoys, and which are copies.

Internet surveys of DICOM count honeypots as exposed hospitals unless they look for them. What the
known DICOM honeypots answer (from their source):

* DICOMHawk (honeynet/DICOMHawk) is pynetdicom underneath. Its default identity is the version
  name ``ORTHANC`` with pynetdicom 2.0.1's class UID ``1.2.826.0.1.3680043.9.3811.2.0.1``
  (dicom_server/config.py; the AE title defaults to ORTHANC too) - a real Orthanc announces
  DCMTK's identity (``OFFIS_DCMTK_<ver>``), never "ORTHANC". Older releases announced DCMTK
  3.6.2's identity (core/dicom_application.py: ``OFFIS_DCMTK_362``) with pynetdicom's default
  maximum PDU of 16382, where DCMTK itself announces 16384 (ASC_DEFAULTMAXPDU). Optional
  personas (core/vendor_personas.py) borrow GE/Siemens/Philips identities; those pairs are in
  data/fingerprints.toml with ``honeypot = true``. It accepts any called AE title, refuses
  unknown abstract syntaxes (pynetdicom does) and answers C-FIND from TCIA images with
  Faker-made names.
* dicompot (nsmfoo/dicompot, go-netdicom): its A-ASSOCIATE-AC carries only the Maximum Length
  item (4 MiB, ``DefaultMaxPDUSize = 4 << 20``) and no Implementation Class UID, which PS3.7
  D.3.3.2 requires; it accepts *every* presentation context with the first proposed transfer
  syntax (contextmanager.go onAssociateRequest), any AE title (README: "ToDo: Enforce AET"),
  and serves the same image directory to everyone.

Per endpoint (:func:`endpoint_signals`, at scan time) each observation becomes a weighted signal;
after a scan, :func:`clusters` groups endpoints with the same fingerprint, services and exposure
figures (identical patient/study counts and date spans on different machines are canned data)
and :func:`classify` adds that signal and sorts every DICOM endpoint into confirmed / likely /
flagged. Nothing here sends a packet: the one active test (a made-up SOP class in the
assessment association, see sopclasses.CANARY) is part of the normal assessment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .fingerprint import Fingerprint

__all__ = [
    "SIGNALS",
    "SUSPECT_SCORE",
    "annotate",
    "classify",
    "clusters",
    "endpoint_signals",
    "verdict",
]

Record = dict[str, Any]

#: signal id -> (weight, what it means). Weights: 3 = alone enough to flag, 2 = strong hint,
#: 1 = weak hint (only together with others).
SIGNALS: dict[str, tuple[int, str]] = {
    "fingerprint": (3, "implementation identity of a known honeypot (fingerprints.toml)"),
    # weak alone: real archives do it when told to (Orthanc "UnknownSopClassAccepted": true,
    # DCMTK storescp --promiscuous: both accept the canary, measured in
    # scan/tests/test_real_servers_accepting_unknown_sop_classes.py); with go-netdicom's
    # missing Implementation Class UID (dicompot) or DICOMHawk's identity it still flags
    "accepts-unknown-sop-class": (
        1,
        "accepted a made-up SOP class (dicomguard's canary): most servers answer result 3;"
        " Orthanc with UnknownSopClassAccepted and storescp --promiscuous accept it too",
    ),
    "no-implementation-class-uid": (
        2,
        "A-ASSOCIATE-AC without an Implementation Class UID (PS3.7 requires one): go-netdicom"
        " based, as dicompot",
    ),
    "max-pdu-4mib": (1, "maximum PDU 4194304, go-netdicom's DefaultMaxPDUSize (dicompot)"),
    "orthanc-version-name": (
        2,
        "version name 'ORTHANC': DICOMHawk's default; a real Orthanc announces DCMTK's identity",
    ),
    "dcmtk-identity-pynetdicom-pdu": (
        2,
        "DCMTK's class UID with pynetdicom's default maximum PDU 16382 (DCMTK announces 16384):"
        " pynetdicom wearing DCMTK's identity, as older DICOMHawk releases",
    ),
    "answers-impossible-query": (
        3,
        "returned studies for an impossible date range (18000101-18000102): it answers any"
        " query with made-up or canned records, whatever library it announces",
    ),
    "studies-dated-scan-day": (
        3,
        "every study is dated the day of the scan: canned records stamped with today's date",
    ),
    "canned-data": (
        2,
        "identical fingerprint, services, patient/study counts and date span on other endpoints",
    ),
}

#: total weight from which an endpoint is flagged as a suspected honeypot
SUSPECT_SCORE = 3

DCMTK_UID_PREFIX = "1.2.276.0.7230010.3.0."
PYNETDICOM_DEFAULT_MAX_PDU = 16382
GO_NETDICOM_MAX_PDU = 4 << 20


def _signal(sid: str, detail: str | None = None) -> dict[str, Any]:
    weight, why = SIGNALS[sid]
    out: dict[str, Any] = {"id": sid, "weight": weight, "why": why}
    if detail:
        out["detail"] = detail
    return out


def _ac_seen(rec: Record) -> bool:
    """An A-ASSOCIATE-AC was recorded (identity checks only make sense then)."""
    return rec.get("max_pdu") is not None or rec.get("canary_result") is not None


def endpoint_signals(rec: Record, fp: Fingerprint | None = None) -> list[dict[str, Any]]:
    """Honeypot signals one endpoint's record shows on its own (no comparison with others)."""
    if not rec.get("dicom") or not _ac_seen(rec):
        return []
    out = []
    uid = rec.get("implementation_class_uid")
    name = (rec.get("implementation_version_name") or "").strip()
    max_pdu = rec.get("max_pdu")
    if fp is not None and fp.honeypot:
        out.append(_signal("fingerprint", fp.product))
    if rec.get("canary_result") == 0:
        out.append(_signal("accepts-unknown-sop-class"))
    if not uid:
        out.append(_signal("no-implementation-class-uid"))
        if max_pdu == GO_NETDICOM_MAX_PDU:
            out.append(_signal("max-pdu-4mib"))
    if name.upper() == "ORTHANC":
        out.append(_signal("orthanc-version-name"))
    if uid and uid.startswith(DCMTK_UID_PREFIX) and max_pdu == PYNETDICOM_DEFAULT_MAX_PDU:
        out.append(_signal("dcmtk-identity-pynetdicom-pdu", f"{uid} / {max_pdu}"))
    # behaviour, not identity: decoys built on stock libraries announce nothing unusual
    exp = rec.get("exposure") or {}
    if exp.get("answers_impossible_query"):
        out.append(_signal("answers-impossible-query"))
    if exp.get("studies_all_on_scan_day"):
        out.append(_signal("studies-dated-scan-day", f"{exp.get('studies')} studies"))
    return out


def verdict(signals: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``honeypot`` field: suspected or not, the signals, and how sure."""
    score = sum(int(s["weight"]) for s in signals)
    confidence = "high" if score >= 5 else "medium" if score >= SUSPECT_SCORE else "low"
    return {
        "suspected": score >= SUSPECT_SCORE,
        "score": score,
        "confidence": confidence if signals else "none",
        "signals": signals,
    }


# --- after a scan: clones and canned data -------------------------------------------------------


def _cluster_key(rec: Record) -> tuple[Any, ...]:
    exp = rec.get("exposure") or {}
    services = tuple(sorted(k for k, v in (rec.get("services") or {}).items() if v))
    return (
        rec.get("implementation_class_uid"),
        rec.get("implementation_version_name"),
        rec.get("max_pdu"),
        services,
        exp.get("patients"),
        exp.get("studies"),
        exp.get("earliest_study_date"),
        exp.get("latest_study_date"),
    )


def clusters(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Groups of two or more DICOM endpoints (on different hosts) that look identical.

    Identical = same implementation identity and maximum PDU, same services and the same
    exposure figures (patient and study counts, first and last study date). Empty servers of
    one product (a fleet of fresh installs) cluster too but are not *canned data*; only clusters
    that hold data identical down to the date span carry that signal.
    """
    groups: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    for rec in records:
        if rec.get("dicom") and rec.get("state", "open") == "open" and _ac_seen(rec):
            groups[_cluster_key(rec)].append(rec)
    out = []
    for key, members in groups.items():
        if len({m["host"] for m in members}) < 2:
            continue
        exp = members[0].get("exposure") or {}
        canned = bool((exp.get("patients") or 0) > 0 or (exp.get("studies") or 0) > 0)
        out.append(
            {
                "implementation_class_uid": key[0],
                "implementation_version_name": key[1],
                "max_pdu": key[2],
                "services": list(key[3]),
                "patients": key[4],
                "studies": key[5],
                "study_dates": [key[6], key[7]],
                "canned_data": canned,
                "size": len(members),
                "endpoints": sorted(f"{m['host']}:{m['port']}" for m in members),
            }
        )
    out.sort(key=lambda c: (-c["size"], c["endpoints"][0]))
    return out


CATEGORIES = ("confirmed", "likely", "flagged")


def classify(records: Iterable[Record]) -> dict[str, Any]:
    """Every open DICOM endpoint sorted into confirmed, likely or flagged, plus the clusters.

    * flagged: suspected honeypot (its own signals plus canned data shared with others);
    * confirmed: an association was accepted and nothing about it looks like a decoy;
    * likely: DICOM, not flagged, but either a weak signal was seen or no association was
      accepted (only a reject), so the decoy checks could not run.

    Returns ``{"endpoints": {"host:port": {"category", "honeypot"}}, "clusters": [...],
    "counts": {category: n}}``. Records are not modified.
    """
    recs = [r for r in records if r.get("dicom") and r.get("state", "open") == "open"]
    found = clusters(recs)
    canned = {ep for c in found if c["canned_data"] for ep in c["endpoints"]}
    size = {ep: c["size"] for c in found if c["canned_data"] for ep in c["endpoints"]}
    endpoints: dict[str, dict[str, Any]] = {}
    counts = dict.fromkeys(CATEGORIES, 0)
    for r in recs:
        ep = f"{r['host']}:{r['port']}"
        signals = [
            s for s in (r.get("honeypot") or {}).get("signals") or [] if s["id"] != "canned-data"
        ]
        if ep in canned:
            signals.append(_signal("canned-data", f"{size[ep]} endpoints alike"))
        hp = verdict(signals)
        if hp["suspected"]:
            category = "flagged"
        elif signals or not _ac_seen(r):
            category = "likely"
        else:
            category = "confirmed"
        counts[category] += 1
        endpoints[ep] = {"category": category, "honeypot": hp}
    return {"endpoints": endpoints, "clusters": found, "counts": counts}


def annotate(records: Iterable[Record]) -> list[Record]:
    """The records whose ``honeypot`` field the whole scan changes, updated in a copy.

    After a scan, the "identical data on several hosts" signal (:func:`clusters`) belongs in
    each member's own record, not only in the report: the store calls this when the scan ends
    and rewrites the records it returns. Idempotent (a second call changes nothing).
    """
    recs = list(records)
    verdicts = classify(recs)["endpoints"]
    changed = []
    for r in recs:
        v = verdicts.get(f"{r.get('host')}:{r.get('port')}")
        if v is None or v["honeypot"] == r.get("honeypot"):
            continue
        changed.append({**r, "honeypot": v["honeypot"]})
    return changed
