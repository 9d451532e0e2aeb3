"""Audit conformance (issue 11 item 9): every message the gateway can write validates against
the PS3.15 audit message schema (RELAX NG, lxml; copy in ``data/``), carries the participants
PS3.15 A.5.3 asks for, holds patient data only with ``audit.include_phi``, and repeated
refusals are aggregated so that their volume stays bounded."""

from __future__ import annotations

import base64
import time
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lxml import etree
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from dicomguard.gateway.audit import AuditTrail, PhiCapture, read_phi
from dicomguard.gateway.config import AuditConfig
from dicomguard.gateway.tls import TlsFailure

from .conftest import RecordingBackend
from .scu import associate, ct_instance, find_all, get, move

SCHEMA = Path(__file__).parent / "data" / "ps3.15-audit-message.rng"
CT = "1.2.840.10008.5.1.4.1.1.2"
FIND = "1.2.840.10008.5.1.4.1.2.1.1"
MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
GET = "1.2.840.10008.5.1.4.1.2.1.3"
ECHO = "1.2.840.10008.1.1"

pytestmark = pytest.mark.usefixtures("no_tracebacks")


@pytest.fixture(scope="module")
def schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA)))


def _messages(path: Path) -> list[etree._Element]:
    return [etree.fromstring(line.encode()) for line in path.read_text().splitlines()]


def _assert_valid(schema: etree.RelaxNG, messages: list[etree._Element]) -> None:
    assert messages
    for message in messages:
        assert schema.validate(message), (schema.error_log.last_error,
                                          etree.tostring(message)[:600])


def _event(message: etree._Element) -> tuple[str, str]:
    ev = message.find("EventIdentification")
    type_code = ev.find("EventTypeCode")
    return ev.find("EventID").get("csd-code"), (
        type_code.get("csd-code") if type_code is not None else "")


def _roles(message: etree._Element) -> list[tuple[str, str]]:
    """(UserIsRequestor, role code) of each active participant."""
    out = []
    for p in message.findall("ActiveParticipant"):
        role = p.find("RoleIDCode")
        out.append((p.get("UserIsRequestor"), role.get("csd-code") if role is not None else ""))
    return out


# -- every message type, written by the audit trail itself --------------------------------------


def _relay(admitted: bool = True, cache: bool = True) -> Any:
    """What the audit trail reads of a relay; with ``cache``, the per-association cache of
    rendered operation messages a real relay has (without: every message built in full)."""
    route = SimpleNamespace(backend_aet="LEGACYPACS", backend_host="127.0.21.1")
    auth = SimpleNamespace(user="alice", method="passcode", identity="viewer")
    relay = SimpleNamespace(
        peer_address="127.0.0.1", calling_aet="CT01", called_aet="PACS",
        listener=SimpleNamespace(address="127.0.20.1"),
        admission=SimpleNamespace(route=route, auth=auth) if admitted else None)
    if cache:
        relay.audit_cache = {}
    return relay


def _op(operation: str, sop_class: str, instance: str = "", destination: str | None = None,
        phi: PhiCapture | None = None) -> Any:
    return SimpleNamespace(operation=operation, sop_class=sop_class, sop_instance=instance,
                           destination=destination, phi=phi)


def _every_event(trail: AuditTrail) -> None:
    query = ct_instance()
    phi_store = read_phi("STORE", _encoded(query), "1.2.840.10008.1.2")
    phi_find = read_phi("FIND", _encoded(_query()), "1.2.840.10008.1.2")
    trail.application(started=True)
    relay = _relay()
    trail.association(relay, accepted=True, why="", check="")
    trail.association(_relay(False), accepted=False, why="calling AE 'X' unknown",
                      check="calling-aet")
    trail.association(_relay(False), accepted=False, why="bad passcode", check="identity")
    trail.operation(relay, _op("STORE", CT, "1.2.3.4", phi=phi_store), status=0)
    trail.operation(relay, _op("STORE", CT, "1.2.3.5", phi=phi_store), status=0xA700)
    trail.operation(relay, _op("FIND", FIND, phi=phi_find), status=0)
    trail.operation(relay, _op("MOVE", MOVE, destination="VIEWER1", phi=phi_find), status=0)
    trail.operation(relay, _op("GET", GET, phi=phi_find), status=0xA701)
    trail.operation(relay, _op("ECHO", ECHO), status=0)  # not audited
    trail.operation(relay, _op("FIND", FIND), status=0xA700, refused="FIND not allowed")
    trail.operation(relay, _op("ECHO", ECHO), status=0x0124, refused="ECHO not allowed")
    trail.operation(relay, _op("MOVE", MOVE, destination="EVIL"), status=0xA801,
                    refused="destination not allowed")
    trail.protocol_violation(relay, "up: command set above 16384 bytes")
    trail.tls_refused("127.0.0.9", TlsFailure("untrusted", "unable to get local issuer "
                                              "certificate", 20, "CN=x", "CN=rogue"))
    trail.tls_refused("127.0.0.9", TlsFailure("no-certificate", "peer did not return a "
                                              "certificate"))
    trail.setup_refused("127.0.0.8", "per-source-limit")
    trail.setup_refused("127.0.0.8", "evicted")
    trail.setup_refused("127.0.0.8", "evicted")  # aggregated
    trail.association_end(relay, "released")
    trail.association_end(relay, "aborted by client")
    trail.flush_repeats()
    trail.application(started=False)


