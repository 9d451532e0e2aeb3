"""Silence, garbage, giant lengths and aborts end in a typed error within the step timeout."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from dicomguard.dul import errors
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.scu import Timeouts, associate

FAST = Timeouts(connect=1.0, associate=0.5, dimse=0.5, release=0.2)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)
    writer.close()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await writer.drain()
    writer.close()


async def giant(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(bytes([0x02, 0]) + struct.pack(">L", 0xFFFFFFF0))
    await writer.drain()
    await asyncio.sleep(2)
    writer.close()


async def aborting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 2, 0]))
    await writer.drain()
    writer.close()


async def truncated_ac(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(bytes([0x02, 0]) + struct.pack(">L", 68) + b"\x00\x01" + b"\x00" * 10)
    await writer.drain()
    writer.close()


async def junk_ac(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(bytes([0x02, 0]) + struct.pack(">L", 70) + b"\xff" * 70)
    await writer.drain()
    await asyncio.sleep(1)
    writer.close()


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (silent, errors.PeerTimeout),
        (garbage, errors.MalformedPdu),
        (giant, errors.PduTooLarge),
        (aborting, errors.PeerAborted),
        (truncated_ac, errors.MalformedPdu),
        (junk_ac, errors.MalformedPdu),
    ],
)
async def test_hostile_peer_gives_typed_error_quickly(raw_server, behaviour, error):
    port = await raw_server(behaviour)
    start = time.monotonic()
    with pytest.raises(error):
        await associate("127.0.0.1", port, AssociateRequest(), timeouts=FAST)
    assert time.monotonic() - start < 2.0


async def test_closed_port_is_reported_closed(raw_server):
    port = await raw_server(silent)
    from dicomguard.testing.loopback import free_port

    closed = free_port()
    assert closed != port
    with pytest.raises(errors.ConnectFailed) as info:
        await associate("127.0.0.1", closed, AssociateRequest(), timeouts=FAST)
    assert info.value.state == "closed"
