"""Several DIMSE messages in one P-DATA-TF PDU are all delivered (PS3.8 9.3.5).

A P-DATA-TF carries "one or more" PDV items and nothing ties a PDU to one message: a server may
pack every C-FIND-RSP of a query into one PDU (a worklist server in the field does, dicom-rs
PR #528 "Harmony sends all the data at once"). The requestor used to keep only the first message
a PDU completed, so the final status never came and the query timed out. The peer here is the
lab acceptor with ``pack_find_responses="query"``.

Independent checks, observed here on 2026-11-29:

* pynetdicom 3.0.4's P_DATA_TF decoder, run over the captured bytes, counts every response on
  the wire (N pending + 1 final): the truth the requestor must reach.
* DCMTK findscu 3.6.7 reads all N+1 responses when each response's command and data set share
  one PDU (``"message"``), but dies with SIGSEGV after the first response when several
  messages share a PDU (``"query"``); pynetdicom 3.0.4 as SCU gets the first pending response
  only and then times out. So neither library is the reference for the packed case; the wire
  count is.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom.pdu import P_DATA_TF

from dicomguard.dul import dimse
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.scp import AcceptorPolicy, FindRequest, Handlers, start_acceptor
from dicomguard.dul.scu import Timeouts, associate
from dicomguard.testing.base import find_binary
from dicomguard.testing.reference import identifier

HOST = "127.0.0.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
N = 40


async def studies(request: FindRequest) -> AsyncIterator[tuple[int, Dataset | None]]:
    for i in range(N):
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = f"2.25.{1000 + i}"
        ds.StudyDate = "20200101"
        yield 0xFF00, ds


async def _serve(mode: str) -> AsyncIterator[int]:
    policy = AcceptorPolicy(
        abstract_syntaxes=("1.2.840.10008.1.1", STUDY_FIND), pack_find_responses=mode
    )
    server = await start_acceptor(HOST, 0, policy, Handlers(find=studies))
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def packing_server() -> AsyncIterator[int]:
    async for port in _serve("query"):
        yield port


@pytest.fixture
async def message_packing_server() -> AsyncIterator[int]:
    async for port in _serve("message"):
        yield port


def _pdvs_per_pdu(pdu: bytes) -> int:
    return len(dimse.iter_pdvs(pdu)) if pdu[0] == 0x04 else 0


async def test_every_packed_response_reaches_the_requestor(packing_server):
    seen: list[bytes] = []
    request = AssociateRequest(abstract_syntaxes=(STUDY_FIND,))
    out = await associate(
        HOST,
        packing_server,
        request,
        timeouts=Timeouts(1.0, 2.0, 2.0, 0.5),
        recorder=lambda d, b: seen.append(b) if d == "in" else None,
    )
    assert out.association is not None
    async with out.association as assoc:
        q = identifier("STUDY", StudyInstanceUID="")
        uids = [str(ds.StudyInstanceUID) async for ds in assoc.find(STUDY_FIND, q)]
        assert assoc.last_status == 0x0000
        # a second operation on the same association still works after the packed one
        again = [ds async for ds in assoc.find(STUDY_FIND, q)]
    assert len(uids) == len(set(uids)) == N and len(again) == N
    # the peer really packed: one PDU carried many messages (2 PDVs per pending response)
    assert max(_pdvs_per_pdu(p) for p in seen) > 2 * N
    # independent count with pynetdicom's PDU decoder: N+1 complete command sets per query
    commands = 0
    for raw in seen:
        if raw[0] != 0x04:
            continue
        pdu = P_DATA_TF()
        pdu.decode(raw)
        headers = [int(i.message_control_header_byte, 2) for i in pdu.presentation_data_value_items]
        commands += sum(1 for h in headers if h & 3 == 3)  # last fragment of a command set
    assert commands == 2 * (N + 1)  # two queries


def test_pack_pdata_respects_the_receivers_maximum_length():
    one = dimse.find_pdus(1, STUDY_FIND, 1, 0, b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    packed = dimse.pack_pdata(one * 10, 0)
    assert len(packed) == 1 and len(dimse.iter_pdvs(packed[0])) == 20
    limit = len(one[0]) - 6 + len(one[1]) - 6  # room for exactly one message per PDU
    small = dimse.pack_pdata(one * 10, limit)
    assert len(small) == 10 and all(len(p) - 6 <= limit for p in small)


async def test_findscu_reads_the_peer_when_each_pdu_holds_one_message(message_packing_server):
    """The peer's responses are legal DIMSE: DCMTK findscu 3.6.7 reads all N pending responses
    and the final Success (one message per PDU; see the module docstring for the packed case,
    where findscu 3.6.7 crashes)."""
    findscu = find_binary("findscu")
    if findscu is None:
        pytest.skip("DCMTK findscu is not installed")
    proc = await asyncio.create_subprocess_exec(
        findscu, "-v", "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID",
        HOST, str(message_packing_server),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    text = (await asyncio.wait_for(proc.communicate(), 30))[0].decode(errors="replace")
    assert proc.returncode == 0, text
    pending = re.findall(r"Find Response: \d+ \(Pending\)", text)
    assert len(pending) == N, text
    assert "Received Final Find Response (Success)" in text, text
