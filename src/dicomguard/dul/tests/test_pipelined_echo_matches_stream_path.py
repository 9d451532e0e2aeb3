"""Discovery's pipelined exchange (``associate(echo_and_release=True)``) ends exactly as the
stream path does, for clean and hostile peers alike.

Each peer behaviour below is met twice: once through the stream path (``associate`` then
``echo(release=True)``), once through the pipelined protocol (dul/scu.py ``_PipelinedEcho``,
which hands over to the stream path at the first unusual event). The outcome - the reject,
the C-ECHO status, or the typed error with its message - and the bytes the peer received must
be the same. Real servers are covered by scan/tests/test_echo_then_release_real_servers.py and
the lab's golden records (scan/tests/test_lab_records_unchanged.py).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

import pytest

from dicomguard.dul import codes, dimse
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.errors import DulError
from dicomguard.dul.scu import Timeouts, associate
from dicomguard.testing import pdus

FAST = Timeouts(connect=1.0, associate=0.4, dimse=0.4, release=0.2)
REQUEST = AssociateRequest(called_aet="ANY-SCP", abstract_syntaxes=(dimse.VERIFICATION,))
Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _ac(result: int = codes.CONTEXT_ACCEPTANCE, *, extra_user_items: bytes = b"") -> bytes:
    """An A-ASSOCIATE-AC answering REQUEST's one context (ID 1) with ``result``."""
    fixed = b"\x00\x01\x00\x00" + b"ANY-SCP".ljust(16) + b"DICOMGUARD".ljust(16) + bytes(32)
    app = pdus.item(0x10, b"1.2.840.10008.3.1.1.1")
    context = pdus.item(0x21, bytes([1, 0, result, 0]) + pdus.item(0x40, b"1.2.840.10008.1.2"))
    user = pdus.item(
        0x50,
        pdus.item(0x51, struct.pack(">L", 16384))
        + pdus.item(0x52, b"1.2.826.0.1.3680043.9.3811.3.0.4")
        + extra_user_items
        + pdus.item(0x55, b"PEER_1"),
    )
    return pdus.pdu(codes.A_ASSOCIATE_AC, fixed + app + context + user)


AC = _ac()
RSP = pdus.P_DATA_TF_C_ECHO_RSP
RP = pdus.A_RELEASE_RP
ABORT = pdus.A_ABORT_SERVICE_USER
#: the C-ECHO-RSP's command set in two P-DATA-TF PDUs (fragments of one command)
_CMD = RSP[12:]
RSP_SPLIT = pdus.p_data_tf((1, pdus.COMMAND_MORE, _CMD[:30])) + pdus.p_data_tf(
    (1, pdus.COMMAND_LAST, _CMD[30:])
)
RSP_REFUSED = RSP[:-2] + b"\x22\x01"  # status 0122H
RSP_OTHER_ID = RSP[:68] + b"\x08\x00" + RSP[70:]  # answers message ID 8, not the RQ's 1
FIND_RSP = RSP.replace(b"\x30\x80", b"\x20\x80")  # command field 8020H: a C-FIND-RSP


def script(*steps: bytes | float | str) -> Peer:
    """A peer: reads the A-ASSOCIATE-RQ, then per step writes bytes, sleeps (a float),
    reads what comes ("read"), or closes ("close"); stays silent for a while at the end."""

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        for step in steps:
            if isinstance(step, bytes):
                writer.write(step)
                await writer.drain()
            elif isinstance(step, float):
                await asyncio.sleep(step)
            elif step == "read":
                await reader.read(4096)
            elif step == "close":
                writer.close()
                return
        await asyncio.sleep(0.6)  # longer than every FAST timeout
        writer.close()

    return peer


def drip(data: bytes, *tail: bytes | float | str) -> Peer:
    """The answer a few bytes at a time (within the timeouts)."""
    steps: list[bytes | float | str] = []
    for i in range(0, len(data), 7):
        steps += [data[i : i + 7], 0.01]
    return script(*steps, *tail)


