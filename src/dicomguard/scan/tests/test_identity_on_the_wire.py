"""The A-ASSOCIATE-RQ a scan sends carries dicomguard's own identity, and another only on request.

A raw loopback listener captures the exact bytes of the first request of a real assessment and
pynetdicom (an independent decoder) reads them back.
"""

from __future__ import annotations

import asyncio

import pytest
from pynetdicom import pdu as _pdu
from pynetdicom import pdu_primitives as prim

from dicomguard import __version__
from dicomguard.dul.acse import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge import sopclasses as sc
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.identity import ImpersonationError, impersonation

HOST = "127.0.0.1"
TIMEOUTS = Timeouts(connect=1.0, associate=1.0, dimse=1.0, release=0.5)
#: A-ASSOCIATE-RJ, permanent, service user, reason 3: ends the assessment after one request
RJ_CALLING = bytes([0x03, 0, 0, 0, 0, 4, 0, 1, 1, 3])


async def capture_first_request(opts: ProbeOptions) -> prim.A_ASSOCIATE:
    """Run an assessment against a raw listener; decode the first RQ with pynetdicom."""
    requests: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(6)
        body = await reader.readexactly(int.from_bytes(header[2:6], "big"))
        requests.append(header + body)
        writer.write(RJ_CALLING)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await assess(HOST, port, opts)
    assert requests and requests[0][0] == 0x01
    rq = _pdu.A_ASSOCIATE_RQ()
    rq.decode(requests[0])
    return rq.to_primitive()


def _identity(p: prim.A_ASSOCIATE) -> tuple[str | None, str | None]:
    uid = name = None
    for item in p.user_information:
        if isinstance(item, prim.ImplementationClassUIDNotification):
            uid = str(item.implementation_class_uid)
        elif isinstance(item, prim.ImplementationVersionNameNotification):
            name = item.implementation_version_name
            name = name.decode() if isinstance(name, bytes) else name
    return uid, name


async def test_the_request_carries_dicomguards_own_identity_and_calling_aet() -> None:
    p = await capture_first_request(
        ProbeOptions(timeouts=TIMEOUTS, calling_aet="RESEARCH01", calling_titles=())
    )
    uid, name = _identity(p)
    assert uid == IMPLEMENTATION_CLASS_UID and uid.startswith("2.25.")
    assert name == IMPLEMENTATION_VERSION_NAME == ("DICOMGUARD_" + __version__.replace(".", ""))
    assert str(p.calling_ae_title).strip() == "RESEARCH01"
    # the canary SOP class is proposed, under our own root, beside the real services
    proposed = [str(cx.abstract_syntax) for cx in p.presentation_context_definition_list]
    assert sc.CANARY in proposed and sc.CANARY.startswith(IMPLEMENTATION_CLASS_UID + ".")
    assert sc.CANARY not in {u for uids in sc.SERVICES.values() for u in uids}


async def test_impersonation_only_when_asked() -> None:
    borrowed = impersonation("dicomhawk-persona-ge-ct")
    p = await capture_first_request(
        ProbeOptions(timeouts=TIMEOUTS, identity=borrowed, calling_titles=())
    )
    assert _identity(p) == ("1.2.840.113619.6.96", "GE_PACS_REV_24")
    with pytest.raises(ImpersonationError):
        impersonation("no such product")
