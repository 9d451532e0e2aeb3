"""One DICOM server with a connection limit, behind many loopback addresses.

A NAT, a load balancer or an appliance bound to every interface answers many addresses with
one process, and such a process often takes only a few connections at a time: the kernel
accepts the rest (the handshake completes, a connect sweep sees the port open), then the server
closes them before any PDU, with a FIN or a reset. echoscu gets in on any address once the
other connections are gone. The scanner must record every such address DICOM, with one worker
or several (scan.congestion).

The acceptor behind the limit is dicomguard's own (:func:`dicomguard.dul.scp.serve_association`:
C-ECHO answered, an A-ABORT for a first PDU that is not an A-ASSOCIATE-RQ, e.g. a TLS
ClientHello, as the PS3.8 state machine says), so what the server does with anything but an
association is what a real server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from dicomguard.dul.scp import AcceptorPolicy, serve_association

from .loopback import free_port
from .threads import LoopThread

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class ConnectionLimit:
    """The limit's state, shared by every connection of the server (one event loop).

    ``refuse``: addresses whose every connection is closed, whatever the count (a port that
    refuses every time, among addresses that answer).
    """

    limit: int
    reset: bool = False
    refuse: frozenset[str] = frozenset()
    active: int = 0
    #: connections closed before any PDU because ``limit`` were open (not counting ``refuse``)
    turned_away: int = 0
    #: most connections open at once
    peak: int = 0
    policy: AcceptorPolicy = field(default_factory=AcceptorPolicy)

    def handler(self) -> Handler:
        """An ``asyncio.start_server`` callback applying the limit."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            address = writer.get_extra_info("sockname")[0]
            if self.active >= self.limit or address in self.refuse:
                if address not in self.refuse:
                    self.turned_away += 1
                if self.reset:  # SO_LINGER 0: close sends RST
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.close()
                return
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                await serve_association(reader, writer, self.policy)
            finally:
                self.active -= 1

        return handle


@contextlib.contextmanager
def connection_limited_server(
    hosts: Sequence[str],
    limit: int,
    *,
    reset: bool = False,
    refuse: Sequence[str] = (),
    policy: AcceptorPolicy | None = None,
) -> Iterator[tuple[int, ConnectionLimit]]:
    """A connection-limited DICOM server (C-ECHO) on one port of every address of ``hosts``,
    on an event loop in a thread (the scan may run in this process or in a subprocess); yields
    (port, its :class:`ConnectionLimit`, whose counts may be read once the scan is over).
    ``policy``: the acceptor's (``max_associations`` makes it answer A-ASSOCIATE-RJ "local
    limit exceeded" above that many associations, as pynetdicom and DCMTK do). Closed on
    exit."""
    state = ConnectionLimit(limit, reset=reset, refuse=frozenset(refuse),
                            policy=policy or AcceptorPolicy())
    port = free_port(hosts[0])
    with LoopThread() as loop:

        async def start() -> asyncio.Server:
            return await asyncio.start_server(state.handler(), list(hosts), port, backlog=128)

        server = loop.call(start())
        try:
            yield port, state
        finally:

            async def stop() -> None:
                server.close()

            loop.call(stop())
