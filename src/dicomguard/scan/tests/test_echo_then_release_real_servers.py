"""Discovery sends its C-ECHO-RQ and A-RELEASE-RQ in one write; real servers answer both, in order.

Issue 13: the discovery exchange held a server for three round trips (A-ASSOCIATE, C-ECHO,
A-RELEASE). The A-RELEASE-RQ now goes right behind the C-ECHO-RQ (PS3.8 7.2.2 and Table 9-10:
an acceptor may still send P-DATA after the release indication, and a requestor awaiting the
A-RELEASE-RP takes it). That is only safe if real servers answer the C-ECHO-RSP before the
A-RELEASE-RP and release in good order. Here each real server (Orthanc 1.10.1, DCMTK 3.6.7
dcmqrscp and storescp, pynetdicom's SCP and its qrscp app) gets the pipelined exchange; the
PDUs that come back must be the C-ECHO-RSP with status Success, then the A-RELEASE-RP, then the
end of the connection. DCMTK's echoscu, an independent client, confirms each server's C-ECHO
answer (exit status 0) first.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from dicomguard.dul import dimse
from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.command import encode_command, pdata_pdus
from dicomguard.dul.scu import associate
from dicomguard.dul.tests.test_accept_bytes import encode_ac
from dicomguard.knowledge import sopclasses as sc
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.result import EndpointResult
from dicomguard.testing.base import LoopbackServer

SERVERS = [
    "orthanc_open",
    "dcmqrscp_aetable",
    "storescp_server",
    "pynetdicom_scp",
    "pynetdicom_qrscp",
]
ECHOSCU = "/usr/bin/echoscu"


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> LoopbackServer:
    return request.getfixturevalue(request.param)


def _calling(server: LoopbackServer) -> str:
    return (server.calling_aets or ("DICOMGUARD",))[0]


def test_real_servers_answer_the_echo_then_release_in_order(server: LoopbackServer) -> None:
    echoscu = subprocess.run(
        [ECHOSCU, "-aet", _calling(server), "-aec", server.aet, server.host, str(server.port)],
        capture_output=True,
        timeout=30,
    )
    assert echoscu.returncode == 0, echoscu.stderr.decode(errors="replace")

    seen: list[tuple[str, bytes]] = []

    async def exchange() -> tuple[int, bytes]:
        request = AssociateRequest(
            called_aet=server.aet,
            calling_aet=_calling(server),
            abstract_syntaxes=(sc.VERIFICATION,),
        )
        outcome = await associate(
            server.host, server.port, request, recorder=lambda d, b: seen.append((d, b))
        )
        assert outcome.association is not None, outcome.reject
        assoc = outcome.association
        reader = assoc.reader
        status = await assoc.echo(release=True)
        return status, await asyncio.wait_for(reader.read(), 10)

    status, after = asyncio.run(exchange())
    assert status == 0
    assert after == b"", "the server sent more after its A-RELEASE-RP"
    outgoing = [b[0] for d, b in seen if d == "out"]
    incoming = [b for d, b in seen if d == "in"]
    assert outgoing == [P.A_ASSOCIATE_RQ, P.P_DATA_TF, P.A_RELEASE_RQ]
    assert [b[0] for b in incoming] == [P.A_ASSOCIATE_AC, P.P_DATA_TF, P.A_RELEASE_RP]
    (reply,) = dimse.MessageAssembler().feed(incoming[1])
    assert reply.command_field == dimse.C_ECHO_RSP and reply.status == 0


def test_pipelined_protocol_carries_the_whole_exchange_with_real_servers(
    server: LoopbackServer,
) -> None:
    """Discovery's exchange as one protocol (dul.scu._PipelinedEcho, associate(echo_and_release=
    True)) meets nothing unusual with a real server: it never hands the connection to the
    stream path, the C-ECHO-RSP says Success and the connection ends after the A-RELEASE-RP
    (echoscu confirmed each server's C-ECHO answer in the test above)."""

    async def exchange() -> tuple[int, object]:
        request = AssociateRequest(
            called_aet=server.aet,
            calling_aet=_calling(server),
            abstract_syntaxes=(sc.VERIFICATION,),
        )
        outcome = await associate(server.host, server.port, request, echo_and_release=True)
        assert outcome.association is not None, outcome.reject
        assoc = outcome.association
        link = assoc._link
        assert link is not None and link.echo_sent
        return await assoc.echo(release=True), link

    status, link = asyncio.run(exchange())
    assert status == 0
    assert not link.handed  # type: ignore[attr-defined]
    assert link.transport.is_closing()  # type: ignore[attr-defined]


def test_discovery_record_says_verification_answered_with_two_round_trips(
    server: LoopbackServer,
) -> None:
    opts = ProbeOptions(
        discovery=True,
        probe_called_aet=server.aet,
        calling_aet=_calling(server),
        web=None,
        try_tls=False,
    )
    r = asyncio.run(assess(server.host, server.port, opts))
    assert r.dicom and r.error is None
    assert r.associations == 1
    assert r.operations["verification"]["state"] == "answered"
    assert r.operations["verification"]["status"] == 0
    assert r.services["verification"] is True


def _echo_rsp() -> bytes:
    command = encode_command(
        {
            "CommandField": dimse.C_ECHO_RSP,
            "MessageIDBeingRespondedTo": 1,
            "AffectedSOPClassUID": sc.VERIFICATION,
            "CommandDataSetType": dimse.DATA_SET_ABSENT,
            "Status": 0,
        }
    )
    return b"".join(pdata_pdus(1, command, None, 0))


async def _read_pdu_types(reader: asyncio.StreamReader, until: int) -> list[int]:
    types = []
    while not types or types[-1] != until:
        header = await reader.readexactly(6)
        await reader.readexactly(int.from_bytes(header[2:6], "big"))
        types.append(header[0])
    return types


def test_peer_that_releases_before_answering_is_asked_again_unpipelined() -> None:
    """A made-up peer (no real server does it) that answers a pipelined A-RELEASE-RQ before
    the C-ECHO-RQ: the C-ECHO is asked again alone on a new association, so the record still
    says what the peer does with a C-ECHO (answered), at the cost of one more association."""
    ac = encode_ac([(1, 0, "1.2.840.10008.1.2")])
    seen: list[list[int]] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # decided by the association's rank, not by timing: the first is the discovery
        # exchange, which must pipeline (its A-RELEASE-RQ comes without waiting for an answer;
        # a client that waited would leave seen[0] == [P-DATA-TF] after the 10 s bound)
        rank = len(seen)
        seen.append([])
        try:
            await _read_pdu_types(reader, P.A_ASSOCIATE_RQ)
            writer.write(ac)
            seen[rank] += await _read_pdu_types(reader, P.P_DATA_TF)
            if rank == 0:
                seen[rank] += await asyncio.wait_for(_read_pdu_types(reader, P.A_RELEASE_RQ), 10)
                writer.write(P.RELEASE_RP + _echo_rsp())  # release first: out of order
            else:
                writer.write(_echo_rsp())
                seen[rank] += await _read_pdu_types(reader, P.A_RELEASE_RQ)
                writer.write(P.RELEASE_RP)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def run() -> EndpointResult:
        server = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            opts = ProbeOptions(discovery=True, web=None, try_tls=False)
            return await assess("127.0.0.1", port, opts)
        finally:
            server.close()

    r = asyncio.run(run())
    assert seen == [
        [P.P_DATA_TF, P.A_RELEASE_RQ],  # pipelined, answered out of order
        [P.P_DATA_TF, P.A_RELEASE_RQ],  # asked again alone, released after the answer
    ]
    assert r.dicom and r.error is None
    assert r.associations == 2
    assert r.operations["verification"]["state"] == "answered"
