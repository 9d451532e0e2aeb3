"""PDUs of the gateway's own (the C-CANCEL of a capped C-FIND, a refusal's failure response)
go out between PDUs, never inside one the gateway is streaming through.

Found in review: the C-CANCEL-RQ the gateway sends when a C-FIND reaches its cap was written to
the backend at once, even while a large P-DATA-TF of the client's was being streamed through
(cut-through, ``STREAM_MIN``). The backend then read the 54 bytes of the cancel as part of the
client's PDU, and the client's last 54 bytes of that PDU as the start of a new PDU that the
gateway never judged: a request smuggled past the policy. Here a ``viewer`` (ECHO, FIND capped
at 3, MOVE to VIEWER1 only) smuggles a C-MOVE to HARVESTER that way, against a pynetdicom SCP
that records what reaches it.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from dicomguard.dul import dimse
from dicomguard.dul.command import encode_command
from dicomguard.testing.scripted import scripted_scp

from .test_bypass_suite import CID, FIND, MOVE, _collect, _find_rq, _identifier, _open, _pdata

#: the gateway's C-CANCEL-RQ: PDU header, PDV header and a 42-byte command set
CANCEL_BYTES = len(b"".join(dimse.cancel_pdus(1, CID[FIND], 0)))
#: the data-set bytes of the client's streamed PDU (above relay.STREAM_MIN)
DATA = 10_000
#: how much of it goes before the cap is reached
FIRST = 100


def _smuggling_pdus() -> tuple[bytes, bytes, bytes]:
    """(start of the streamed PDU, its rest, the PDU after it) as the gateway sees them: data
    fragments of C-FIND 2's identifier, the last one in its own PDU. Read with the cancel
    inside, the backend sees a P-DATA-TF starting in the last ``CANCEL_BYTES`` of the first
    PDU and holding a C-MOVE to HARVESTER."""
    move = encode_command({"CommandField": 0x0021, "MessageID": 3, "AffectedSOPClassUID": MOVE,
                           "Priority": 0, "MoveDestination": "HARVESTER",
                           "CommandDataSetType": 1})
    ident = _identifier()
    # what the backend reads after its shortened PDU: a data fragment (not last) that swallows
    # the rest of the tail and the next PDU's two headers, then the last (empty-ish) fragment
    # of C-FIND 2's identifier, then the C-MOVE and its identifier
    inner = (struct.pack(">LBB", 2, CID[FIND], 0x02)
             + struct.pack(">LBB", len(move) + 2, CID[MOVE], 0x03) + move
             + struct.pack(">LBB", len(ident) + 2, CID[MOVE], 0x02) + ident)
    swallow = CANCEL_BYTES - 12 + 12  # rest of the tail + the next PDU's headers
    tail = (struct.pack(">BBL", 4, 0, 6 + swallow + len(inner))
            + struct.pack(">LBB", swallow + 2, CID[FIND], 0x00) + b"\x00" * (CANCEL_BYTES - 12))
    assert len(tail) == CANCEL_BYTES
    body = b"\x00" * (DATA - CANCEL_BYTES) + tail
    head = struct.pack(">BBL", 4, 0, DATA + 6) + struct.pack(">LBB", DATA + 2, CID[FIND], 0x00)
    stream = head + body
    last = struct.pack(">BBL", 4, 0, len(inner) + 6) + struct.pack(
        ">LBB", len(inner) + 2, CID[FIND], 0x02) + inner
    return stream[: 12 + FIRST], stream[12 + FIRST :], last


class FramingBackend:
    """A Q/R SCP that reads PDUs by their length as every DUL does (DCMTK, pynetdicom) and
    records every command set it decodes; answers C-FIND 1 with five pending matches and waits
    for a C-CANCEL. (pynetdicom's own SCP gives up on a PDU that trickles in, so it cannot be
    the backend here.)"""

    def __init__(self, packed: bool = False) -> None:
        #: all five matches in one P-DATA-TF (PDVs of several messages, PS3.8 9.3.5)
        self.packed = packed
        self.commands: list[tuple[int, str]] = []
        self.finished = asyncio.Event()
        self.handle = scripted_scp((FIND, MOVE), self._answer, answer_release=False,
                                   finished=self.finished)

    def _answer(self, msg: dimse.DimseMessage) -> list[bytes]:
        field_ = msg.command_field
        self.commands.append((field_, str(msg.command.get("MoveDestination", ""))))
        if field_ == 0x0020 and msg.command.MessageID == 1:
            matches = [_pdata(msg.context_id, encode_command({
                "CommandField": 0x8020, "MessageIDBeingRespondedTo": 1,
                "AffectedSOPClassUID": FIND, "CommandDataSetType": 1,
                "Status": 0xFF00}), _identifier(patient_id=f"DGSYN000{i}"))
                for i in range(5)]
            if self.packed:
                items = b"".join(m[6:] for m in matches)
                matches = [struct.pack(">BBL", 4, 0, len(items)) + items]
            return matches
        if field_ == 0x0FFF:
            return [_pdata(msg.context_id, encode_command({
                "CommandField": 0x8020, "MessageIDBeingRespondedTo": 1,
                "AffectedSOPClassUID": FIND, "CommandDataSetType": 0x0101,
                "Status": 0xFE00}))]
        if field_ in (0x0020, 0x0021):
            return [_pdata(msg.context_id, encode_command({
                "CommandField": field_ | 0x8000,
                "MessageIDBeingRespondedTo": msg.command.MessageID,
                "AffectedSOPClassUID": FIND if field_ == 0x0020 else MOVE,
                "CommandDataSetType": 0x0101, "Status": 0}))]
        return []


async def test_cancel_of_a_capped_find_never_lands_inside_a_streamed_pdu(
    raw_config: dict[str, Any], gateway_factory: Any
) -> None:
    recorder = FramingBackend()
    server = await asyncio.start_server(recorder.handle, "127.0.21.9", 0)
    port = server.sockets[0].getsockname()[1]
    raw_config["route"] = [{"called_aet": "PACS", "backend_host": "127.0.21.9",
                            "backend_port": port, "backend_aet": "QR"}]
    raw_config["identity"]["viewer"]["find_max_results"] = 3
    gw = gateway_factory(raw_config)
    start, rest, last = _smuggling_pdus()
    assoc = await _open(gw.address(), "VIEWER1")
    try:
        # C-FIND 1 (5 matches at the backend), C-FIND 2's command set, and the start of its
        # identifier in a PDU large enough to be streamed
        assoc.writer.write(_pdata(CID[FIND], _find_rq(1), _identifier())
                           + _pdata(CID[FIND], _find_rq(2)) + start)
        await assoc.writer.drain()
        capped = await _collect(assoc, until_final=1, timeout=10)
        assert capped.statuses()[-1] == 0xA700, capped  # the cancel went to the backend
        assoc.writer.write(rest + last)
        await assoc.writer.drain()
        await _collect(assoc, until_final=1, timeout=5)
    finally:
        await assoc.close()
        await asyncio.wait_for(recorder.finished.wait(), 5)
        server.close()
    assert (0x0021, "HARVESTER") not in recorder.commands, recorder.commands
    assert [f for f, _ in recorder.commands] == [0x0020, 0x0020, 0x0FFF], recorder.commands


async def test_capped_find_status_comes_after_the_matches_it_follows(
    raw_config: dict[str, Any], gateway_factory: Any
) -> None:
    """A backend sending several matches in one P-DATA-TF: the gateway's final status (A700,
    cap reached) goes out after the third match's data set, not before the PDU it was in (the
    client would read it between a match's command and its data set)."""
    recorder = FramingBackend(packed=True)
    server = await asyncio.start_server(recorder.handle, "127.0.21.9", 0)
    port = server.sockets[0].getsockname()[1]
    raw_config["route"] = [{"called_aet": "PACS", "backend_host": "127.0.21.9",
                            "backend_port": port, "backend_aet": "QR"}]
    raw_config["identity"]["viewer"]["find_max_results"] = 3
    gw = gateway_factory(raw_config)
    assoc = await _open(gw.address(), "VIEWER1")
    try:
        assoc.writer.write(_pdata(CID[FIND], _find_rq(1), _identifier()))
        outcome = await _collect(assoc, until_final=1, timeout=10)
    finally:
        await assoc.close()
        await asyncio.wait_for(recorder.finished.wait(), 5)
        server.close()
    assert outcome.statuses() == [0xFF00] * 3 + [0xA700], outcome
    assert all(m.dataset for m in outcome.messages[:3])


