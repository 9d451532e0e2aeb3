"""Issue 11's bypass suite: every trick that got a request past the policy, against real
backends (a recording pynetdicom SCP, DCMTK dcmqrscp and storescp, Orthanc 1.10, pynetdicom's
qrscp app).

Each attack is sent by a hand-written client through the gateway with a restrictive policy
(identity ``modality``: ECHO and STORE only; ``viewer``: ECHO, FIND capped, MOVE to VIEWER1
only). What holds it: an A-ABORT to the client before any response (source 2, reason 6
"invalid PDU parameter value" for a refused command set), nothing recorded by the backend
that records, the refusal counted and audited, and no traceback in the gateway's log. The
control tests send the same bytes straight to DCMTK and Orthanc and show they act on them
(the first copy of a repeated element), so the refusal is what stands between the attack and
the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from dicomguard.dul import dimse, scu
from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.codes import is_pending
from dicomguard.dul.command import encode_command
from dicomguard.dul.errors import DulError, PeerAborted, PeerClosed
from dicomguard.testing import pdus
from dicomguard.testing.scripted import scripted_scp

from .conftest import RecordingBackend

ECHO = "1.2.840.10008.1.1"
FIND = "1.2.840.10008.5.1.4.1.2.1.1"
MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
CT = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT = "1.2.840.10008.1.2"
#: a SOP class no backend knows: proposed, always rejected
UNKNOWN = "1.2.826.0.1.3680043.9.7.11.99"
#: context IDs as AssociateRequest numbers them
CID = {ECHO: 1, FIND: 3, MOVE: 5, CT: 7, UNKNOWN: 9}

#: issue 11's command set: CommandField C-FIND-RQ (0x0020) and then C-ECHO-RQ (0x0030)
ISSUE_11 = pdus.C_FIND_RQ_COMMAND_FIELD_TWICE


# -- bytes ------------------------------------------------------------------------------------
_el, _us = pdus.element, pdus.us


def _uid(uid: str) -> bytes:
    raw = uid.encode()
    return raw + b"\x00" * (len(raw) % 2)


def _ae(title: str) -> bytes:
    raw = title.encode()
    return raw + b" " * (len(raw) % 2)


def _with_group_length(body: bytes, value: int | None = None) -> bytes:
    return _el(0x0000, struct.pack("<L", len(body) if value is None else value)) + body


def _pdata(cid: int, command: bytes, dataset: bytes | None = None) -> bytes:
    data = [] if dataset is None else [(cid, pdus.DATA_LAST, dataset)]
    return pdus.p_data_tf((cid, pdus.COMMAND_LAST, command), *data)


def _two_messages(*messages: tuple[int, bytes, bytes]) -> bytes:
    """One P-DATA-TF carrying whole messages (command set and data set each) back to back."""
    return pdus.p_data_tf(*[pdv for cid, c, d in messages
                            for pdv in ((cid, pdus.COMMAND_LAST, c), (cid, pdus.DATA_LAST, d))])


def _identifier(level: str = "PATIENT", patient_id: str = "*") -> bytes:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.PatientID = patient_id
    ds.PatientName = ""
    return dimse.encode_dataset(ds, IMPLICIT)


def _find_rq(msg_id: int, sop: str = FIND) -> bytes:
    return encode_command({"CommandField": 0x0020, "MessageID": msg_id,
                           "AffectedSOPClassUID": sop, "Priority": 0, "CommandDataSetType": 1})


def _echo_rq(msg_id: int = 1) -> bytes:
    return encode_command({"CommandField": 0x0030, "MessageID": msg_id,
                           "AffectedSOPClassUID": ECHO, "CommandDataSetType": 0x0101})


def _store_rq(msg_id: int, sop: str = CT) -> bytes:
    return encode_command({"CommandField": 0x0001, "MessageID": msg_id,
                           "AffectedSOPClassUID": sop, "Priority": 0, "CommandDataSetType": 1,
                           "AffectedSOPInstanceUID": "1.2.826.0.1.3680043.9.7.11.1"})


# -- backends ---------------------------------------------------------------------------------
@dataclass
class Backend:
    kind: str
    server: Any

    def route(self) -> dict[str, Any]:
        route = {"called_aet": "PACS", "backend_host": self.server.host,
                 "backend_port": self.server.port, "backend_aet": self.server.aet}
        if self.kind == "dcmqrscp":
            route["calling_aet"] = "DGVIEWER"  # the only peer its AE table knows
        return route

    def requests(self) -> list[tuple[str, str]] | None:
        """What reached the backend, where it records it (the pynetdicom SCP)."""
        if isinstance(self.server, RecordingBackend):
            return list(self.server.record.requests)
        return None


_FIXTURES = {"pynetdicom": "backend", "dcmqrscp": "dcmqrscp_aetable",
             "storescp": "storescp_server", "orthanc": "orthanc_open",
             "qrscp": "pynetdicom_qrscp"}


@pytest.fixture(params=list(_FIXTURES))
def real_backend(request: pytest.FixtureRequest) -> Backend:
    server = request.getfixturevalue(_FIXTURES[request.param])
    if isinstance(server, RecordingBackend):
        server.record.clear()
    return Backend(request.param, server)


@pytest.fixture
def gateway_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records
           if r.name.startswith(("dicomguard", "asyncio"))
           and (r.exc_info or r.levelno >= logging.ERROR)]
    assert not bad, [r.getMessage() for r in bad]


def _audited(path: Path, text: str) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the trail is written in batches
        if path.exists() and text in path.read_text():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def gw(raw_config: dict[str, Any], gateway_factory: Any, real_backend: Backend,
       tmp_path: Path) -> Any:
    raw_config["route"] = [real_backend.route()]
    raw_config["identity"]["viewer"]["find_max_results"] = 3
    raw_config["audit"] = {"file": str(tmp_path / "audit.log")}
    gateway = gateway_factory(raw_config)
    gateway.audit_path = tmp_path / "audit.log"
    return gateway


# -- client -----------------------------------------------------------------------------------
async def _open(address: tuple[str, int], calling: str, called: str = "PACS"
                ) -> scu.Association:
    rq = AssociateRequest(called_aet=called, calling_aet=calling,
                          abstract_syntaxes=(ECHO, FIND, MOVE, CT, UNKNOWN),
                          transfer_syntaxes=(IMPLICIT,))
    outcome = await scu.associate(address[0], address[1], rq)
    assert outcome.association is not None, outcome.reject
    return outcome.association


@dataclass
class Outcome:
    messages: list[dimse.DimseMessage]
    abort: tuple[int, int] | None  # (source, reason)

    def statuses(self) -> list[int | None]:
        return [m.status for m in self.messages]


async def _collect(assoc: scu.Association, *, until_final: int = 0,
                   timeout: float = 5.0) -> Outcome:
    """DIMSE messages until an A-ABORT or close, or until ``until_final`` final responses."""
    messages: list[dimse.DimseMessage] = []
    assembler = dimse.MessageAssembler()
    abort = None
    finals = 0
    try:
        while not until_final or finals < until_final:
            raw = await P.read_pdu(assoc.reader, timeout=timeout)
            P.raise_if_abort(raw)
            if raw.pdu_type != P.P_DATA_TF:
                continue
            for msg in assembler.feed(raw.data):
                messages.append(msg)
                if not is_pending(msg.status):
                    finals += 1
    except PeerAborted as exc:
        abort = (exc.source, exc.reason)
    except PeerClosed:
        pass
    return Outcome(messages, abort)


async def _attack(address: tuple[str, int], calling: str, *pdus: bytes,
                  until_final: int = 0, called: str = "PACS") -> Outcome:
    """Open an association, send ``pdus`` and collect what comes back (see :func:`_collect`);
    released when the answers were all there, closed in any case."""
    assoc = await _open(address, calling, called)
    try:
        for pdu in pdus:
            assoc.writer.write(pdu)
        outcome = await _collect(assoc, until_final=until_final)
        if until_final and outcome.abort is None:
            with contextlib.suppress(DulError):
                await assoc.release()
        return outcome
    finally:
        await assoc.close()


Attack = Callable[[], list[bytes]]

ATTACKS: dict[str, tuple[str, Attack]] = {
    # 1: the issue's hex command set, C-FIND hidden behind a second CommandField (C-ECHO)
    "duplicate-command-field-find-echo": ("CT01", lambda: [
        _pdata(CID[FIND], ISSUE_11, _identifier())]),
    # 1: C-MOVE hidden the same way
    "duplicate-command-field-move-echo": ("CT01", lambda: [_pdata(CID[MOVE], _with_group_length(
        _el(0x0002, _uid(MOVE)) + _el(0x0100, _us(0x0021)) + _el(0x0100, _us(0x0030))
        + _el(0x0110, _us(1)) + _el(0x0600, _ae("VIEWER1")) + _el(0x0700, _us(0))
        + _el(0x0800, _us(1))), _identifier())]),
    # 1: MoveDestination EVIL, then an allowed title
    "duplicate-move-destination": ("VIEWER1", lambda: [_pdata(CID[MOVE], _with_group_length(
        _el(0x0002, _uid(MOVE)) + _el(0x0100, _us(0x0021)) + _el(0x0110, _us(1))
        + _el(0x0600, _ae("EVIL")) + _el(0x0600, _ae("VIEWER1")) + _el(0x0700, _us(0))
        + _el(0x0800, _us(1))), _identifier())]),
    # 1: MessageID 7 then 8 (answers counted against a request that does not exist)
    "duplicate-message-id": ("VIEWER1", lambda: [_pdata(CID[FIND], _with_group_length(
        _el(0x0002, _uid(FIND)) + _el(0x0100, _us(0x0020)) + _el(0x0110, _us(7))
        + _el(0x0110, _us(8)) + _el(0x0700, _us(0)) + _el(0x0800, _us(1))), _identifier())]),
    # 1: elements out of ascending order (CommandField after MessageID)
    "out-of-order": ("CT01", lambda: [_pdata(CID[FIND], _with_group_length(
        _el(0x0002, _uid(FIND)) + _el(0x0110, _us(1)) + _el(0x0100, _us(0x0020))
        + _el(0x0700, _us(0)) + _el(0x0800, _us(1))), _identifier())]),
    # 1: a length that disagrees (MessageID of 4 bytes swallowing the next header)
    "lying-length": ("CT01", lambda: [_pdata(CID[ECHO], _with_group_length(
        _el(0x0002, _uid(ECHO)) + _el(0x0100, _us(0x0030))
        + struct.pack("<HHL", 0, 0x0110, 4) + _us(1) + _el(0x0800, _us(0x0101))))]),
    # 5: a refused request without MessageID (C-FIND for an ECHO/STORE identity)
    "no-message-id": ("CT01", lambda: [_pdata(CID[FIND], _with_group_length(
        _el(0x0002, _uid(FIND)) + _el(0x0100, _us(0x0020)) + _el(0x0700, _us(0))
        + _el(0x0800, _us(1))), _identifier())]),
    # 7: a C-STORE (allowed) on the C-FIND presentation context
    "store-on-find-context": ("CT01", lambda: [
        _pdata(CID[FIND], _store_rq(1), _identifier())]),
    # 7: a C-ECHO on a presentation context that was never proposed
    "echo-on-unproposed-context": ("CT01", lambda: [_pdata(99, _echo_rq(1))]),
    # 7: a C-STORE on the context the backend rejected (its own SOP class)
    "store-on-rejected-context": ("CT01", lambda: [
        _pdata(CID[UNKNOWN], _store_rq(1, UNKNOWN), _identifier())]),
    # 2: two C-FINDs with the same MessageID back to back, the first matching nothing; in
    # one PDU, so that the second always arrives while the first is outstanding
    "pipelined-finds-same-message-id": ("VIEWER1", lambda: [_two_messages(
        (CID[FIND], _find_rq(5), _identifier(patient_id="NOSUCHPATIENT")),
        (CID[FIND], _find_rq(5), _identifier()))]),
    # already held (test_hostile_command_sets.py), now against every backend: a command set
    # above 16 KiB, one in more PDVs than allowed, bytes that are no command set at all, a
    # data set before any command, and a command smuggled inside a data set
    "oversized-command-set": ("CT01", lambda: [_fragments(b"\x00" * (20 << 10), 3)]),
    "too-many-fragments": ("CT01", lambda: [_fragments(_echo_rq(1), 6)]),
    "undecodable-command-set": ("CT01", lambda: [_pdata(CID[ECHO], b"\xff" * 40)]),
    "data-before-command": ("CT01", lambda: [struct.pack(">BBL", 4, 0, 6 + 20) + struct.pack(
        ">LBB", 22, CID[FIND], 0x02) + _identifier()[:20]]),
    "command-inside-data-set": ("VIEWER1", lambda: [_smuggle()]),
}


def _fragments(command: bytes, n: int) -> bytes:
    """``command`` in ``n`` command PDVs of one P-DATA-TF, the last one flagged last."""
    size = -(-len(command) // n)
    pieces = [command[i : i + size] for i in range(0, len(command), size)]
    last = len(pieces) - 1
    return pdus.p_data_tf(*[(CID[ECHO], pdus.COMMAND_LAST if i == last else pdus.COMMAND_MORE, p)
                            for i, p in enumerate(pieces)])


def _smuggle() -> bytes:
    allowed = _find_rq(1)
    hidden = encode_command({"CommandField": 0x0021, "MessageID": 2,
                             "AffectedSOPClassUID": MOVE, "Priority": 0,
                             "MoveDestination": "HARVESTER", "CommandDataSetType": 1})
    return pdus.p_data_tf((CID[FIND], pdus.COMMAND_LAST, allowed),
                          (CID[FIND], pdus.DATA_MORE, _identifier()[:4]),
                          (CID[FIND], pdus.COMMAND_LAST, hidden))


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attack_is_aborted_before_the_backend_acts(
    attack: str, gw: Any, real_backend: Backend, gateway_log: pytest.LogCaptureFixture
) -> None:
    calling, build = ATTACKS[attack]
    outcome = await _attack(gw.address(), calling, *build())
    assert outcome.messages == [], outcome.statuses()
    assert outcome.abort is not None and outcome.abort[0] == 2, outcome
    if attack not in ("data-before-command", "command-inside-data-set"):
        assert outcome.abort == (2, 6)
        assert gw.gateway.metrics.aborts.value(reason="command-set") == 1
    # (both C-FINDs of the pipelined attack came in one PDU: neither reached the backend)
    assert real_backend.requests() in (None, [])
    assert _audited(gw.audit_path, "association aborted")
    _no_traceback(gateway_log)


async def test_protocol_version_2_is_rejected_before_the_backend(
    gw: Any, real_backend: Backend, gateway_log: pytest.LogCaptureFixture
) -> None:
    """Item 6: A-ASSOCIATE-RJ (1, 2, 2) "protocol-version not supported" (PS3.8 9.3.4)."""
    host, port = gw.address()
    rq = bytearray(AssociateRequest(called_aet="PACS", calling_aet="CT01",
                                    abstract_syntaxes=(ECHO,)).encode())
    rq[6:8] = (2).to_bytes(2, "big")
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(bytes(rq))
    raw = await P.read_pdu(reader, timeout=5)
    writer.close()
    assert raw.pdu_type == P.A_ASSOCIATE_RJ
    assert tuple(raw.data[7:10]) == (1, 2, 2)
    assert gw.gateway.metrics.associations.value(result="rejected-protocol-version") == 1
    if isinstance(real_backend.server, RecordingBackend):
        assert real_backend.server.record.associations == []
    _no_traceback(gateway_log)


async def test_unsolicited_response_is_dropped_and_audited(
    gw: Any, real_backend: Backend, gateway_log: pytest.LogCaptureFixture
) -> None:
    """Item 2: a response to a MessageID nobody sent is dropped (and audited); the association
    goes on."""
    rsp = encode_command({"CommandField": 0x8001, "MessageIDBeingRespondedTo": 42,
                          "AffectedSOPClassUID": CT, "Status": 0, "CommandDataSetType": 0x0101,
                          "AffectedSOPInstanceUID": "1.2.3"})
    outcome = await _attack(gw.address(), "CT01", _pdata(CID[CT], rsp), _pdata(CID[ECHO],
                            _echo_rq(2)), until_final=1)
    assert outcome.statuses() == [0] and outcome.abort is None
    assert gw.gateway.metrics.operations.value(operation="response", result="dropped") == 1
    assert _audited(gw.audit_path, "which the backend has not sent")
    _no_traceback(gateway_log)


async def test_find_cap_counts_by_the_request_answered(
    gw: Any, real_backend: Backend, gateway_log: pytest.LogCaptureFixture
) -> None:
    """Item 2: two C-FINDs outstanding at once (different MessageIDs, sent back to back): each
    is capped at 3 matches by its own count, whatever order the answers come in. Only the
    pynetdicom SCPs queue a second request while they answer the first; dcmqrscp and Orthanc
    negotiate no asynchronous operations window and drop it (the client then waits)."""
    if real_backend.kind not in ("pynetdicom", "qrscp"):
        pytest.skip(f"{real_backend.kind} performs one operation at a time")
    outcome = await _attack(gw.address(), "VIEWER1",
                            _pdata(CID[FIND], _find_rq(5), _identifier()),
                            _pdata(CID[FIND], _find_rq(6), _identifier()), until_final=2)
    assert outcome.abort is None
    by_request: dict[int, list[int | None]] = {5: [], 6: []}
    for msg in outcome.messages:
        by_request[int(msg.command.MessageIDBeingRespondedTo)].append(msg.status)
    for statuses in by_request.values():
        pending = [s for s in statuses if is_pending(s)]
        assert len(pending) <= 3 and not is_pending(statuses[-1]), by_request
    _no_traceback(gateway_log)


@pytest.mark.parametrize("kind", ["qrscp", "pynetdicom-find"])
async def test_pipelined_finds_in_two_pdus_never_pass_the_cap(
    kind: str, raw_config: dict[str, Any], gateway_factory: Any, request: pytest.FixtureRequest,
    gateway_log: pytest.LogCaptureFixture
) -> None:
    """Item 2 as reported: two C-FIND-RQs in two PDUs back to back with one MessageID, the
    first matching nothing, the second every patient, to pynetdicom SCPs that match for real
    (the report saw 8 matches through a cap of 3). Whether the second arrives while the first
    is outstanding (A-ABORT) or after its final response (a new request, counted), no more
    than the cap ever reaches the client."""
    fixture = "pynetdicom_qrscp" if kind == "qrscp" else "pynetdicom_scp"
    server = request.getfixturevalue(fixture)
    raw_config["route"] = [Backend(kind, server).route()]
    raw_config["identity"]["viewer"]["find_max_results"] = 3
    gw = gateway_factory(raw_config)
    assoc = await _open(gw.address(), "VIEWER1")
    try:
        assoc.writer.write(_pdata(CID[FIND], _find_rq(5),
                                  _identifier(patient_id="NOSUCHPATIENT")))
        assoc.writer.write(_pdata(CID[FIND], _find_rq(5), _identifier()))
        outcome = await _collect(assoc, until_final=2)
    finally:
        await assoc.close()
    pending = [s for s in outcome.statuses() if is_pending(s)]
    assert len(pending) <= 3, outcome.statuses()
    if outcome.abort is not None:
        assert outcome.abort == (2, 6)
    else:  # both answered: the broad one was capped
        assert outcome.statuses()[-1] == 0xA700, outcome.statuses()
    _no_traceback(gateway_log)


@pytest.mark.parametrize("group_length", ["wrong", "missing"])
async def test_wrong_or_missing_command_group_length_is_tolerated(
    group_length: str, gw: Any, real_backend: Backend, gateway_log: pytest.LogCaptureFixture
) -> None:
    """A quirk nobody acts on: every backend answers a C-ECHO whose CommandGroupLength lies
    or is missing (DCMTK, pynetdicom and Orthanc read the elements to the end either way)."""
    body = (_el(0x0002, _uid(ECHO)) + _el(0x0100, _us(0x0030)) + _el(0x0110, _us(3))
            + _el(0x0800, _us(0x0101)))
    command = _with_group_length(body, 1000) if group_length == "wrong" else body
    outcome = await _attack(gw.address(), "CT01", _pdata(CID[ECHO], command), until_final=1)
    assert outcome.statuses() == [0] and outcome.abort is None
    _no_traceback(gateway_log)


# -- control: straight to the backend, who reads which copy -----------------------------------
@pytest.mark.parametrize(("kind", "acts_on"), [("dcmqrscp", dimse.C_FIND_RSP),
                                               ("orthanc", dimse.C_FIND_RSP),
                                               ("qrscp", dimse.C_ECHO_RSP)])
async def test_control_backends_disagree_on_the_duplicate(
    kind: str, acts_on: int, request: pytest.FixtureRequest
) -> None:
    """Without the gateway, DCMTK-based backends run the C-FIND of issue 11's command set
    (CommandField 0x0020 first, 0x0030 second) and pynetdicom's qrscp (pydicom keeps the last
    copy) answers a C-ECHO: the two readings the gateway must never choose between. It
    refuses the command set instead (above)."""
    server = request.getfixturevalue(_FIXTURES[kind])
    calling = "DGVIEWER" if kind == "dcmqrscp" else "CT01"
    if acts_on == dimse.C_FIND_RSP:
        pdu = _pdata(CID[FIND], ISSUE_11, _identifier())
    else:
        # the same pair of CommandFields on the Verification context, no data set
        # (pynetdicom aborts a C-ECHO with one, or one on the C-FIND context)
        pdu = _pdata(CID[ECHO], _with_group_length(
            _el(0x0002, _uid(ECHO)) + _el(0x0100, _us(0x0020)) + _el(0x0100, _us(0x0030))
            + _el(0x0110, _us(1)) + _el(0x0800, _us(0x0101))))
    outcome = await _attack((server.host, server.port), calling, pdu, until_final=1,
                            called=server.aet)
    assert outcome.messages, outcome
    assert outcome.messages[-1].command_field == acts_on
    if acts_on == dimse.C_FIND_RSP:
        assert any(is_pending(s) for s in outcome.statuses())


# -- a backend that answers what nobody asked ---------------------------------------------------
def _lies(msg: dimse.DimseMessage) -> Iterator[bytes]:
    """Answers each C-ECHO-RQ with a pending C-FIND-RSP for MessageID 99 (outstanding
    nowhere), a C-FIND-RSP naming the echo's own MessageID (the wrong command), and only then
    the C-ECHO-RSP."""
    echo_id = int(msg.command.MessageID)
    for answered, field_, status in ((99, 0x8020, 0xFF00), (echo_id, 0x8020, 0),
                                     (echo_id, 0x8030, 0)):
        command = encode_command({
            "CommandField": field_, "MessageIDBeingRespondedTo": answered,
            "AffectedSOPClassUID": ECHO if field_ == 0x8030 else FIND,
            "CommandDataSetType": 0x0101, "Status": status})
        yield _pdata(msg.context_id, command)


#: Accepts (through the lab acceptor's own negotiation), then lies (:func:`_lies`).
_lying_backend = scripted_scp((ECHO, FIND, MOVE, CT), _lies)


async def test_backend_responses_to_nothing_outstanding_are_dropped(
    raw_config: dict[str, Any], gateway_factory: Any, tmp_path: Path,
    gateway_log: pytest.LogCaptureFixture
) -> None:
    """Item 2, backend side: responses naming a MessageID that is not outstanding, or the
    wrong command for it, never reach the client (and are audited)."""
    server = await asyncio.start_server(_lying_backend, "127.0.21.9", 0)
    port = server.sockets[0].getsockname()[1]
    raw_config["route"] = [{"called_aet": "PACS", "backend_host": "127.0.21.9",
                            "backend_port": port, "backend_aet": "LIAR"}]
    raw_config["audit"] = {"file": str(tmp_path / "audit.log")}
    gw = gateway_factory(raw_config)
    try:
        outcome = await _attack(gw.address(), "VIEWER1", _pdata(CID[ECHO], _echo_rq(4)),
                                until_final=1)
    finally:
        server.close()
    assert [(m.command_field, m.status) for m in outcome.messages] == [(0x8030, 0)]
    assert gw.gateway.metrics.operations.value(operation="response", result="dropped") == 2
    assert _audited(tmp_path / "audit.log", "which is not outstanding")
    _no_traceback(gateway_log)
