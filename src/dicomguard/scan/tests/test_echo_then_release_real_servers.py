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
from dicomguard.dul.scu import associate
from dicomguard.knowledge import sopclasses as sc
from dicomguard.scan.assess import ProbeOptions, assess
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
