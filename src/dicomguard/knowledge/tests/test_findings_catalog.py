"""Every finding ID the code can emit is in the catalog, with remediation people can act on."""

from __future__ import annotations

import re
from pathlib import Path

from dicomguard.knowledge.findings import SEVERITIES, catalog

PACKAGE = Path(__file__).resolve().parents[2]
FINDING_ID = re.compile(r"""["'](DG-\d{3})["']""")


def _ids_in_code() -> dict[str, list[str]]:
    """Finding IDs quoted in the package's code (tests excluded), with where they appear."""
    found: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "tests" in path.parts:
            continue
        for fid in FINDING_ID.findall(path.read_text(encoding="utf-8")):
            found.setdefault(fid, []).append(str(path.relative_to(PACKAGE)))
    return found


def test_every_id_in_code_is_in_the_catalog():
    used = _ids_in_code()
    assert len(used) >= 20  # the scan emits findings from several modules
    missing = {fid: where for fid, where in used.items() if fid not in catalog()}
    assert not missing, missing


def test_every_catalog_entry_is_complete():
    for fid, d in catalog().items():
        assert re.fullmatch(r"DG-\d{3}", fid)
        assert d.severity in SEVERITIES
        assert d.title and len(d.why) > 30, fid
        assert len(d.remediation) > 40, fid


def test_remediation_names_concrete_settings_for_server_side_findings():
    """Findings about a server's configuration say which setting of which product to change."""
    products = ("Orthanc", "DCMTK", "dcm4chee", "PS3.15", "BCP 195", "TLS")
    for fid in ("DG-001", "DG-005", "DG-020", "DG-026", "DG-030", "DG-032", "DG-040", "DG-041"):
        text = catalog()[fid].remediation
        assert any(p in text for p in products), fid
        assert '"' in text or "--" in text or "dcm" in text, fid  # a named option
