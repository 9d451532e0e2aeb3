"""The findings catalog: stable IDs with severity, title, reason and remediation.

The catalog is data (``data/findings.toml``) so that remediation text can be corrected without
touching probe code, and every ID the probes emit is guaranteed to have remediation (a test
checks this).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class FindingDef:
    id: str
    severity: str
    title: str
    why: str
    remediation: str


@cache
def catalog() -> dict[str, FindingDef]:
    """Load and validate the catalog once."""
    text = resources.files("dicomguard").joinpath("data/findings.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    out: dict[str, FindingDef] = {}
    for fid, entry in raw.items():
        missing = {"severity", "title", "why", "remediation"} - set(entry)
        if missing:
            raise ValueError(f"findings catalog: {fid} lacks {sorted(missing)}")
        if entry["severity"] not in SEVERITIES:
            raise ValueError(f"findings catalog: {fid} has unknown severity {entry['severity']}")
        out[fid] = FindingDef(
            fid, entry["severity"], entry["title"], entry["why"], entry["remediation"]
        )
    return out


def finding(fid: str, *, confidence: str = "confirmed", detail: str | None = None) -> dict:
    """A finding record for the output: contract fields plus confidence and detail."""
    d = catalog()[fid]
    rec: dict = {"id": fid, "severity": d.severity, "title": d.title, "confidence": confidence}
    if detail:
        rec["detail"] = detail
    return rec


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)
