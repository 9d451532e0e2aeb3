"""A backend whose A-ASSOCIATE-AC the gateway cannot read (here: no application context item,
PS3.8 9.3.3) is a failed backend like one that answers with another PDU: the client gets an
A-ABORT rather than a dropped connection, the backend an A-ABORT for the association it
accepted, and the failure is counted, audited and logged (found in review: the MalformedPdu
ended the connection with nothing sent, counted, audited or logged)."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path
from typing import Any

from lxml import etree

from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest
from dicomguard.testing import pdus

from .test_audit_schema import SCHEMA

ECHO = "1.2.840.10008.1.1"
IMPLICIT = "1.2.840.10008.1.2"


def _accept_without_application_context() -> bytes:
    body = (struct.pack(">HH", 1, 0) + b"PACS".ljust(16) + b"CT01".ljust(16) + b"\0" * 32
            + pdus.item(0x21, bytes([1, 0, 0, 0]) + pdus.item(0x40, IMPLICIT.encode())))
    return pdus.pdu(P.A_ASSOCIATE_AC, body)


async def test_unreadable_accept_from_the_backend_aborts_the_client_and_is_audited(
    raw_config: dict[str, Any], gateway_factory: Any, tmp_path: Path
) -> None:
    backend_got: list[int] = []

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await P.read_pdu(reader, timeout=5)
            writer.write(_accept_without_application_context())
            raw = await P.read_pdu(reader, timeout=5)
            backend_got.append(raw.pdu_type)
        except Exception:
            backend_got.append(-1)
        finally:
            writer.close()

    server = await asyncio.start_server(backend, "127.0.21.9", 0)
    port = server.sockets[0].getsockname()[1]
    raw_config["route"] = [{"called_aet": "PACS", "backend_host": "127.0.21.9",
                            "backend_port": port, "backend_aet": "ODD"}]
    raw_config["audit"] = {"file": str(tmp_path / "audit.xml")}
    gw = gateway_factory(raw_config)
    host, gw_port = gw.address()
    reader, writer = await asyncio.open_connection(host, gw_port)
    writer.write(AssociateRequest(called_aet="PACS", calling_aet="CT01",
                                  abstract_syntaxes=(ECHO,),
                                  transfer_syntaxes=(IMPLICIT,)).encode())
    try:
        raw = await P.read_pdu(reader, timeout=5)
    finally:
        writer.close()
    assert raw.pdu_type == P.A_ABORT
    deadline = time.monotonic() + 5
    while not backend_got and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    server.close()
    assert backend_got == [P.A_ABORT]
    assert gw.gateway.metrics.associations.value(result="backend-failed") == 1
    gw.stop()
    text = (tmp_path / "audit.xml").read_text()
    assert "A-ASSOCIATE-AC" in text
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    for line in text.splitlines():
        assert schema.validate(etree.fromstring(line.encode())), schema.error_log.last_error