PEERS: dict[str, Peer] = {
    "clean": script(AC, "read", RSP, RP),
    "everything before the request": script(AC + RSP + RP),
    "reject": script(pdus.A_ASSOCIATE_RJ_CALLED_AET, "close"),
    "abort instead of AC": script(ABORT, "close"),
    "garbage": script(b"HTTP/1.1 400 Bad Request\r\n\r\n", "close"),
    "silence": script(),
    "closed at once": script("close"),
    "closed mid-header": script(AC[:3], "close"),
    "closed mid-body": script(AC[:40], "close"),
    "header then silence": script(AC[:6]),
    "giant length": script(bytes([2, 0]) + struct.pack(">L", 0xFFFFFFF0)),
    "AC dripped": drip(AC, "read", RSP, RP),
    "AC with role selection (pynetdicom decodes)": script(
        _ac(extra_user_items=pdus.item(0x54, struct.pack(">H", 17) + b"1.2.840.10008.1.1\x00\x01")),
        "read", RSP, RP,
    ),
    "Verification refused": script(_ac(codes.CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED), "read", RP),
    "AC then silence": script(AC),
    "AC then abort": script(AC, "read", ABORT, "close"),
    "AC then close": script(AC, "read", "close"),
    "release answered first": script(AC, "read", RP, RSP),
    "release requested by the peer": script(AC, "read", pdus.A_RELEASE_RQ),
    "C-ECHO-RSP in two PDUs": script(AC, "read", RSP_SPLIT, RP),
    "refused C-ECHO": script(AC, "read", RSP_REFUSED, RP),
    "wrong response": script(AC, "read", FIND_RSP, RP),
    "C-ECHO-RSP to another message ID": script(AC, "read", RSP_OTHER_ID, RP),
    "no A-RELEASE-RP": script(AC, "read", RSP),
    "abort after the C-ECHO-RSP": script(AC, "read", RSP, ABORT, "close"),
    "garbage after the C-ECHO-RSP": script(AC, "read", RSP, b"garbage!", "close"),
    "P-DATA garbage": script(AC, "read", pdus.pdu(codes.P_DATA_TF, b"\x00\x00\x00\xff\x01")),
    "C-ECHO-RSP dripped": script(AC, "read", RSP[:5], 0.05, RSP[5:50], 0.05, RSP[50:], RP),
    "C-ECHO-RSP header then silence": script(AC, "read", RSP[:6]),
}


async def _exchange(port: int, pipelined: bool) -> str:
    try:
        outcome = await associate(
            "127.0.0.1", port, REQUEST, timeouts=FAST, echo_and_release=pipelined
        )
    except DulError as exc:
        return f"associate: {type(exc).__name__}: {exc}"
    if outcome.association is None:
        return f"reject: {outcome.reject}"
    assoc = outcome.association
    try:
        status = await assoc.echo(release=True)
    except DulError as exc:
        await assoc.abort()
        return f"echo: {type(exc).__name__}: {exc}"
    await assoc.close()
    return f"status 0x{status & 0xFFFF:04X}"


@pytest.mark.parametrize("name", list(PEERS))
async def test_pipelined_exchange_ends_as_the_stream_path(name: str) -> None:
    behaviour = PEERS[name]
    got: dict[bool, list[bytes]] = {False: [], True: []}
    finished: dict[bool, asyncio.Event] = {False: asyncio.Event(), True: asyncio.Event()}
    which = [False]

    async def recording_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        run = which[0]
        seen = got[run]

        class Tap:  # what the peer reads, recorded
            async def read(self, n: int) -> bytes:
                data = await reader.read(n)
                seen.append(data)
                return data

        try:
            await behaviour(Tap(), writer)  # type: ignore[arg-type]
            # whatever else the client sends before it closes (A-ABORT, A-RELEASE-RQ)
            seen.append(await asyncio.wait_for(reader.read(), 3.0))
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            finished[run].set()

    server = await asyncio.start_server(recording_peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcomes = {}
        for pipelined in (False, True):
            which[0] = pipelined
            outcomes[pipelined] = await _exchange(port, pipelined)
            await asyncio.wait_for(finished[pipelined].wait(), 10.0)
    finally:
        server.close()
    assert outcomes[True] == outcomes[False]
    assert b"".join(got[True]) == b"".join(got[False])


@pytest.mark.parametrize("pipelined", [False, True], ids=["stream", "pipelined"])
async def test_a_c_echo_rsp_to_another_message_id_is_not_an_answer(pipelined: bool) -> None:
    """PS3.7 9.3.5.2: a C-ECHO-RSP names the request it answers; one naming another message
    ID (a reviewer's made-up peer; echoscu refuses it) is a protocol violation, not Success."""

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(AC, "read", RSP_OTHER_ID, RP)(reader, writer)
            await asyncio.wait_for(reader.read(), 3.0)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    try:
        outcome = await _exchange(server.sockets[0].getsockname()[1], pipelined)
    finally:
        server.close()
    assert outcome.startswith("echo: ProtocolViolation") and "message ID 8" in outcome, outcome
