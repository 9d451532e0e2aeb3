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
import socket
import struct
from collections.abc import Awaitable, Callable

from pydicom.uid import ImplicitVRLittleEndian

from ..dul import dimse
from ..dul import pdu as P
from ..dul import scp as acceptor
from ..dul.codes import (
    APPLICATION_CONTEXT_NAME,
    CONTEXT_ACCEPTANCE,
    DATA_SET_ABSENT,
    DATA_SET_PRESENT,
    ITEM_APPLICATION_CONTEXT,
    ITEM_PRESENTATION_CONTEXT_AC,
    ITEM_TRANSFER_SYNTAX,
    REJECT_LOCAL_LIMIT,
    RESPONSE_BIT,
    STATUS_PENDING,
    AbortReason,
    AbortSource,
)
from ..dul.command import encode_command, pdata_pdus
from ..dul.errors import DulError

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


async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then reset at once (close with SO_LINGER 0: a RST, no FIN), before reading a
    byte: a server resetting the connections above its limit, a filter that completes the
    handshake and then refuses the source (what nmap reports as "tcpwrapped")."""
    with contextlib.suppress(OSError):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then close at once (a FIN) before reading a byte: TCP wrappers (tcpd) refusing
    the source, a service closing the connections above its limit."""
    writer.close()


