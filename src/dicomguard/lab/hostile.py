"""Raw connection behaviours of the lab's non-DICOM and broken personas.

Each is an ``asyncio.start_server`` callback. They are what a scanner meets on real networks:
web servers and SSH daemons on odd ports, firewalls that accept and drop, crashed services that
spit junk, and broken peers that announce absurd lengths. Every one ends by itself (bounded
reads, bounded holds), so a fleet never accumulates connections from a scanner that forgot them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import Awaitable, Callable

from ..dul import pdu as P

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: the longest a hostile persona keeps a connection open
MAX_HOLD = 120.0
_READ_TIMEOUT = 10.0

HTTP_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Server: nginx\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


async def _read_some(reader: asyncio.StreamReader, timeout: float = _READ_TIMEOUT) -> bytes:
    with contextlib.suppress(Exception):
        return await asyncio.wait_for(reader.read(4096), timeout)
    return b""


async def _finish(writer: asyncio.StreamWriter, data: bytes = b"") -> None:
    with contextlib.suppress(Exception):
        if data:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), 5.0)
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _hold(reader: asyncio.StreamReader, seconds: float) -> None:
    """Swallow input until the peer closes or ``seconds`` pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(reader.read(65536), left)
        except Exception:
            return
        if not data:
            return


async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A web server: whatever arrives, a 400 answer, then close."""
    await _read_some(reader)
    await _finish(writer, HTTP_RESPONSE)


async def ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An SSH daemon: banner first, then it waits for the client's banner and gives up."""
    with contextlib.suppress(Exception):
        writer.write(SSH_BANNER)
        await writer.drain()
    data = await _read_some(reader)
    await _finish(writer, b"Invalid SSH identification string.\r\n" if data else b"")


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never answer (a tarpit, or a firewall that completes the handshake)."""
    await _hold(reader, MAX_HOLD)
    await _finish(writer)


async def abort(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the A-ASSOCIATE-RQ, answer A-ABORT (source: service user), close."""
    with contextlib.suppress(Exception):
        await P.read_pdu(reader, timeout=_READ_TIMEOUT, max_length=P.MAX_ASSOCIATION_PDU)
    await _finish(writer, P.abort_pdu(source=0, reason=0))


def garbage(seed: int) -> RawHandler:
    """Random bytes for every connection (deterministic per seed and connection number).

    The first byte is kept above 0x07 so the junk is never a valid PDU type by accident.
    """
    counter = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        rng = random.Random(seed * 1_000_003 + counter)
        counter += 1
        await _read_some(reader)
        junk = bytes([rng.randint(0x08, 0xFF)]) + rng.randbytes(rng.randint(16, 1024))
        await _finish(writer, junk)

    return handler


async def giant_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An A-ASSOCIATE-AC header announcing 0xFFFFFFFF bytes, a little body, then a long pause."""
    with contextlib.suppress(Exception):
        await P.read_pdu(reader, timeout=_READ_TIMEOUT, max_length=P.MAX_ASSOCIATION_PDU)
    with contextlib.suppress(Exception):
        writer.write(bytes([P.A_ASSOCIATE_AC, 0]) + struct.pack(">L", 0xFFFFFFFF))
        writer.write(b"\x00\x01\x00\x00" + b"\x00" * 60)
        await writer.drain()
    await _hold(reader, 30.0)
    await _finish(writer)


def behaviour(name: str, seed: int) -> RawHandler:
    """The handler of a hostile behaviour name (personas.HOSTILE_BEHAVIOURS)."""
    table: dict[str, RawHandler] = {
        "http": http,
        "ssh": ssh,
        "silent": silent,
        "abort": abort,
        "giant-length": giant_length,
    }
    if name == "garbage":
        return garbage(seed)
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown hostile behaviour {name!r}") from None