def _encoded(ds: Any) -> bytes:
    from dicomguard.dul import dimse

    return dimse.encode_dataset(ds, "1.2.840.10008.1.2")


def _query() -> Any:
    from .scu import patient_query

    q = patient_query()
    q.PatientID = "DGSYN0007000000"
    return q


@pytest.mark.parametrize("include_phi", [False, True], ids=["no-phi", "phi"])
async def test_every_message_type_validates_against_the_schema(
    schema: etree.RelaxNG, tmp_path: Path, include_phi: bool
) -> None:
    path = tmp_path / "audit.xml"
    trail = AuditTrail(AuditConfig(file=path, include_phi=include_phi))
    await trail.start()
    _every_event(trail)
    await trail.stop()
    messages = _messages(path)
    _assert_valid(schema, messages)
    events = [_event(m) for m in messages]
    assert events[0] == ("110100", "110120") and events[-1] == ("110100", "110121")
    # application start/stop: the application (110150) and who launched it (110151)
    assert _roles(messages[0]) == [("false", "110150"), ("true", "110151")]
    # C-ECHO is not audited as a Query: 2 STOREs, 1 FIND, 1 MOVE, 1 GET
    assert events.count(("110104", "")) == 2
    assert events.count(("110112", "")) == 1
    assert events.count(("110102", "")) == 2
    assert events.count(("110113", "110132")) == 4  # 3 refused operations + 1 abort
    assert events.count(("110113", "110126")) == 6  # node refusal, 2 TLS, 3 setup (1 aggregate)
    assert len(messages) == 21
    text = path.read_text()
    phi_values = ["DGSYN0007000000", "DGFAKEK00000"]
    if not include_phi:
        assert not any(v in text for v in phi_values)
        assert "ParticipantObjectQuery" not in text
        return
    (store,) = [m for m in messages if _event(m) == ("110104", "")][:1]
    objects = {o.find("ParticipantObjectIDTypeCode").get("csd-code"): o
               for o in store.findall("ParticipantObjectIdentification")}
    assert objects["110180"].get("ParticipantObjectID") == str(ct_instance().StudyInstanceUID)
    assert objects["2"].get("ParticipantObjectID") == "DGSYN0007000000"
    assert objects["2"].findtext("ParticipantObjectName") == "DGFAKEK00000^ECHO"
    assert _roles(store) == [("true", "110153"), ("false", "110152")]
    (find,) = [m for m in messages if _event(m) == ("110112", "")]
    obj = find.find("ParticipantObjectIdentification")
    query = base64.b64decode(obj.findtext("ParticipantObjectQuery"))
    ds = read_dataset(BytesIO(query), True, True)
    assert ds.PatientID == "DGSYN0007000000"
    details = {d.get("type"): base64.b64decode(d.get("value")).decode()
               for d in obj.findall("ParticipantObjectDetail")}
    assert details["TransferSyntax"] == "1.2.840.10008.1.2"


async def test_operation_messages_from_the_association_cache_equal_those_built_in_full(
    tmp_path: Path,
) -> None:
    """The relay's audit records of operations come from fragments rendered once per
    association (gateway/audit.py, ``AuditTrail.operation``): byte for byte the messages the
    audit trail builds in full, but for the time stamp."""
    texts = []
    for cache in (True, False):
        path = tmp_path / f"audit-{cache}.xml"
        trail = AuditTrail(AuditConfig(file=path))
        await trail.start()
        relay = _relay(cache=cache)
        for _ in range(2):  # the second round comes from the cache
            trail.operation(relay, _op("STORE", CT, "1.2.3.4"), status=0)
            trail.operation(relay, _op("STORE", CT, "1.2.3.5"), status=0xA700)
            trail.operation(relay, _op("STORE", CT, "1.2.<3>&\"5"), status=0)
            trail.operation(relay, _op("STORE", CT, ""), status=None)
            trail.operation(relay, _op("FIND", FIND), status=0)
            trail.operation(relay, _op("MOVE", MOVE, destination="VIEWER1"), status=0xB000)
            trail.operation(relay, _op("GET", GET), status=0xA701)
            trail.operation(relay, _op("ECHO", ECHO), status=0)  # not audited
        await trail.stop()
        assert len(getattr(relay, "audit_cache", {})) == (6 if cache else 0)
        lines = path.read_text().splitlines()
        assert len(lines) == 14
        texts.append([line.split('EventDateTime="', 1)[0] + line.split('Z"', 1)[1]
                      for line in lines])
    assert texts[0] == texts[1]


