"""The scan record's JSON Schema: generated from the dataclasses, committed, and true of the
records real scans write (Orthanc, DCMTK dcmqrscp/storescp/wlmscpfs, pynetdicom, the lab)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dicomguard.dul.scu import Timeouts
from dicomguard.lab.fleet import Fleet
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.output import JsonlWriter
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.schema import record_schema, render
from dicomguard.scan.targets import build_targets
from dicomguard.scan.web import DEFAULT_WEB_PORTS, WebOptions
from dicomguard.testing.loopback import free_port
from dicomguard.testing.orthanc import OrthancServer
from dicomguard.testing.require import need_binaries

ROOT = Path(__file__).resolve().parents[4]
COMMITTED = ROOT / "docs" / "scan-record.schema.json"
CONTRACT = ROOT / "docs" / "scan-output.md"
TIMEOUTS = Timeouts(connect=1.0, associate=3.0, dimse=10.0, release=1.0)


def _validator() -> Draft202012Validator:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_committed_schema_is_the_generated_one():
    """Regenerate with ``python -m dicomguard.scan.schema docs/scan-record.schema.json``."""
    assert COMMITTED.read_text(encoding="utf-8") == render()


def test_every_field_of_every_part_is_described():
    schema = record_schema()
    for name, part in [("record", schema), *schema["$defs"].items()]:
        for field, prop in part["properties"].items():
            assert prop.get("description"), (name, field)


def test_contract_fields_are_required_with_their_types():
    """docs/scan-output.md's table: every field listed there is in every record."""
    schema = record_schema()
    listed = set()
    for line in CONTRACT.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            break  # the contract table ends where the extra fields begin
        if line.startswith("| ") and not line.startswith(("| field", "|---")):
            listed.update(re.findall(r"[a-z_]+", line.split("|")[1]))
    assert {"host", "port", "dicom", "called_aet", "exposure", "findings"} <= listed
    assert listed <= set(schema["required"])
    defs = schema["$defs"]
    assert {"enforced", "accepted"} <= set(defs["CalledAet"]["required"])
    assert {"enforced"} <= set(defs["CallingAet"]["required"])
    assert {"required", "accepted_with"} <= set(defs["UserIdentityVerdict"]["required"])
    assert {"id", "severity", "title"} <= set(defs["Finding"]["required"])
    exposure = set(defs["Exposure"]["required"])
    assert {"patients", "studies", "earliest_study_date", "latest_study_date",
            "complete"} <= exposure


def test_a_record_with_an_unknown_field_or_a_wrong_type_is_invalid():
    validator = _validator()
    good = json.loads(json.dumps(EndpointResult("127.0.0.1", 104).to_dict()))
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({**good, "surprise": 1}))
    assert list(validator.iter_errors({**good, "called_aet": {"enforced": "yes"}}))
    assert list(validator.iter_errors({**good, "port": "104"}))


async def _scan(tmp_path: Path, hosts: list[str], ports: tuple[int, ...], **probe: Any
                ) -> list[dict[str, Any]]:
    """One engine scan written as JSON Lines (closed ports included: --all); the lines read
    back."""
    out = tmp_path / f"scan-{len(list(tmp_path.iterdir()))}.jsonl"
    targets = build_targets(hosts, ports=ports)
    assert targets.all_loopback()
    opts = ProbeOptions(timeouts=TIMEOUTS, slow_greeting_timeout=0, **probe)
    with JsonlWriter(out) as writer:
        await Engine(ScanConfig(targets=targets, probe=opts, rate=0, scan_id="schema"),
                     writer.write, report_closed=True).run()
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _assert_valid(records: list[dict[str, Any]]) -> None:
    validator = _validator()
    assert records
    for rec in records:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(rec)]
        assert not errors, (rec["host"], rec["port"], errors[:5])


SERVERS = [
    "orthanc_open",
    "orthanc_locked",
    "orthanc_worklist",
    "dcmqrscp_aetable",
    "storescp_tls",
    "storescp_mutual_tls",
    "wlmscpfs_server",
    "pynetdicom_scp",
    "pynetdicom_qrscp",
]


@pytest.mark.parametrize("name", SERVERS)
def test_records_of_real_servers_are_valid(request, tmp_path, name):
    server = request.getfixturevalue(name)
    ports = [server.port, free_port(server.host)]  # the service, and a closed port
    web = WebOptions()
    http_port = getattr(server, "http_port", 0)
    if http_port:  # Orthanc: its REST API too (the web probe)
        ports.append(http_port)
        web = WebOptions(ports=(*DEFAULT_WEB_PORTS, http_port))
    # read-only: these servers are shared by the whole session and an --intrusive scan stores
    # its test object (other tests count the servers' studies); intrusive records are checked on
    # a private Orthanc below
    records = asyncio.run(_scan(tmp_path, [server.host], tuple(ports), web=web))
    states = {r["port"]: r["state"] for r in records}
    assert states[server.port] == "open" and states[ports[1]] == "closed", states
    served = next(r for r in records if r["port"] == server.port)
    assert served["dicom"] is True
    if http_port:
        assert next(r for r in records if r["port"] == http_port)["web"] is not None
    if name.startswith("storescp") and "tls" in name:
        assert served["tls_details"] is not None
    _assert_valid(records)


def test_intrusive_records_of_a_private_orthanc_are_valid(tmp_path):
    """--intrusive (C-STORE of the test object, retrieve checks) against an Orthanc of this test
    alone, so that the object it stores reaches no other test's counts."""
    need_binaries("Orthanc")
    with OrthancServer("127.0.78.1", preset="open") as server:
        records = asyncio.run(_scan(tmp_path, [server.host], (server.port,), intrusive=True))
    served = next(r for r in records if r["port"] == server.port)
    assert served["dicom"] is True
    _assert_valid(records)


def test_records_of_the_lab_are_valid(tmp_path):
    network = "127.42.213.0/27"

    async def go() -> list[dict[str, Any]]:
        async with Fleet(network, slow_delay=0.3, slow_greeting_delay=2.5, max_patients=60):
            return await _scan(tmp_path, [network], (11112, 2762), intrusive=True)

    records = asyncio.run(go())
    assert sum(r["dicom"] for r in records) >= 10
    _assert_valid(records)
