"""Garbage, giant lengths, silence and protocol violations end in an A-ABORT or a close.

After each, the same listener must still serve a well-behaved requestor: nothing escapes.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.scp import AcceptorPolicy, start_acceptor
from dicomguard.dul.scu import associate

HOST = "127.0.0.1"


@pytest.fixture
async def port() -> AsyncIterator[int]:
    policy = AcceptorPolicy(associate_timeout=0.3, idle_timeout=0.3)
    server = await start_acceptor(HOST, 0, policy)
    yield int(server.sockets[0].getsockname()[1])
    server.close()


async def _exchange(port: int, payload: bytes, wait: float = 2.0) -> bytes:
    """Send ``payload``, return everything the server says until it closes."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()


async def _still_serves(port: int) -> None:
    outcome = await associate(HOST, port, AssociateRequest())
    assert outcome.association
    async with outcome.association as assoc:
        assert await assoc.echo() == 0


def _is_provider_abort(data: bytes) -> bool:
    return len(data) == 10 and data[0] == P.A_ABORT and data[8] == 2


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param(b"\x01\x00" + struct.pack(">L", 0xFFFFFFFF) + b"\x00" * 20, id="giant-rq"),
        pytest.param(b"\x01\x00" + struct.pack(">L", 40) + b"\xff" * 40, id="junk-rq"),
        pytest.param(b"\x04\x00" + struct.pack(">L", 6) + b"\x00" * 6, id="p-data-first"),
    ],
)
async def test_bad_first_pdu_gets_provider_abort(port: int, payload: bytes) -> None:
    answer = await _exchange(port, payload)
    assert _is_provider_abort(answer), answer.hex()
    await _still_serves(port)


async def test_silent_requestor_is_dropped_after_artim(port: int) -> None:
    answer = await _exchange(port, b"", wait=2.0)
    assert answer == b""  # closed without a word, PS3.8 AA-2
    await _still_serves(port)


async def test_truncated_request_then_close(port: int) -> None:
    answer = await _exchange(port, AssociateRequest().encode()[:30], wait=2.0)
    assert answer in (b"",) or _is_provider_abort(answer)
    await _still_serves(port)


async def test_garbage_after_association_aborts(port: int) -> None:
    outcome = await associate(HOST, port, AssociateRequest())
    assert outcome.association
    assoc = outcome.association
    assoc.writer.write(b"\x04\x00" + struct.pack(">L", 8) + b"\x00\x00\x00\x09\x01\x03junk")
    await assoc.writer.drain()
    answer = await asyncio.wait_for(assoc.reader.read(), 2.0)
    assert _is_provider_abort(answer), answer.hex()
    await assoc.close()
    await _still_serves(port)


async def test_idle_association_is_ended(port: int) -> None:
    outcome = await associate(HOST, port, AssociateRequest())
    assert outcome.association
    answer = await asyncio.wait_for(outcome.association.reader.read(), 2.0)
    assert answer == b""
    await outcome.association.close()


async def test_release_gets_release_rp(port: int) -> None:
    outcome = await associate(HOST, port, AssociateRequest())
    assert outcome.association
    outcome.association.writer.write(P.RELEASE_RQ)
    answer = await asyncio.wait_for(outcome.association.reader.read(), 2.0)
    assert answer == P.RELEASE_RP
    await outcome.association.close()