# -- bounded volume ----------------------------------------------------------------------------


async def test_ten_thousand_refusals_from_one_source_cost_two_messages(tmp_path: Path) -> None:
    path = tmp_path / "audit.xml"
    trail = AuditTrail(AuditConfig(file=path, aggregate_window=3600))
    await trail.start()
    for _ in range(10_000):
        trail.association(_relay(False), accepted=False, why="calling AE 'NOBODY' unknown",
                          check="calling-aet")
    await trail.stop()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert "9999 more like this from 127.0.0.1" in lines[1]
    assert path.stat().st_size < 4096  # was 10.6 MB


async def test_refusals_from_many_sources_are_bounded_by_the_key_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicomguard.gateway import audit

    monkeypatch.setattr(audit, "MAX_AGGREGATE_KEYS", 50)
    path = tmp_path / "audit.xml"
    trail = AuditTrail(AuditConfig(file=path, aggregate_window=3600))
    await trail.start()
    for i in range(5_000):
        relay = _relay(False)
        relay.peer_address = f"10.{i // 250}.{i % 250}.1"
        trail.association(relay, accepted=False, why="source not allowed", check="source")
    await trail.stop()
    lines = path.read_text().splitlines()
    assert len(lines) == 50 + 1 + 1  # one per tracked source, the shared entry, its aggregate
    assert "4949 more like this from several sources" in lines[-1]


async def test_a_new_window_writes_the_aggregate_and_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "audit.xml"
    trail = AuditTrail(AuditConfig(file=path, aggregate_window=0.2))
    await trail.start()
    for _ in range(5):
        trail.tls_refused("127.0.0.9", TlsFailure("untrusted", "unknown ca"))
    time.sleep(0.25)
    trail.tls_refused("127.0.0.9", TlsFailure("untrusted", "unknown ca"))
    await trail.stop()
    lines = path.read_text().splitlines()
    assert len(lines) == 3  # first, "4 more", first of the new window
    assert "4 more like this" in lines[1]


# -- through the gateway, with real traffic ----------------------------------------------------


@pytest.mark.parametrize("include_phi", [False, True], ids=["no-phi", "phi"])
def test_audit_of_real_traffic_validates_and_holds_phi_only_when_asked(
    schema: etree.RelaxNG, raw_config: dict[str, Any], gateway_factory: Any,
    backend: RecordingBackend, tmp_path: Path, include_phi: bool,
) -> None:
    raw_config["audit"] = {"file": "audit.xml", "include_phi": include_phi}
    raw_config["client"].append({"calling_aet": "ADMIN", "sources": ["127.0.0.1/32"],
                                 "identity": "admin"})
    gw = gateway_factory(raw_config, tmp_path)
    assoc = associate(gw.address(), calling="ADMIN")
    assert assoc.send_c_echo().Status == 0
    assert assoc.send_c_store(ct_instance(3)).Status == 0
    found, status = find_all(assoc)
    assert status == 0 and found
    assert move(assoc, "VIEWER1") == 0xA801  # the backend does not know the destination
    get(assoc)
    assoc.release()
    modality = associate(gw.address(), calling="CT01")
    find_all(modality)  # refused: a modality may not query
    modality.release()
    refused = associate(gw.address(), calling="NOBODY")
    assert not refused.is_established
    gw.stop()
    path = tmp_path / "audit.xml"
    messages = _messages(path)
    _assert_valid(schema, messages)
    events = [_event(m) for m in messages]
    assert ("110104", "") in events and ("110112", "") in events
    assert ("110102", "") in events and ("110113", "110132") in events
    assert ("110113", "110126") in events
    text = path.read_text()
    if include_phi:
        assert "DGSYN0007000000" in text  # the stored instance's patient
    else:
        assert "DGSYN" not in text and "DGFAKE" not in text


