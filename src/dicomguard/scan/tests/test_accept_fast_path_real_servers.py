"""Real servers' A-ASSOCIATE-ACs take the byte reader's fast path and read as pynetdicom reads them.

The scanner decodes each AC with ``dul.accept_bytes.read_accept`` and falls back to pynetdicom
for anything unusual; the speed of issue 13 depends on real servers' ACs being "clean". Here
each real server (Orthanc 1.10.1, DCMTK 3.6.7 dcmqrscp and storescp, pynetdicom) answers the
scanner's two requests (discovery: Verification only; assessment: every service's SOP class
and the canary), and the fast reader's record must equal pynetdicom's decode of the same bytes.
"""

from __future__ import annotations

import socket
import struct

import pytest

from dicomguard.dul import pdu as P
from dicomguard.dul.accept_bytes import read_accept
from dicomguard.dul.acse import AssociateRequest, decode_accept
from dicomguard.knowledge import sopclasses as sc
from dicomguard.testing.base import LoopbackServer


@pytest.fixture
def server(real_dicom_server: LoopbackServer) -> LoopbackServer:
    """Each of the test kit's real DICOM servers in turn."""
    return real_dicom_server


def _answer(server: LoopbackServer, request: AssociateRequest) -> bytes:
    """Send the A-ASSOCIATE-RQ, return the PDU that answers it, then abort."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(request.encode())
        header = b""
        while len(header) < 6:
            chunk = s.recv(6 - len(header))
            assert chunk, "connection closed before an answer"
            header += chunk
        (length,) = struct.unpack(">L", header[2:6])
        body = b""
        while len(body) < length:
            chunk = s.recv(length - len(body))
            assert chunk
            body += chunk
        s.sendall(P.abort_pdu())
    return header + body


@pytest.mark.parametrize(
    "syntaxes", [(sc.VERIFICATION,), sc.ALL_PROPOSED], ids=["discovery", "full"]
)
def test_real_acs_are_read_on_the_fast_path(server: LoopbackServer, syntaxes: tuple[str, ...]):
    request = AssociateRequest(
        called_aet=server.aet,
        calling_aet=(server.calling_aets or ("DICOMGUARD",))[0],
        abstract_syntaxes=syntaxes,
    )
    data = _answer(server, request)
    assert data[0] == P.A_ASSOCIATE_AC, f"{server!r} did not accept: {data.hex()}"
    fast = read_accept(data, request)
    assert fast is not None, f"{server!r}: AC not clean enough for the fast path: {data.hex()}"
    slow = decode_accept(P.decode(P.RawPdu(P.A_ASSOCIATE_AC, data)), request)  # type: ignore[arg-type]
    assert fast == slow
    assert fast.implementation_class_uid  # every one of them announces itself
