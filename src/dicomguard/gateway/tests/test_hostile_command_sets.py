"""Bypass attempts at the P-DATA level: oversized, over-fragmented, split and out-of-order
command sets, sent by a hand-written client (dicomguard's own requestor) through the gateway."""

from __future__ import annotations

import asyncio
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as dm

from dicomguard.dul import dimse, scu
from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.errors import PeerAborted, PeerClosed
from dicomguard.testing.pdus import p_data_tf as _pdata

from .conftest import RecordingBackend

MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
ECHO = "1.2.840.10008.1.1"


def _command_bytes(msg: Any, cid: int, dataset: bytes | None = None) -> bytes:
    pdus = dimse.encode_message(msg, cid, 0, dataset)
    return dimse.iter_pdvs(pdus[0])[0][2]


def _move_rq(destination: str) -> Any:
    move = dm.C_MOVE_RQ()
    cs = move.command_set
    cs.CommandField = dimse.C_MOVE_RQ
    cs.MessageID = 1
    cs.AffectedSOPClassUID = MOVE
    cs.Priority = 0
    cs.MoveDestination = destination
    return move


def _identifier() -> bytes:
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = "*"
    return dimse.encode_dataset(ds, "1.2.840.10008.1.2")


async def _open(gw: Any) -> scu.Association:
    host, port = gw.address()
    rq = AssociateRequest(called_aet="PACS", calling_aet="VIEWER1",
                          abstract_syntaxes=(ECHO, MOVE))
    outcome = await scu.associate(host, port, rq)
    assert outcome.association is not None, outcome.reject
    return outcome.association


async def _next_pdu(assoc: scu.Association) -> P.RawPdu:
    return await P.read_pdu(assoc.reader, timeout=5)


async def _expect_abort(assoc: scu.Association) -> None:
    try:
        while True:
            raw = await _next_pdu(assoc)
            P.raise_if_abort(raw)
    except PeerAborted as exc:
        assert exc.source == 2  # service provider: the gateway
    except PeerClosed:
        raise AssertionError("connection dropped without an A-ABORT") from None
    finally:
        await assoc.close()


async def test_oversized_command_set_aborts(gateway_factory: Any, raw_config: dict[str, Any],
                                            backend: RecordingBackend) -> None:
    gw = gateway_factory(raw_config)
    assoc = await _open(gw)
    junk = b"\x00" * (20 << 10)  # above the 16 KiB default bound, never decoded
    assoc.writer.write(_pdata((1, 0x01, junk[:8000]), (1, 0x01, junk[8000:16000]),
                              (1, 0x03, junk[16000:])))
    await _expect_abort(assoc)
    assert backend.record.requests == []
    assert gw.gateway.metrics.aborts.value(reason="command-set") == 1


async def test_command_set_in_too_many_fragments_aborts(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = await _open(gw)
    cmd = dimse.iter_pdvs(dimse.echo_pdus(1, 1, 0)[0])[0][2]
    pieces = [cmd[i : i + 8] for i in range(0, len(cmd), 8)]
    assert len(pieces) > 4
    items = [(1, 0x01, p) for p in pieces[:-1]] + [(1, 0x03, pieces[-1])]
    for item in items:  # one PDV per PDU, the way an evasive peer would trickle it
        assoc.writer.write(_pdata(item))
    await _expect_abort(assoc)
    assert backend.record.requests == []


async def test_split_move_command_is_still_judged(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    """The destination sits in the second fragment: reassembly happens before the policy."""
    gw = gateway_factory(raw_config)
    assoc = await _open(gw)
    cmd = _command_bytes(_move_rq("HARVESTER"), 3, _identifier())
    half = len(cmd) - 12
    assoc.writer.write(_pdata((3, 0x01, cmd[:half])))
    assoc.writer.write(_pdata((3, 0x03, cmd[half:]), (3, 0x02, _identifier())))
    raw = await _next_pdu(assoc)
    reply = dimse.MessageAssembler().feed(raw.data)[0]
    assert reply.command_field == dimse.C_MOVE_RSP
    assert reply.status == 0xA801
    # ... and the association is still usable: an echo passes
    assoc.writer.write(dimse.echo_pdus(2, 1, 0)[0])
    echo = dimse.MessageAssembler().feed((await _next_pdu(assoc)).data)[0]
    assert echo.status == 0
    await assoc.release()
    assert backend.record.requests == [("ECHO", "")]


async def test_data_before_command_aborts(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = await _open(gw)
    assoc.writer.write(_pdata((3, 0x02, _identifier())))
    await _expect_abort(assoc)


async def test_command_inside_a_data_set_aborts(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    """Smuggling attempt: start an allowed message, then slip a second command into its data."""
    gw = gateway_factory(raw_config)
    assoc = await _open(gw)
    allowed = _command_bytes(_move_rq("VIEWER1"), 3, _identifier())
    hidden = _command_bytes(_move_rq("HARVESTER"), 3, _identifier())
    assoc.writer.write(_pdata((3, 0x03, allowed), (3, 0x00, _identifier()[:4]),
                              (3, 0x03, hidden)))
    await _expect_abort(assoc)


async def test_undecodable_command_aborts(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = await _open(gw)
    assoc.writer.write(_pdata((1, 0x03, b"\xff" * 40)))
    await _expect_abort(assoc)


async def test_not_a_pdu_aborts(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = await _open(gw)
    assoc.writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await _expect_abort(assoc)


async def test_garbage_instead_of_request_gets_abort_not_silence(
    gateway_factory: Any, raw_config: dict[str, Any]
) -> None:
    gw = gateway_factory(raw_config)
    host, port = gw.address()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(P.RELEASE_RQ)
    raw = await P.read_pdu(reader, timeout=5)
    assert raw.pdu_type == P.A_ABORT
    writer.close()


async def test_malformed_associate_request_gets_abort_and_never_reaches_the_backend(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    """An A-ASSOCIATE-RQ whose item lengths lie: A-ABORT (reason 6, invalid parameter value),
    counted as malformed, and the legacy backend is never contacted."""
    gw = gateway_factory(raw_config)
    host, port = gw.address()
    good = bytearray(AssociateRequest(called_aet="PACS", calling_aet="CT01",
                                      abstract_syntaxes=(ECHO,)).encode())
    good[76:78] = (0xFFF0).to_bytes(2, "big")  # application context item overruns the PDU
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(bytes(good))
    raw = await P.read_pdu(reader, timeout=5)
    assert raw.pdu_type == P.A_ABORT and raw.data[-1] == 6
    writer.close()
    assert gw.gateway.metrics.associations.value(result="malformed") == 1
    assert backend.record.associations == []