def test_repeated_refusals_through_the_gateway_are_aggregated(
    raw_config: dict[str, Any], gateway_factory: Any, tmp_path: Path, schema: etree.RelaxNG
) -> None:
    import socket

    from dicomguard.dul.acse import AssociateRequest

    raw_config["audit"] = {"file": "audit.xml"}
    gw = gateway_factory(raw_config, tmp_path)
    rq = AssociateRequest(called_aet="PACS", calling_aet="NOBODY",
                          abstract_syntaxes=(ECHO,)).encode()
    for _ in range(200):
        with socket.create_connection(gw.address(), timeout=5) as s:
            s.sendall(rq)
            assert s.recv(10)[0] == 0x03  # A-ASSOCIATE-RJ
    assert gw.gateway.metrics.associations.value(result="rejected-calling-aet") == 200
    gw.stop()
    messages = _messages(tmp_path / "audit.xml")
    _assert_valid(schema, messages)
    alerts = [m for m in messages if _event(m) == ("110113", "110126")]
    assert len(alerts) == 2
    assert "199 more like this" in alerts[1].findtext("EventIdentification/"
                                                      "EventOutcomeDescription")
    assert gw.gateway.metrics.audit_suppressed.value() == 199


def test_audit_of_dcmtk_traffic_to_real_backends_validates_with_phi(
    schema: etree.RelaxNG, raw_config: dict[str, Any], gateway_factory: Any,
    storescp_server: Any, dcmqrscp_aetable: Any, tmp_path: Path,
) -> None:
    """storescu -> storescp and findscu -> dcmqrscp through the gateway, include_phi on: the
    study and patient the audit names are those dcmdump reads from the stored file, and the
    query the audit holds is findscu's."""
    import subprocess

    from pydicom import dcmwrite

    raw_config["audit"] = {"file": "audit.xml", "include_phi": True}
    raw_config["client"].append({"calling_aet": "ADMIN", "sources": ["127.0.0.1/32"],
                                 "identity": "admin"})
    raw_config["route"] = [
        {"called_aet": "STORE", "backend_host": storescp_server.host,
         "backend_port": storescp_server.port, "backend_aet": storescp_server.aet},
        {"called_aet": "QR", "backend_host": dcmqrscp_aetable.host,
         "backend_port": dcmqrscp_aetable.port, "backend_aet": dcmqrscp_aetable.aet,
         "calling_aet": "DGVIEWER"},
    ]
    for f in Path(storescp_server.output_dir).glob("*"):
        f.unlink()
    gw = gateway_factory(raw_config, tmp_path)
    host, port = gw.address()
    ds = ct_instance(77)
    dcmwrite(tmp_path / "ct.dcm", ds, enforce_file_format=True)

    def run(*argv: str) -> None:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    run("storescu", "-aet", "ADMIN", "-aec", "STORE", host, str(port), str(tmp_path / "ct.dcm"))
    run("findscu", "-P", "-aet", "ADMIN", "-aec", "QR", "-k", "QueryRetrieveLevel=PATIENT",
        "-k", "PatientID=DGSYN*", "-k", "PatientName", host, str(port))
    gw.stop()
    (stored,) = Path(storescp_server.output_dir).glob("*")
    dump = subprocess.run(["dcmdump", "+P", "StudyInstanceUID", "+P", "PatientID",
                           str(stored)], capture_output=True, text=True, check=True).stdout
    messages = _messages(tmp_path / "audit.xml")
    _assert_valid(schema, messages)
    (store,) = [m for m in messages if _event(m) == ("110104", "")]
    ids = {o.find("ParticipantObjectIDTypeCode").get("csd-code"): o.get("ParticipantObjectID")
           for o in store.findall("ParticipantObjectIdentification")}
    assert f"[{ids['110180']}]" in dump and f"[{ids['2']}]" in dump
    (find,) = [m for m in messages if _event(m) == ("110112", "")]
    obj = find.find("ParticipantObjectIdentification")
    details = {d.get("type"): base64.b64decode(d.get("value")).decode()
               for d in obj.findall("ParticipantObjectDetail")}
    syntax = UID(details["TransferSyntax"])  # what findscu and the gateway agreed
    query = read_dataset(BytesIO(base64.b64decode(obj.findtext("ParticipantObjectQuery"))),
                         syntax.is_implicit_VR, syntax.is_little_endian)
    assert query.PatientID == "DGSYN*" and query.QueryRetrieveLevel == "PATIENT"


def test_repeated_refused_operations_are_aggregated(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend, tmp_path: Path,
    schema: etree.RelaxNG,
) -> None:
    raw_config["audit"] = {"file": "audit.xml"}
    gw = gateway_factory(raw_config, tmp_path)
    assoc = associate(gw.address(), calling="CT01")
    for _ in range(30):
        _, status = find_all(assoc)  # a modality may not query
        assert status == 0xA700 or status > 0
    assoc.release()
    gw.stop()
    messages = _messages(tmp_path / "audit.xml")
    _assert_valid(schema, messages)
    refused = [m for m in messages if _event(m) == ("110113", "110132")]
    assert len(refused) == 2
    assert "29 more like this" in refused[1].findtext("EventIdentification/"
                                                      "EventOutcomeDescription")
    assert backend.record.requests == []
