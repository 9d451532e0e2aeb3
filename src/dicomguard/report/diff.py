"""``dicomguard diff OLD.db NEW.db``: what appeared, disappeared or changed between two scans.

The question a hospital asks after remediation ("is the archive still answering strangers?"), so
the comparison is about verdicts, not timings: endpoints are matched by host:port, and a change
is reported field by field for the things a remediation alters (DICOM at all, TLS, identity,
AE-title checks, services, exposure counts, findings).
"""

from __future__ import annotations

from typing import Any

from ..store.read import StoredScan

Record = dict[str, Any]


def _key(rec: Record) -> str:
    return f"{rec['host']}:{rec['port']}"


def verdict(rec: Record) -> dict[str, Any]:
    """The comparable part of a record."""
    exp = rec.get("exposure") or {}
    return {
        "dicom": bool(rec.get("dicom")),
        "tls": bool(rec.get("tls")),
        "product": " ".join(x for x in (rec.get("product"), rec.get("product_version")) if x)
        or None,
        "called_aet_enforced": bool((rec.get("called_aet") or {}).get("enforced")),
        "calling_aet_enforced": bool((rec.get("calling_aet") or {}).get("enforced")),
        "user_identity_required": bool((rec.get("user_identity") or {}).get("required")),
        "services": sorted(k for k, v in (rec.get("services") or {}).items() if v),
        "patients": exp.get("patients"),
        "studies": exp.get("studies"),
        "findings": sorted({f["id"] for f in rec.get("findings") or []}),
    }


def _summary(rec: Record) -> dict[str, Any]:
    v = verdict(rec)
    return {"endpoint": _key(rec), **v}


def diff_scans(old: StoredScan, new: StoredScan) -> dict[str, Any]:
    """Appeared / disappeared / changed endpoints (open ones only) between two scans."""
    a = {_key(r): r for r in old.records if r.get("state", "open") == "open"}
    b = {_key(r): r for r in new.records if r.get("state", "open") == "open"}
    changed = []
    for k in sorted(a.keys() & b.keys(), key=_sort):
        va, vb = verdict(a[k]), verdict(b[k])
        fields = {f: {"old": va[f], "new": vb[f]} for f in va if va[f] != vb[f]}
        if fields:
            entry: dict[str, Any] = {"endpoint": k, "changes": fields}
            if "findings" in fields:
                entry["findings_fixed"] = sorted(set(va["findings"]) - set(vb["findings"]))
                entry["findings_new"] = sorted(set(vb["findings"]) - set(va["findings"]))
            changed.append(entry)
    return {
        "old": {"database": old.path, "started_at": old.meta.get("started_at")},
        "new": {"database": new.path, "started_at": new.meta.get("started_at")},
        "appeared": [_summary(b[k]) for k in sorted(b.keys() - a.keys(), key=_sort)],
        "disappeared": [_summary(a[k]) for k in sorted(a.keys() - b.keys(), key=_sort)],
        "changed": changed,
        "unchanged": len(a.keys() & b.keys()) - len(changed),
    }


def _sort(key: str) -> tuple[Any, ...]:
    host, _, port = key.rpartition(":")
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return (0, *map(int, parts), int(port))
    return (1, host, int(port))


def format_diff(d: dict[str, Any]) -> str:
    """Plain text for the terminal."""
    lines = [
        f"old: {d['old']['database']} ({d['old']['started_at']})",
        f"new: {d['new']['database']} ({d['new']['started_at']})",
        f"{len(d['appeared'])} appeared, {len(d['disappeared'])} disappeared, "
        f"{len(d['changed'])} changed, {d['unchanged']} unchanged",
    ]
    for title, items in (("appeared", d["appeared"]), ("disappeared", d["disappeared"])):
        if items:
            lines.append(f"\n{title}:")
            for e in items:
                what = "DICOM" if e["dicom"] else "open port, no DICOM"
                extra = f" {e['product']}" if e["product"] else ""
                findings = f" [{' '.join(e['findings'])}]" if e["findings"] else ""
                lines.append(f"  {e['endpoint']}  {what}{extra}{findings}")
    if d["changed"]:
        lines.append("\nchanged:")
        for e in d["changed"]:
            lines.append(f"  {e['endpoint']}")
            for field, ch in e["changes"].items():
                if field == "findings":
                    continue
                lines.append(f"    {field}: {_fmt(ch['old'])} -> {_fmt(ch['new'])}")
            if e.get("findings_fixed"):
                lines.append(f"    findings gone: {' '.join(e['findings_fixed'])}")
            if e.get("findings_new"):
                lines.append(f"    findings new:  {' '.join(e['findings_new'])}")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(v) or "-"
    return "-" if v is None else str(v)