async def abort(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the A-ASSOCIATE-RQ, answer A-ABORT (source: service user), close."""
    with contextlib.suppress(Exception):
        await P.read_pdu(reader, timeout=_READ_TIMEOUT, max_length=P.MAX_ASSOCIATION_PDU)
    await _finish(writer, P.abort_pdu(AbortSource.SERVICE_USER, AbortReason.NOT_SPECIFIED))


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


# --- issue 12: peers that answer like DICOM and then misbehave ----------------------------------

#: PS3.8 9.3.3 fixed part of an A-ASSOCIATE-AC after the PDU header: protocol version 1,
#: reserved, called/calling AE (16 bytes each, echoed), 32 reserved bytes
_AC_FIXED = b"\x00\x01\x00\x00" + b"ANY-SCP".ljust(16) + b"DICOMGUARD".ljust(16) + b"\x00" * 32


def _item(item_type: int, body: bytes) -> bytes:
    """A PS3.8 9.3 item: type, reserved byte, 2-byte big-endian length, body."""
    return bytes([item_type, 0]) + struct.pack(">H", len(body)) + body


_APPLICATION_CONTEXT_ITEM = _item(ITEM_APPLICATION_CONTEXT, APPLICATION_CONTEXT_NAME.encode())
#: issue 12's presentation-context item: context ID 0 (PS3.8 wants odd 1-255), accepted,
#: transfer syntax implicit VR little endian
CONTEXT_ID_0_ITEM = _item(
    ITEM_PRESENTATION_CONTEXT_AC,
    bytes([0, 0, CONTEXT_ACCEPTANCE, 0])
    + _item(ITEM_TRANSFER_SYNTAX, str(ImplicitVRLittleEndian).encode()),
)
#: a presentation-context item (ID 1, accepted) whose sub-item is an application context
#: item (type 0x10) where a transfer syntax sub-item (0x40) belongs
WRONG_SUB_ITEM = _item(
    ITEM_PRESENTATION_CONTEXT_AC, bytes([1, 0, CONTEXT_ACCEPTANCE, 0]) + _APPLICATION_CONTEXT_ITEM
)
MALFORMED_ACCEPTS = {"context-id-0": CONTEXT_ID_0_ITEM, "sub-item-0x10": WRONG_SUB_ITEM}


def malformed_accept(variant: str) -> RawHandler:
    """Read the A-ASSOCIATE-RQ, answer an A-ASSOCIATE-AC whose presentation-context item is
    broken (``MALFORMED_ACCEPTS``), then wait for the requestor to give up."""
    item = MALFORMED_ACCEPTS[variant]
    body = _AC_FIXED + _APPLICATION_CONTEXT_ITEM + item
    ac = bytes([P.A_ASSOCIATE_AC, 0]) + struct.pack(">L", len(body)) + body

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await P.read_pdu(reader, timeout=_READ_TIMEOUT, max_length=P.MAX_ASSOCIATION_PDU)
            writer.write(ac)
            await writer.drain()
        await _hold(reader, 10.0)
        await _finish(writer)

    return handler


def _accept_everything() -> acceptor.AcceptorPolicy:
    from ..knowledge import sopclasses as sc

    return acceptor.AcceptorPolicy(abstract_syntaxes=tuple(sc.ALL_PROPOSED), idle_timeout=MAX_HOLD)


async def accept_then_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A proper A-ASSOCIATE-AC (every context accepted), then not one byte more."""
    with contextlib.suppress(Exception):
        if await acceptor.negotiate(reader, writer, _accept_everything(), acceptor.Handlers()):
            await _hold(reader, MAX_HOLD)
    await _finish(writer)


def _pending_match(transfer_syntax: str) -> bytes:
    """The match every endless-pending response carries: a made-up study date and UID (no
    patient data), encoded for the context (implicit or explicit VR little endian)."""
    if transfer_syntax == ImplicitVRLittleEndian:
        return b"\x08\x00\x20\x00\x08\x00\x00\x0020240101" + (
            b"\x20\x00\x0d\x00\x08\x00\x00\x001.2.3.4\x00"
        )
    return b"\x08\x00\x20\x00DA\x08\x0020240101" + b"\x20\x00\x0d\x00UI\x08\x001.2.3.4\x00"



def endless_pending(interval: float = 0.0) -> RawHandler:
    """Accept everything, answer C-ECHO, then answer a C-FIND with Pending responses for ever,
    ignoring C-CANCEL (issue 12: it kept a scan with --timeout 2 running past 5 minutes).

    ``interval`` 0 sends as fast as the requestor reads; above 0, one response every
    ``interval`` seconds (shorter than any read timeout, so only an overall deadline ends it).
    Ends when the requestor closes or aborts, or after :data:`MAX_HOLD` seconds."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _endless_pending(reader, writer, interval)

    return handler


async def _endless_pending(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, interval: float
) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(Exception):
        info = await acceptor.negotiate(reader, writer, _accept_everything(), acceptor.Handlers())
        if info is None:
            return
        assembler = dimse.MessageAssembler()
        deadline = loop.time() + MAX_HOLD
        while loop.time() < deadline:
            raw = await P.read_pdu(reader, timeout=_READ_TIMEOUT)
            if raw.pdu_type != P.P_DATA_TF:
                break  # release or abort: done
            for msg in assembler.feed(raw.data):
                if msg.command_field == dimse.C_ECHO_RQ:
                    writer.write(b"".join(_response(msg, dimse.STATUS_SUCCESS, None, info)))
                elif msg.command_field == dimse.C_FIND_RQ:
                    await _pending_for_ever(reader, writer, msg, info, deadline, interval)
                    return
    await _finish(writer)


def _response(
    msg: dimse.DimseMessage, status: int, data: bytes | None, info: acceptor.AssociationInfo
) -> list[bytes]:
    values: dict[str, int | str] = {
        "CommandField": msg.command_field | RESPONSE_BIT,
        "MessageIDBeingRespondedTo": int(msg.command.get("MessageID", 0) or 0),
        "CommandDataSetType": DATA_SET_PRESENT if data is not None else DATA_SET_ABSENT,
        "Status": status,
    }
    uid = msg.command.get("AffectedSOPClassUID")
    if uid:
        values["AffectedSOPClassUID"] = uid
    return pdata_pdus(msg.context_id, encode_command(values), data, info.peer_max_pdu)


async def _pending_for_ever(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    msg: dimse.DimseMessage,
    info: acceptor.AssociationInfo,
    deadline: float,
    interval: float,
) -> None:
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()

    async def drain_input() -> None:  # read (and ignore) C-CANCEL; notice the close
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass
        gone.set()

    reading = loop.create_task(drain_input())
    _abstract, ts = info.contexts.get(msg.context_id, ("", str(ImplicitVRLittleEndian)))
    pending = b"".join(_response(msg, STATUS_PENDING, _pending_match(ts), info))
    try:
        sent = 0
        while not gone.is_set() and loop.time() < deadline:
            if writer.transport.is_closing():
                break
            writer.write(pending)
            sent += 1
            if interval > 0:
                await asyncio.wait_for(writer.drain(), _READ_TIMEOUT)
                await asyncio.sleep(interval)
            elif sent % 64 == 0:
                await asyncio.wait_for(writer.drain(), _READ_TIMEOUT)
                await asyncio.sleep(0.005)  # endless, but not a CPU hog for the rest of the lab
    except (DulError, OSError, TimeoutError):
        pass
    finally:
        reading.cancel()


def tls_junk(seed: int) -> RawHandler:
    """Answer anything with a TLS handshake record header (0x16 0x03 0x03) and random bytes:
    neither DICOM nor a TLS server hello."""
    counter = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        rng = random.Random(seed * 7_000_003 + counter)
        counter += 1
        await _read_some(reader)
        junk = rng.randbytes(rng.randint(8, 300))
        await _finish(writer, b"\x16\x03\x03" + struct.pack(">H", len(junk) + 40) + junk)

    return handler


def busy(rejections: int) -> RawHandler:
    """A busy archive: the first ``rejections`` associations get A-ASSOCIATE-RJ (2, 3, 2)
    "transient, presentation provider, local limit exceeded" (PS3.8 Table 9-21); later ones
    are served like an ordinary Verification SCP."""
    left = rejections
    policy = acceptor.AcceptorPolicy()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal left
        if left > 0:
            left -= 1
            with contextlib.suppress(Exception):
                await P.read_pdu(reader, timeout=_READ_TIMEOUT, max_length=P.MAX_ASSOCIATION_PDU)
            await _finish(writer, P.reject_pdu(REJECT_LOCAL_LIMIT))
            return
        await acceptor.serve_association(reader, writer, policy)

    return handler


def behaviour(name: str, seed: int) -> RawHandler:
    """The handler of a hostile behaviour name (personas.HOSTILE_BEHAVIOURS)."""
    table: dict[str, RawHandler] = {
        "http": http,
        "ssh": ssh,
        "silent": silent,
        "reset": reset_at_once,
        "close": close_at_once,
        "abort": abort,
        "giant-length": giant_length,
        "accept-then-silence": accept_then_silence,
        "endless-pending": endless_pending(),
        "slow-pending": endless_pending(1.5),
        "malformed-ac-context-id-0": malformed_accept("context-id-0"),
        "malformed-ac-sub-item-0x10": malformed_accept("sub-item-0x10"),
        "busy": busy(1),
    }
    if name == "garbage":
        return garbage(seed)
    if name == "tls-junk":
        return tls_junk(seed)
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown hostile behaviour {name!r}") from None


class HostileThread:
    """Hostile behaviours on their own event loop in a daemon thread, one address each.

    ``with HostileThread({"127.77.9.17": "garbage", ...}, port=11112, seed=1) as peers:``;
    every ``with`` starts fresh servers (behaviours that count connections start again).
    """

    def __init__(self, behaviours: dict[str, str], *, port: int, seed: int = 0) -> None:
        import threading

        self.behaviours = behaviours
        self.port = port
        self.seed = seed
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> HostileThread:
        import threading

        self._thread = threading.Thread(target=self._run, name="hostile-peers", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("hostile peers did not start")
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        servers = []
        try:
            for i, (host, name) in enumerate(sorted(self.behaviours.items())):
                servers.append(
                    await asyncio.start_server(
                        behaviour(name, self.seed + i), host, self.port, reuse_address=True
                    )
                )
        finally:
            self._ready.set()
        await self._stop.wait()
        for server in servers:
            server.close()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
