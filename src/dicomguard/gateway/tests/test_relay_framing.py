"""The data phase parses PDUs out of whatever chunks TCP delivers: a stream cut at random
points (inside PDU headers, PDV headers, command sets and data sets) must reach the backend
byte for byte, whether a PDU is gathered whole or streamed through as it arrives."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from pynetdicom import dimse_messages as dm
from pynetdicom.sop_class import CTImageStorage

from dicomguard.dul import dimse, scu
from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.errors import PeerAborted

from .conftest import RecordingBackend
from .scu import ct_instance


def _store_pdus(index: int, cid: int, ts: str, max_pdu: int) -> tuple[str, bytes, list[bytes]]:
    ds = ct_instance(300 + index, rows=40 + 30 * index, columns=64)
    msg = dm.C_STORE_RQ()
    cs = msg.command_set
    cs.CommandField = dimse.C_STORE_RQ
    cs.MessageID = index + 1
    cs.AffectedSOPClassUID = CTImageStorage
    cs.AffectedSOPInstanceUID = ds.SOPInstanceUID
    cs.Priority = 0
    data = dimse.encode_dataset(ds, ts)
    return str(ds.SOPInstanceUID), data, dimse.encode_message(msg, cid, max_pdu, data)


def _cut(stream: bytes, pdus_of: bytes) -> list[tuple[bytes, bool]]:
    """Pieces of ``stream`` (and whether each ends at a header cut): cut at random points,
    and exactly after every PDU header and PDV header, where the relay decides between
    gathering and streaming."""
    header_cuts = set()
    pos = 0
    while pos < len(pdus_of):  # PDU boundaries: cut at +0, +6 and +12 of each PDU
        length = int.from_bytes(pdus_of[pos + 2 : pos + 6], "big")
        header_cuts.update((pos, pos + 6, pos + 12))
        pos += 6 + length
    cuts = set(header_cuts)
    rng = random.Random(20261125)
    pos = 0
    while pos < len(stream):
        pos += rng.choice((1, 2, 5, 7, 11, 600, 4000, 9000))
        cuts.add(pos)
    edges = sorted(c for c in cuts if 0 < c < len(stream))
    return [(stream[a:b], b in header_cuts)
            for a, b in zip([0, *edges], [*edges, len(stream)], strict=True)]


async def _store_association(gw: Any) -> tuple[scu.Association, int, str]:
    host, port = gw.address()
    rq = AssociateRequest(called_aet="PACS", calling_aet="CT01",
                          abstract_syntaxes=(CTImageStorage,))
    outcome = await scu.associate(host, port, rq)
    assert outcome.association is not None, outcome.reject
    cid, ts = outcome.association.accept.context_for(CTImageStorage)  # type: ignore[misc]
    return outcome.association, cid, ts


@pytest.mark.parametrize("busy_poll_us", [0, 300], ids=["sleeping-loop", "busy-poll"])
async def test_stream_cut_anywhere_reaches_backend_byte_for_byte(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend,
    busy_poll_us: int,
) -> None:
    raw_config["limits"] = {"busy_poll_us": busy_poll_us}
    gw = gateway_factory(raw_config)
    assoc, cid, ts = await _store_association(gw)
    # PDUs of up to 12 KB: above the relay's streaming threshold, below the backend's maximum
    sent: dict[str, bytes] = {}
    stream = b""
    for i in range(4):
        uid, data, pdus = _store_pdus(i, cid, ts, 12000)
        sent[uid] = data
        stream += b"".join(pdus)
    for piece, at_header in _cut(stream, pdus_of=stream):
        assoc.writer.write(piece)
        await assoc.writer.drain()
        # long enough at header cuts that the gateway reads the piece on its own
        await asyncio.sleep(0.02 if at_header else 0.0005)
    statuses = []
    assembler = dimse.MessageAssembler()
    while len(statuses) < len(sent):
        raw = await P.read_pdu(assoc.reader, timeout=10)
        P.raise_if_abort(raw)
        statuses += [m.status for m in assembler.feed(raw.data)]
    await assoc.release()
    assert statuses == [0] * len(sent)
    assert backend.record.stored == sent


async def test_large_data_pdu_without_its_command_is_not_streamed_but_aborted(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc, cid, ts = await _store_association(gw)
    _, _, pdus = _store_pdus(1, cid, ts, 12000)
    assoc.writer.write(b"".join(pdus[1:]))  # data-set PDUs (10+ KB each), the command left out
    with pytest.raises(PeerAborted):
        while True:
            P.raise_if_abort(await P.read_pdu(assoc.reader, timeout=5))
    await assoc.close()
    assert backend.record.stored == {}


async def test_client_vanishing_inside_a_streamed_pdu_ends_the_association(
    gateway_factory: Any, raw_config: dict[str, Any], backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc, cid, ts = await _store_association(gw)
    _, _, pdus = _store_pdus(2, cid, ts, 12000)
    stream = b"".join(pdus)
    assoc.writer.write(stream[: len(pdus[0]) + 5000])  # the command, then part of a data PDU
    await assoc.writer.drain()
    await asyncio.sleep(0.2)
    await assoc.close()  # gone mid-PDU
    for _ in range(50):
        if gw.gateway.metrics.active.value() == 0:
            break
        await asyncio.sleep(0.1)
    assert gw.gateway.metrics.active.value() == 0
    assert backend.record.stored == {}
    # the gateway carries on
    again, cid, ts = await _store_association(gw)
    uid, data, pdus = _store_pdus(3, cid, ts, 12000)
    again.writer.write(b"".join(pdus))
    reply = dimse.MessageAssembler().feed((await P.read_pdu(again.reader, timeout=5)).data)
    assert reply[0].status == 0
    await again.release()
    assert backend.record.stored == {uid: data}
