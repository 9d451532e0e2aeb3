"""A proposed presentation context ID must be odd (PS3.8 9.3.2.2: odd integers 1 to 255).

Measured with a raw A-ASSOCIATE-RQ: DCMTK's storescp and dcmqrscp and Orthanc accept contexts
0 and 2 and answer a C-ECHO on them; pynetdicom's decoder raises ("'context_id' must be an odd
integer") and the association hangs without an answer. The gateway forwarded such a request
and, a DCMTK backend accepting, judged the context like any other: nothing was read
differently there, but the request is outside the standard, backends disagree on it and no
real SCU sends it (DCMTK's tools, pynetdicom, GDCM number their contexts 1, 3, 5...). It is
now refused as malformed before the backend sees a byte: A-ABORT, source service provider,
reason invalid PDU parameter value (PS3.8 9.3.8), as a presentation context ID given twice.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from typing import Any

import pytest
from pynetdicom.presentation import PresentationContext

from dicomguard.dul.codes import A_ABORT, A_ASSOCIATE_AC, AbortReason
from dicomguard.testing.pdus import item, pdu, recv_pdu
from dicomguard.testing.require import need_binaries

pytestmark = pytest.mark.usefixtures("no_tracebacks")

VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"


def _request(called: str, contexts: list[tuple[int, str]]) -> bytes:
    """An A-ASSOCIATE-RQ from CT01 (admitted from 127.0.0.1 with the modality identity)
    proposing ``contexts`` (ID, abstract syntax) as given."""
    body = item(0x10, b"1.2.840.10008.3.1.1.1")
    for cid, uid in contexts:
        body += item(0x20, bytes([cid, 0, 0, 0]) + item(0x30, uid.encode())
                     + item(0x40, IMPLICIT_LE.encode()))
    body += item(0x50, item(0x51, struct.pack(">L", 16384)) + item(0x52, b"2.25.4242"))
    return pdu(0x01, b"\x00\x01\x00\x00" + called.ljust(16).encode()
               + b"CT01".ljust(16) + bytes(32) + body)


def _answer(address: tuple[str, int], rq: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(rq)
        return recv_pdu(s)


def _accepted_ids(ac: bytes) -> set[int]:
    """Presentation context IDs an A-ASSOCIATE-AC accepts (result 0)."""
    out, pos = set(), 74
    while pos + 4 <= len(ac):
        kind, length = ac[pos], struct.unpack(">H", ac[pos + 2 : pos + 4])[0]
        if kind == 0x21 and ac[pos + 6] == 0:
            out.add(ac[pos + 4])
        pos += 4 + length
    return out


@pytest.mark.parametrize("contexts", [[(2, VERIFICATION)], [(1, VERIFICATION), (2, CT)],
                                      [(0, VERIFICATION)]], ids=["2", "1+2", "0"])
def test_even_context_ids_are_refused_before_the_backend(
    contexts: list[tuple[int, str]], raw_config: dict[str, Any], gateway_factory: Any,
    storescp_server: Any
) -> None:
    need_binaries("echoscu")
    # The backend behind: storescp accepts the even contexts when asked directly
    direct = _answer((storescp_server.host, storescp_server.port), _request("ANY", contexts))
    assert direct[0] == A_ASSOCIATE_AC
    assert _accepted_ids(direct) == {cid for cid, _ in contexts}
    # pynetdicom, the other reading: the ID cannot even be held
    with pytest.raises(ValueError, match="odd"):
        PresentationContext().context_id = 2

    untouched = socket.create_server(("127.0.0.1", 0))  # a backend that must see nothing
    untouched.setblocking(False)
    raw_config["route"] = [
        {"called_aet": "PACS", "backend_host": storescp_server.host,
         "backend_port": storescp_server.port, "backend_aet": storescp_server.aet},
        {"called_aet": "WATCHED", "backend_host": "127.0.0.1",
         "backend_port": untouched.getsockname()[1], "backend_aet": "WATCHED"}]
    gw = gateway_factory(raw_config)
    try:
        for called in ("PACS", "WATCHED"):
            answer = _answer(gw.address(), _request(called, contexts))
            assert answer[0] == A_ABORT, answer[:12].hex()
            assert (answer[8], answer[9]) == (2, AbortReason.INVALID_PDU_PARAMETER_VALUE)
        with pytest.raises(BlockingIOError):
            untouched.accept()
    finally:
        untouched.close()
    assert gw.gateway.metrics.associations.value(result="malformed") == 2
    # a real SCU's odd contexts still pass (DCMTK echoscu)
    host, port = gw.address()
    echo = subprocess.run(["echoscu", "-to", "10", "-aet", "CT01", "-aec", "PACS", host,
                           str(port)], capture_output=True, text=True, timeout=30, check=False)
    assert echo.returncode == 0, echo.stdout + echo.stderr
