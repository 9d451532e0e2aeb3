"""What each report shows for one endpoint record: one function per displayed verdict.

The terminal summary, the HTML report, CSV, SARIF and DefectDojo output all word a verdict
through these functions, so a label can never differ between formats (issue 15: the HTML once
showed an endpoint that accepts *any* called AE title as "guessed <the scanner's random probe
title>" while the terminal said "any").

Records are the scan output contract (docs/scan-output.md). Fields that newer scanners add are
read defensively: a service value may be a boolean (presentation context accepted) or a state
string such as ``"refused"`` (negotiated, then the operation refused); ``tls_details`` may say a
client certificate is required.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

Record = dict[str, Any]

#: short names of the services, in display order (PS3.4 service classes)
SERVICE_LABELS: dict[str, str] = {
    "verification": "echo",
    "find_patient_root": "find-P",
    "find_study_root": "find-S",
    "move": "move",
    "get": "get",
    "worklist": "mwl",
    "mpps": "mpps",
    "storage_commitment": "commit",
    "storage": "store",
}

#: honeypot classes of a DICOM endpoint (see :func:`honeypot_class`)
HONEYPOT = "honeypot"
LIKELY_HONEYPOT = "likely-honeypot"
REAL = "real"


def endpoint(rec: Record) -> str:
    """``host:port`` (``[v6]:port`` for IPv6 addresses)."""
    host = str(rec["host"])
    return f"[{host}]:{rec['port']}" if ":" in host else f"{host}:{rec['port']}"


def called_aet(rec: Record) -> str:
    """Called-AE policy: ``any`` | ``guessed <TITLE>`` | ``enforced`` | ``unknown``.

    ``accepted`` holds whatever title got in; when the server does not enforce the called AE
    title that is the scanner's own random probe title and means nothing, so it is ``any``.
    """
    c = rec.get("called_aet") or {}
    if c.get("enforced"):
        return f"guessed {c['accepted']}" if c.get("accepted") else "enforced"
    if c.get("verified"):
        return "any"
    return "unknown"


def calling_aet(rec: Record) -> str:
    """Calling-AE policy: ``any`` | ``enforced`` | ``enforced, admitted <TITLE>`` |
    ``checked per operation`` | ``unknown``."""
    c = rec.get("calling_aet") or {}
    if c.get("enforced"):
        return f"enforced, admitted {c['accepted']}" if c.get("accepted") else "enforced"
    if c.get("per_operation"):
        # associations from any title, then a stranger's operations refused (Orthanc defaults)
        return "checked per operation"
    if c.get("verified"):
        return "any"
    return "unknown"


def user_identity(rec: Record) -> str:
    """``not required`` | ``required`` | ``any <kind> accepted`` | ``unknown``."""
    u = rec.get("user_identity") or {}
    if u.get("accepted_with"):
        return f"any {u['accepted_with']} accepted"
    if u.get("required"):
        return "required"
    return "not required" if u.get("verified") else "unknown"


def client_cert_required(rec: Record) -> bool:
    """TLS with a client certificate required (mutual TLS), as the TLS probe saw it."""
    return bool((((rec.get("tls_details") or {}).get("client_cert")) or {}).get("required"))


def transport(rec: Record) -> str:
    """``TLS, client certificate required`` | ``TLS`` | ``plain``."""
    web = rec.get("web") or {}
    tls = bool(rec.get("tls")) or web.get("scheme") == "https"
    if client_cert_required(rec):
        return "TLS, client certificate required"
    return "TLS" if tls else "plain"


def has_tls(rec: Record) -> bool:
    return transport(rec) != "plain"


def service_state(value: Any) -> str:
    """One service's state: ``open`` (offered to us), ``no``, or a scanner's own state word
    (e.g. ``refused``: negotiated, then the operation refused)."""
    if value is True:
        return "open"
    if not value:
        return "no"
    if isinstance(value, dict):
        return str(value.get("state") or "no")
    return str(value)


def services(rec: Record) -> list[tuple[str, str]]:
    """(short name, state) of every service not in state ``no``, in display order.

    ``services`` booleans mean open to a stranger; a service negotiated and then refused per
    operation (``operations[name].state == "refused"``, scan.operations) shows as ``refused``.
    """
    s = dict(rec.get("services") or {})
    for name, op in (rec.get("operations") or {}).items():
        if isinstance(op, dict) and op.get("state") == "refused" and not s.get(name):
            s[name] = "refused"
    out = [(SERVICE_LABELS.get(k, k), service_state(s.get(k))) for k in SERVICE_LABELS]
    out += [(k, service_state(v)) for k, v in s.items() if k not in SERVICE_LABELS]
    return [(name, st) for name, st in out if st != "no"]


def services_text(rec: Record) -> str:
    """``echo find-S move`` with non-open states in brackets: ``find-S(refused)``; ``-``."""
    s = dict(rec.get("services") or {})
    for name, op in (rec.get("operations") or {}).items():
        if isinstance(op, dict) and op.get("state") == "refused" and not s.get(name):
            s[name] = "refused"
    try:  # a survey has a handful of distinct service sets: word each once
        return _services_text(tuple(s.items()))
    except TypeError:  # an unhashable state (a dict)
        return _services_text_of({"services": s})


@lru_cache(maxsize=4096)
def _services_text(items: tuple[tuple[str, Any], ...]) -> str:
    return _services_text_of({"services": dict(items)})


def _services_text_of(rec: Record) -> str:
    parts = [name if st == "open" else f"{name}({st})" for name, st in services(rec)]
    return " ".join(parts) or "-"


def validates_ae(rec: Record) -> bool | None:
    """Does the endpoint refuse unknown AE titles (called or calling)? None when not observed."""
    called, calling = rec.get("called_aet") or {}, rec.get("calling_aet") or {}
    if called.get("enforced") or calling.get("enforced"):
        return True
    if called.get("verified") or calling.get("verified"):
        return False
    return None


def product(rec: Record) -> str:
    """Product and version as fingerprinted, else the announced version name, else ``?``."""
    name = " ".join(str(x) for x in (rec.get("product"), rec.get("product_version")) if x)
    return name or rec.get("implementation_version_name") or "?"


def count_text(value: int | None, complete: bool = True) -> str:
    """A patient/study count as shown: ``1,234``, ``≥1,234`` for a lower bound, ``unknown``
    for a lower bound of 0 (it says nothing) and ``-`` when not measured."""
    if value is None:
        return "-"
    if not complete:
        return f"≥{value:,}" if value > 0 else "unknown"
    return f"{value:,}"


def web_exposure(rec: Record) -> dict[str, Any]:
    """Patients/studies an open Orthanc REST API or QIDO-RS gave a stranger, in the shape of
    ``exposure`` (``{}`` when nothing was open)."""
    web = rec.get("web") or {}
    orthanc = web.get("orthanc") or {}
    qido = web.get("qido") or {}
    out: dict[str, Any] = {}
    counts = orthanc.get("counts") if not orthanc.get("auth_required") else None
    if counts:
        out = {
            "patients": counts.get("patients"),
            "studies": counts.get("studies"),
            "complete": True,
        }
    if qido and not qido.get("auth_required") and qido.get("studies") is not None:
        if not out or (qido.get("studies") or 0) > (out.get("studies") or 0):
            out = {
                "patients": out.get("patients"),
                "studies": qido.get("studies"),
                "complete": bool(qido.get("complete", True)),
            }
        out["earliest_study_date"] = qido.get("earliest_study_date")
        out["latest_study_date"] = qido.get("latest_study_date")
        out["studies_by_year"] = qido.get("studies_by_year") or {}
    return out


def web_service(rec: Record) -> bool:
    """An HTTP port identified as Orthanc's REST API or a QIDO-RS study search."""
    web = rec.get("web") or {}
    return bool(web.get("orthanc") or web.get("qido") or web.get("product"))


def honeypot_class(entry: dict[str, Any] | None) -> str:
    """``honeypot`` | ``likely-honeypot`` | ``real`` from a :func:`~dicomguard.knowledge.honeypot.
    classify` entry: flagged with high confidence (score >= 5) is a honeypot, flagged with
    medium confidence (score 3-4) a likely honeypot; weaker hints stay real-looking."""
    if not entry or entry.get("category") != "flagged":
        return REAL
    high = (entry.get("honeypot") or {}).get("confidence") == "high"
    return HONEYPOT if high else LIKELY_HONEYPOT
