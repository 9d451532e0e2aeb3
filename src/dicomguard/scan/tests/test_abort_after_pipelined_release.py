"""An A-ABORT (or close) that comes after discovery's pipelined A-RELEASE-RQ and before the
C-ECHO-RSP is not a refusal of the C-ECHO: the peer may be answering the release.

A made-up peer that leaves the C-ECHO unanswered and aborts when the A-RELEASE-RQ arrives was
recorded "verification refused" with DG-015 (access enforced per operation) by ``--discovery``
while the full scan, which waits for the answer, recorded it silent. The C-ECHO is now asked
again unpipelined, so both modes agree; a peer that aborts the C-ECHO itself stays refused.
"""

from __future__ import annotations

import asyncio

from dicomguard.dul import pdu as P
from dicomguard.dul.scu import Timeouts
from dicomguard.dul.tests.test_accept_bytes import encode_ac
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.result import EndpointResult

AC = encode_ac([(1, 0, "1.2.840.10008.1.2")])
ABORT = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0])


async def _read_pdu(reader: asyncio.StreamReader) -> int:
    header = await reader.readexactly(6)
    await reader.readexactly(int.from_bytes(header[2:6], "big"))
    return header[0]


def _peer(abort_on: int):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_pdu(reader)
            writer.write(AC)
            while (t := await _read_pdu(reader)) != abort_on:
                pass  # the C-ECHO-RQ stays unanswered
            del t
            writer.write(ABORT)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle


async def _scan(abort_on: int, discovery: bool) -> EndpointResult:
    server = await asyncio.start_server(_peer(abort_on), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        opts = ProbeOptions(discovery=discovery, web=None, try_tls=False,
                            timeouts=Timeouts(2.0, 1.0, 1.0, 1.0), slow_greeting_timeout=0)
        return await assess("127.0.0.1", port, opts)
    finally:
        server.close()


def test_abort_answering_the_release_is_not_a_refused_echo() -> None:
    r = asyncio.run(_scan(P.A_RELEASE_RQ, discovery=True))
    assert r.dicom
    assert r.operations["verification"]["state"] != "refused"
    assert "DG-015" not in {f["id"] for f in r.findings}
    full = asyncio.run(_scan(P.A_RELEASE_RQ, discovery=False))
    assert full.operations["verification"]["state"] == r.operations["verification"]["state"]


def test_abort_of_the_echo_itself_stays_refused() -> None:
    r = asyncio.run(_scan(P.P_DATA_TF, discovery=True))
    assert r.operations["verification"]["state"] == "refused"
    assert r.associations == 2  # asked once more unpipelined
