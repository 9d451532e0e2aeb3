"""When the connections in association setup are at ``max_setup``, the one closed to make room
is taken from the sources with the worst standing (identity_queue: suspect, unknown, known
good), the busiest of those first: a modality whose user identity passed recently keeps its
connection against a flood from more fresh addresses than ``max_setup``.

Found by review (rgw), against the real gateway: 200 connections at a time, each from a new
address (as an IPv6 /64 gives), with wrong passcodes; a modality known good (it had stored
through the gateway a moment before) had its connection closed within 0.06 s, every try; the
eviction looked at connection counts only, and every source held one.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from dicomguard.dul.codes import A_ASSOCIATE_AC
from dicomguard.testing.pdus import item, pdu, recv_pdu

from .conftest import PASSCODE
from .scu import associate

VERIFICATION = "1.2.840.10008.1.1"


def _request_with_passcode(user: str, passcode: str) -> bytes:
    body = item(0x10, b"1.2.840.10008.3.1.1.1")
    body += item(0x20, bytes([1, 0, 0, 0]) + item(0x30, VERIFICATION.encode())
                 + item(0x40, b"1.2.840.10008.1.2"))
    u, p = user.encode(), passcode.encode()
    identity = item(0x58, bytes([2, 0]) + struct.pack(">H", len(u)) + u
                    + struct.pack(">H", len(p)) + p)
    body += item(0x50, item(0x51, struct.pack(">L", 16384)) + item(0x52, b"2.25.4242")
                 + identity)
    return pdu(0x01, b"\x00\x01\x00\x00" + b"PACS".ljust(16) + b"CT01".ljust(16) + bytes(32)
               + body)


def test_a_known_good_source_keeps_its_connection_in_a_flood_of_fresh_addresses(
    raw_config: dict[str, Any], gateway_factory: Any
) -> None:
    raw_config["limits"] = {"max_setup": 8}
    gw = gateway_factory(raw_config)
    address = gw.address()
    known = associate(address, calling="CT01", username="alice", passcode=PASSCODE)
    assert known.is_established  # 127.0.0.1 is known good from now on
    known.release()
    modality = socket.create_connection(address, timeout=10)  # in setup, request not sent yet
    flood: list[socket.socket] = []
    try:
        for i in range(1, 25):  # three times max_setup, one connection per fresh address
            s = socket.socket()
            s.bind((f"127.0.3.{i}", 0))
            s.connect(address)
            flood.append(s)
        metrics = gw.gateway.metrics
        deadline = time.monotonic() + 10
        while metrics.setup_closed.value(reason="evicted") < 24 + 1 - 8:
            assert time.monotonic() < deadline, "the flood did not fill the setup pool"
            time.sleep(0.02)
        modality.sendall(_request_with_passcode("alice", PASSCODE))
        answer = recv_pdu(modality)
        assert answer[:1] == bytes([A_ASSOCIATE_AC]), answer[:12].hex()
    finally:
        modality.close()
        for s in flood:
            s.close()