@pytest.mark.parametrize("pdu_type", [0x05, 0x06, 0x07])
async def test_release_and_abort_pdus_longer_than_ps38_says_are_not_forwarded(
    pdu_type: int, raw_config: dict[str, Any], gateway_factory: Any
) -> None:
    """A-RELEASE-RQ/RP and A-ABORT are 10 bytes (PS3.8 9.3.6-9.3.8). One announcing more, with
    a P-DATA-TF inside, ends the association at the gateway: DCMTK, pynetdicom and Orthanc
    read the announced length (checked straight, they answer the release and never the
    embedded C-FIND), but a device reading 10 bytes would run the C-FIND unjudged."""
    recorder = FramingBackend()
    server = await asyncio.start_server(recorder.handle, "127.0.21.9", 0)
    port = server.sockets[0].getsockname()[1]
    raw_config["route"] = [{"called_aet": "PACS", "backend_host": "127.0.21.9",
                            "backend_port": port, "backend_aet": "QR"}]
    gw = gateway_factory(raw_config)
    hidden = _pdata(CID[FIND], _find_rq(1), _identifier())
    assoc = await _open(gw.address(), "CT01")  # modality: no FIND
    try:
        assoc.writer.write(struct.pack(">BBL", pdu_type, 0, 4 + len(hidden)) + b"\x00" * 4
                           + hidden)
        outcome = await _collect(assoc, timeout=5)
    finally:
        await assoc.close()
        await asyncio.wait_for(recorder.finished.wait(), 5)
        server.close()
    assert outcome.abort is not None and outcome.messages == [], outcome
    assert recorder.commands == []
    assert gw.gateway.metrics.aborts.value(reason="protocol") == 1
