"""``dicomguard diff``: appeared, disappeared and changed endpoints between two databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.knowledge.findings import finding
from dicomguard.scan.result import EndpointResult
from dicomguard.store import ScanStore


def _rec(seq: int, host: str, *, find: bool, tls: bool = False) -> dict:
    r = EndpointResult(host=host, port=104, dicom=True, tls=tls, product="DCMTK")
    r.product_version = "3.6.7"
    r.seq = seq
    r.services["verification"] = True
    r.services["find_study_root"] = find
    r.findings = [finding("DG-010")] + ([finding("DG-005")] if find else [])
    if not tls:
        r.findings.append(finding("DG-004"))
    r.exposure = {"patients": 10 if find else None, "studies": 20 if find else None}
    return r.to_dict()


def _db(path: Path, records: list[dict]) -> Path:
    store = ScanStore.create(path, argv=["scan"], options={}, targets_total=len(records))
    for rec in records:
        store.add(rec)
        store.mark_done(rec["seq"])
    store.finish({})
    store.close()
    return path


def test_diff_after_remediation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _db(
        tmp_path / "old.db",
        [
            _rec(0, "127.0.9.1", find=True),  # will be fixed: no FIND, TLS
            _rec(1, "127.0.9.2", find=True),  # unchanged
            _rec(2, "127.0.9.3", find=False),  # switched off
        ],
    )
    new = _db(
        tmp_path / "new.db",
        [
            _rec(0, "127.0.9.1", find=False, tls=True),
            _rec(1, "127.0.9.2", find=True),
            _rec(2, "127.0.9.4", find=True),  # a new server
        ],
    )
    assert main(["diff", str(old), str(new), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [e["endpoint"] for e in d["appeared"]] == ["127.0.9.4:104"]
    assert [e["endpoint"] for e in d["disappeared"]] == ["127.0.9.3:104"]
    assert d["unchanged"] == 1
    (changed,) = d["changed"]
    assert changed["endpoint"] == "127.0.9.1:104"
    assert changed["changes"]["tls"] == {"old": False, "new": True}
    assert changed["changes"]["patients"] == {"old": 10, "new": None}
    assert changed["findings_fixed"] == ["DG-004", "DG-005"]
    assert changed["findings_new"] == []

    assert main(["diff", str(old), str(new)]) == 0
    text = capsys.readouterr().out
    assert "1 appeared, 1 disappeared, 1 changed, 1 unchanged" in text
    assert "findings gone: DG-004 DG-005" in text


def test_diff_of_a_scan_with_itself_is_empty(scan_db: Path, capsys) -> None:
    assert main(["diff", str(scan_db), str(scan_db), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["appeared"] == d["disappeared"] == d["changed"] == []
    assert d["unchanged"] >= 5


def test_diff_rejects_what_is_not_a_scan(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("hello")
    assert main(["diff", str(junk), str(junk)]) == 2
    assert "not a dicomguard scan database" in capsys.readouterr().err
