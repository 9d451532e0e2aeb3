"""End to end: scan the lab, write every output format, and find no synthetic identifier in any.

The lab's patients are named DGFAKE... with IDs DGSYN...; the scanner counts them but must never
store a name, ID or birth date unless asked to (``--collect-identifiers`` stores salted hashes).
Since issue 10 the exposure count *requests* PatientID (the unique key of the PATIENT level,
reduced to a keyed hash in memory at once), so the checks cover every file a scan can leave
behind: JSONL, the database, each report format, the ``--evidence`` PDU files, and what the
scan prints on stdout/stderr with debug logging on (``-v``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX
from dicomguard.lab.fleet import FleetThread
from dicomguard.testing.scans import run_cli, scan_argv

NETWORK = "127.42.220.0/28"


@pytest.mark.parametrize("collect", [False, True])
def test_no_name_id_or_birth_date_in_any_output_file(tmp_path: Path, collect: bool) -> None:
    # open: Q/R and worklist answers carry PatientID; capped: partitions by name initial;
    # worklist-packed: every C-FIND-RSP in one PDU; honeypot-answers-anything: made-up IDs
    personas = ["open", "capped", "worklist-packed", "honeypot-answers-anything", "echo-only"]
    with FleetThread(NETWORK, personas, max_patients=40) as lab:
        truth = lab.truth
        db, jsonl = tmp_path / "scan.db", tmp_path / "scan.jsonl"
        evidence = tmp_path / "evidence"
        extra = ["--collect-identifiers"] if collect else []
        printed = run_cli(
            "-v",
            *scan_argv(NETWORK, "11112", db, "--jsonl", str(jsonl), "--evidence", str(evidence)),
            *extra,
        )
        patients = [p for plan in lab.fleet.plan for p in plan.patients()]
    assert patients, truth
    outputs = {"jsonl": jsonl, "db": db}
    console = tmp_path / "console.txt"
    console.write_bytes(printed)
    outputs["console"] = console
    for path in sorted(evidence.glob("*.jsonl")):
        outputs[f"evidence {path.name}"] = path
    assert any(k.startswith("evidence") for k in outputs)
    for fmt, name in (
        ("html", "r.html"),
        ("csv", "r.csv"),
        ("sarif", "r.sarif"),
        ("json", "r.json"),
        ("defectdojo", "r.defectdojo.json"),
    ):
        run_cli("report", str(db), "--format", fmt, "-o", str(tmp_path / name))
        outputs[fmt] = tmp_path / name
    exposed = 0
    for fmt, path in outputs.items():
        data = path.read_bytes()
        assert NAME_PREFIX.encode() not in data, fmt
        assert ID_PREFIX.encode() not in data, fmt
        for p in patients:
            # a date as a value of its own: digits around it are another number (a timing's
            # fraction, a UID component) that happens to contain the eight digits
            leaked = re.search(rb"(?<![0-9])" + p.birth_date.encode() + rb"(?![0-9])", data)
            assert leaked is None or p.birth_date.encode() in _dates(truth), (
                fmt,
                "birth date",
                data[max(0, leaked.start() - 80) : leaked.end() + 80] if leaked else b"",
            )
        exposed += data.count(b'"studies"')
    assert exposed  # the scan did measure exposure, so the check above is not vacuous


def _dates(truth: dict) -> set[bytes]:
    """Study dates legitimately reported (a birth date may coincide with one)."""
    out: set[bytes] = set()
    for ep in truth["endpoints"].values():
        exp = ep.get("exposure") or {}
        for key in ("earliest_study_date", "latest_study_date"):
            if exp.get(key):
                out.add(exp[key].encode())
    return out
