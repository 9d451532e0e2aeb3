"""An asyncio DICOM association requestor (SCU): associate, C-ECHO, C-FIND, release, abort.

pynetdicom's ``AE.associate`` spends a thread per association and waits on its own timers; a
scanner holding thousands of half-open associations against hostile peers needs one event loop,
a timeout on every step and a bound on every length, which is what this class adds on top of
pynetdicom's codecs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import functools
import os
import select
import socket
import ssl
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from . import dimse
from . import pdu as P
from .accept_bytes import read_accept
from .acse import Accept, AssociateRequest, Reject, decode_accept, decode_reject
from .codes import is_pending
from .errors import (
    CancelIgnored,
    ConnectFailed,
    DulError,
    PeerAborted,
    PeerClosed,
    PeerTimeout,
    ProtocolViolation,
)

#: optional observer of every PDU of an association: ("out" | "in", the complete PDU bytes).
#: Used by ``dicomguard scan --evidence``; None costs one comparison per PDU.
Recorder = Callable[[str, bytes], None]


#: Pending C-FIND responses read after our C-CANCEL-RQ before the peer counts as ignoring it
#: (a server may have a few in its send buffer when the cancel arrives).
MAX_RESPONSES_AFTER_CANCEL = 64


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each step; a silent peer costs at most the sum of the steps used."""

    connect: float = 3.0
    associate: float = 5.0
    dimse: float = 10.0
    release: float = 2.0


#: SO_ERROR of a connect whose handshake completed and that the peer reset before the error was
#: read (accept, then close with SO_LINGER 0; a server at its connection limit; an accept queue
#: overflowing with tcp_abort_on_overflow). Linux's tcp_reset() reports a RST answering our SYN
#: as ECONNREFUSED, ECONNRESET only once established (EPIPE after the peer's FIN): the port is
#: open. Whether the RST arrived before or after SO_ERROR was read is a race (on loopback the
#: peer's accept and close often beat our next system call), so neither the scan's connect sweep
#: nor :func:`tcp_connect` may call it "closed"
RESET_AFTER_HANDSHAKE = frozenset({errno.ECONNRESET, errno.EPIPE})


def _writable_now(sock: socket.socket) -> bool:
    """Connected (or failed) already? poll(2) with no wait: select() cannot take fds >= 1024."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


def _idle(sock: socket.socket) -> bool:
    """A connected socket the peer has neither closed nor written to (poll(2), no wait)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


async def tcp_connect(host: str, port: int, *, timeout: float) -> socket.socket:
    """Connect a non-blocking TCP socket, with a port-scanner's view of failures.

    Hand-rolled instead of ``asyncio.open_connection`` for the first step because most
    endpoints of a scan are closed: on loopback and LANs a refused connect completes
    synchronously, and skipping the transport, stream and ``wait_for`` task that
    ``open_connection`` builds roughly doubles the rate of a large scan.

    A connection the peer reset right after the handshake (:data:`RESET_AFTER_HANDSHAKE`) is
    returned as connected: it was, and the caller's first read (end of file) or write (EPIPE)
    fails as it would have had the RST come a moment later, so the record does not depend on
    that race. Raises :class:`ConnectFailed` with the port scanner's state otherwise.
    """
    tracker = current_connections.get()
    if tracker is not None and tracker.preconnected is not None:
        kept = tracker.preconnected.pop((host, port), None)
        if kept is not None:
            if _idle(kept):
                return kept
            kept.close()  # the peer closed or spoke meanwhile: a fresh connection
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        err = sock.connect_ex((host, port))
        if err in (errno.EINPROGRESS, errno.EAGAIN) and _writable_now(sock):
            # On loopback the handshake usually completes inside connect(): one poll with no
            # wait tells, instead of a writer callback, a future and a timer per connection.
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        elif err in (errno.EINPROGRESS, errno.EAGAIN):
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            loop.add_writer(sock.fileno(), lambda: done.done() or done.set_result(None))
            tracker = current_connections.get()
            slow = None
            if tracker is not None and tracker.on_loss is not None and tracker.slow_connect:
                # congestion signal for the scan engine: a SYN still unanswered long after a
                # round trip was most likely dropped by a full accept queue
                slow = loop.call_later(tracker.slow_connect(), tracker.on_loss)
            started = loop.time()
            try:
                async with asyncio.timeout(timeout):
                    await done
            finally:
                loop.remove_writer(sock.fileno())
                if slow is not None:
                    slow.cancel()
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0 and tracker is not None and tracker.on_loss is not None:
                if _retransmitted(sock):
                    tracker.on_loss()  # the SYN was resent
                elif tracker.on_connected is not None:
                    # Karn: a round-trip sample only from a SYN sent once
                    tracker.on_connected(loop.time() - started)
    except TimeoutError:
        sock.close()
        raise ConnectFailed("filtered", f"no answer within {timeout:g}s") from None
    except OSError as exc:
        sock.close()
        raise ConnectFailed("unreachable", str(exc)) from None
    except BaseException:
        sock.close()
        raise
    if err == 0 or err in RESET_AFTER_HANDSHAKE:
        return sock
    sock.close()
    if err == errno.ECONNREFUSED:
        raise ConnectFailed("closed", os.strerror(err))
    if err in (errno.ETIMEDOUT,):
        raise ConnectFailed("filtered", os.strerror(err))
    raise ConnectFailed("unreachable", os.strerror(err))


class ReleasedBeforeAnswer(ProtocolViolation):
    """The peer sent its A-RELEASE-RP before answering the request that went out with our
    A-RELEASE-RQ (:meth:`Association.echo` with ``release``): the request stays unanswered on
    this association, which is over. No server tested does this (they answer in order).

    Also raised when the peer aborts or closes before that answer: it may be reacting to our
    A-RELEASE-RQ, not to the request, so the request is neither answered nor refused."""


class Connections:
    """Every stream :func:`open_stream` opened in one task (and the tasks it started), so the
    scan engine can end them when an endpoint's budget runs out, whatever probe was using them.

    ``associated`` marks the streams that carry an association: they get an A-ABORT first.
    """

    #: congestion observer (the scan engine's scan.congestion window for this endpoint), all
    #: None when nobody watches: ``on_loss()`` when a connection needed a TCP retransmission
    #: or its connect is still pending after ``slow_connect()`` seconds; ``on_connected(s)``
    #: with the seconds an asynchronous connect took
    on_loss: Callable[[], None] | None = None
    on_connected: Callable[[float], None] | None = None
    slow_connect: Callable[[], float] | None = None
    #: connections already open (the scan's connect sweep made them), used by the first
    #: :func:`tcp_connect` to their (host, port) instead of a new one
    preconnected: dict[tuple[str, int], socket.socket] | None = None

    def __init__(self) -> None:
        #: transport -> carries an association (a StreamWriter is kept as its transport)
        self._open: dict[asyncio.BaseTransport, bool] = {}

    def add(self, writer: asyncio.StreamWriter | asyncio.BaseTransport) -> None:
        self._open[getattr(writer, "transport", writer)] = False

    def associated(self, writer: asyncio.StreamWriter | asyncio.BaseTransport) -> None:
        transport = getattr(writer, "transport", writer)
        if transport in self._open:
            self._open[transport] = True

    def __len__(self) -> int:
        return sum(1 for t in self._open if not t.is_closing())

    def abort_all(self) -> int:
        """A-ABORT (where associated) and close every stream still open; returns how many.

        Synchronous, so it works from a cancelled task; a peer that does not read the A-ABORT
        loses the connection one second later (``transport.abort``).
        """
        n = 0
        loop = asyncio.get_running_loop()
        for transport, associated in self._open.items():
            if transport.is_closing():
                continue
            n += 1
            with contextlib.suppress(Exception):
                if associated:
                    transport.write(P.abort_pdu())  # type: ignore[attr-defined]
                transport.close()
            loop.call_later(1.0, transport.abort)  # type: ignore[attr-defined]
        self._open.clear()
        return n


#: set by the scan engine around one endpoint's assessment (None: nothing is tracked)
current_connections: contextvars.ContextVar[Connections | None] = contextvars.ContextVar(
    "dicomguard_connections", default=None
)


async def open_stream(
    host: str, port: int, *, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP (optionally TLS) connect; failures are :class:`ConnectFailed` with a state."""
    sock = await tcp_connect(host, port, timeout=timeout)
    try:
        if ssl_context is None:
            # a connected plain socket: the transport is ready on the next loop pass, nothing
            # to time out (a timer per association saved, issue 13)
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
        else:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=ssl_context, server_hostname="", limit=1 << 16
                )
        tracker = current_connections.get()
        if tracker is not None:
            tracker.add(writer)
        return reader, writer
    except TimeoutError:
        sock.close()
        raise ConnectFailed("tls-failed", f"no TLS handshake within {timeout:g}s") from None
    except ssl.SSLError as exc:
        sock.close()
        raise ConnectFailed("tls-failed", exc.reason or str(exc)) from None
    except OSError as exc:
        sock.close()
        state = "closed" if ssl_context is None else "tls-failed"
        raise ConnectFailed(state, str(exc) or "connection reset") from None


def scanner_tls_context() -> ssl.SSLContext:
    """A client context that completes a handshake with any server certificate.

    A scanner must talk to self-signed and expired certificates to report on them, so it does
    not verify; the certificate facts are recorded and judged by the TLS probe instead.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass
class AssociateOutcome:
    """What one A-ASSOCIATE-RQ got: an open association, or the reject that refused it."""

    association: Association | None
    reject: Reject | None

    @property
    def accepted(self) -> bool:
        return self.association is not None


class Association:
    """An established association; use :func:`associate` to make one."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: AssociateRequest,
        accept: Accept,
        timeouts: Timeouts,
        max_pdata: int,
        recorder: Recorder | None = None,
    ) -> None:
        self.recorder = recorder
        self._reader = reader
        self._writer = writer
        #: the pipelined discovery exchange still in charge of the connection (see
        #: :func:`associate` ``echo_and_release``); None once the streams are in use
        self._link: _PipelinedEcho | None = None
        self.request = request
        self.accept = accept
        self.timeouts = timeouts
        self.max_pdata = max_pdata
        self._message_id = 0
        self._closed = False
        #: our A-RELEASE-RQ went out (pipelined behind a request)
        self._release_sent = False
        tracker = current_connections.get()
        if tracker is not None and writer is not None:
            tracker.associated(writer)
        #: One assembler and one queue of completed messages for the whole association: a
        #: P-DATA-TF PDU may carry PDVs of several messages (PS3.8 9.3.5: "one or more PDV
        #: items"), e.g. DCMTK wlmscpfs or a busy archive packing every C-FIND-RSP in one PDU;
        #: messages after the one an operation waits for must wait here, not be dropped.
        self._assembler = dimse.MessageAssembler()
        self._ready: deque[dimse.DimseMessage] = deque()

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def reader(self) -> asyncio.StreamReader:
        if self._link is not None:
            self._take_streams()
        return self._reader  # type: ignore[return-value]

    @property
    def writer(self) -> asyncio.StreamWriter:
        if self._link is not None:
            self._take_streams()
        return self._writer  # type: ignore[return-value]

    def _take_streams(self) -> None:
        """The general (stream) path takes over from the pipelined exchange, exactly where
        it stands: bytes received and not consumed, end of stream, connection lost."""
        link, self._link = self._link, None
        assert link is not None
        link.hand_over()
        self._reader, self._writer = link.reader, link.writer

    def _next_id(self) -> int:
        self._message_id = (self._message_id % 0xFFFF) + 1
        return self._message_id

    @property
    def peer_max_pdu(self) -> int:
        return self.accept.max_pdu or 0

    async def _send(self, pdus: list[bytes]) -> None:
        try:
            if self.recorder is not None:
                for data in pdus:
                    self.recorder("out", data)
            # one write (one segment, one send call) for a command and its data set
            self.writer.write(pdus[0] if len(pdus) == 1 else b"".join(pdus))
            await drain(self.writer, self.timeouts.dimse)
        except TimeoutError:
            raise PeerTimeout("peer stopped reading") from None
        except (ConnectionError, OSError) as exc:
            raise PeerClosed(f"connection lost while sending: {exc}") from None

    async def _receive(self, max_bytes: int = 16 << 20) -> dimse.DimseMessage:
        """The next complete DIMSE message of the association (queued ones first).

        ``max_bytes`` bounds the data set of messages still being assembled (bytes); a larger
        one raises :class:`MalformedPdu`. Raises :class:`ProtocolViolation` for a PDU other
        than P-DATA-TF, :class:`PeerAborted`/:class:`PeerClosed`/:class:`PeerTimeout` as
        :func:`pdu.read_pdu` does.
        """
        self._assembler.max_bytes = max_bytes
        while not self._ready:
            raw = await P.read_pdu(
                self.reader, timeout=self.timeouts.dimse, max_length=self.max_pdata
            )
            if self.recorder is not None:
                self.recorder("in", raw.data)
            P.raise_if_abort(raw)
            if raw.pdu_type == P.A_RELEASE_RQ:
                raise ProtocolViolation("peer asked to release in the middle of an operation")
            if raw.pdu_type == P.A_RELEASE_RP and self._release_sent:
                raise ReleasedBeforeAnswer("A-RELEASE-RP before the answer to the request sent"
                                           " with the A-RELEASE-RQ")
            if raw.pdu_type != P.P_DATA_TF:
                raise ProtocolViolation(f"unexpected {raw.name} during an operation")
            self._ready.extend(self._assembler.feed(raw.data))
        return self._ready.popleft()

    def _context(self, abstract_syntax: str) -> tuple[int, str]:
        found = self.accept.context_for(abstract_syntax)
        if found is None:
            raise ProtocolViolation(f"no accepted presentation context for {abstract_syntax}")
        return found

    # -- services ---------------------------------------------------------------------------
    async def echo(self, *, release: bool = False) -> int:
        """C-ECHO; returns the response status (``codes.STATUS_SUCCESS`` = success).

        ``release``: the C-ECHO is the association's last request, so the A-RELEASE-RQ goes out
        in the same write, and the association is released (or closed, as :meth:`release`
        does) once the C-ECHO-RSP has come: two round trips instead of three. PS3.8 allows it:
        the acceptor may still issue P-DATA after the A-RELEASE indication (7.2.2), and a
        requestor awaiting the A-RELEASE-RP takes P-DATA-TF (state Sta7, event Evt10: AR-6,
        Table 9-10). Real servers answer the C-ECHO-RSP first (scan/tests/
        test_echo_then_release_real_servers.py). Raises what :meth:`_receive` raises
        (:class:`ReleasedBeforeAnswer` for a peer that releases first); the association is
        then left to the caller (abort), as for any failed operation.
        """
        link = self._link
        pending: DulError | None = None
        msg_id = 1  # the pipelined exchange's C-ECHO-RQ (associate's echo_and_release)
        if link is not None and link.echo_sent:
            # the C-ECHO-RQ and A-RELEASE-RQ went out when the AC came (associate's
            # echo_and_release): wait for the exchange, or go on from where it handed over
            self._message_id = 1
            self._release_sent = release = True
            await link.echo_done()
            if link.status is not None:  # the C-ECHO-RSP came
                if link.handed:  # (not by the exchange itself) the stream path waits
                    await self._await_release_rp()
                self._link = None
                self._closed = True
                return link.status
            pending, link.error = link.error, None
        else:
            cid, _ts = self._context(dimse.VERIFICATION)
            msg_id = self._next_id()
            pdus = dimse.echo_pdus(msg_id, cid, self.peer_max_pdu)
            self._release_sent = release
            await self._send([*pdus, P.RELEASE_RQ] if release else pdus)
        try:
            if pending is not None:
                self._take_streams()
                raise pending
            reply = await self._receive()
        except (PeerAborted, PeerClosed) as exc:
            if not release:
                raise
            # the end may answer the A-RELEASE-RQ, not the C-ECHO: ambiguous, not a refusal
            raise ReleasedBeforeAnswer(
                f"{exc} after the pipelined A-RELEASE-RQ, before the C-ECHO-RSP"
            ) from exc
        if reply.command_field != dimse.C_ECHO_RSP:
            raise ProtocolViolation(f"expected C-ECHO-RSP, got command 0x{reply.command_field:04x}")
        answered = reply.command.get("MessageIDBeingRespondedTo")
        if answered != msg_id:  # PS3.7 9.3.5.2: (0000,0120) equals the request's (0000,0110)
            raise ProtocolViolation(
                f"C-ECHO-RSP answers message ID {answered}, not the C-ECHO-RQ's {msg_id}"
            )
        if release:
            await self._await_release_rp()
        return reply.status if reply.status is not None else -1

    async def find(
        self,
        sop_class: str,
        identifier: Dataset,
        *,
        max_results: int | None = None,
        max_result_bytes: int = 1 << 20,
    ) -> AsyncIterator[Dataset]:
        """C-FIND: yield each pending match; the final status is in :attr:`last_status`.

        After ``max_results`` matches a C-CANCEL is sent and the remaining responses drained,
        so a huge archive costs a bounded amount of time and memory: at most
        :data:`MAX_RESPONSES_AFTER_CANCEL` responses or ``timeouts.dimse`` seconds after the
        C-CANCEL-RQ, then A-ABORT and :class:`CancelIgnored`.
        """
        _cid, ts = self._context(sop_class)
        async for data in self.find_raw(
            sop_class, identifier, max_results=max_results, max_result_bytes=max_result_bytes
        ):
            yield dimse.decode_dataset(data, ts)

    async def find_raw(
        self,
        sop_class: str,
        identifier: Dataset,
        *,
        max_results: int | None = None,
        max_result_bytes: int = 1 << 20,
    ) -> AsyncIterator[bytes]:
        """Like :meth:`find`, but yields each match still encoded in the context's syntax.

        For callers that read two or three values per match (see :mod:`.peek`).
        """
        cid, ts = self._context(sop_class)
        msg_id = self._next_id()
        self.last_status: int | None = None
        data = dimse.encode_identifier(identifier, ts)
        await self._send(dimse.find_pdus(msg_id, sop_class, cid, self.peer_max_pdu, data))
        count = 0
        cancelled_at: float | None = None
        after_cancel = 0
        loop = asyncio.get_running_loop()
        while True:
            reply = await self._receive(max_result_bytes)
            if reply.command_field != dimse.C_FIND_RSP:
                raise ProtocolViolation(
                    f"expected C-FIND-RSP, got command 0x{reply.command_field:04x}"
                )
            status = reply.status
            if is_pending(status):
                if cancelled_at is not None:
                    # PS3.7 9.1.2.1.6: responses in flight may still come; an endless stream
                    # must not hold the scan (issue 12): bounded in count and seconds
                    after_cancel += 1
                    spent = loop.time() - cancelled_at
                    if after_cancel > MAX_RESPONSES_AFTER_CANCEL or spent > self.timeouts.dimse:
                        await self.abort()
                        raise CancelIgnored(
                            f"C-FIND responses went on after C-CANCEL-RQ (bound: "
                            f"{MAX_RESPONSES_AFTER_CANCEL} responses, {self.timeouts.dimse:g}s)"
                        )
                    continue
                if reply.dataset is not None:
                    count += 1
                    yield reply.dataset
                if max_results is not None and count >= max_results:
                    cancelled_at = loop.time()
                    await self._send(dimse.cancel_pdus(msg_id, cid, self.peer_max_pdu))
                continue
            self.last_status = status
            return

    async def release(self) -> None:
        """A-RELEASE; a peer that does not answer in time is simply disconnected."""
        if self._closed:
            return
        try:
            await self._send([P.RELEASE_RQ])
        except DulError:
            await self.close()
            return
        await self._await_release_rp()

    async def _await_release_rp(self) -> None:
        """Read until the A-RELEASE-RP (or an A-ABORT), at most ``timeouts.release`` seconds,
        then close: a peer that does not answer in time is simply disconnected."""
        try:
            deadline = asyncio.get_running_loop().time() + self.timeouts.release
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                raw = await P.read_pdu(self.reader, timeout=left, max_length=self.max_pdata)
                if self.recorder is not None:
                    self.recorder("in", raw.data)
                if raw.pdu_type in (P.A_RELEASE_RP, P.A_ABORT):
                    break
        except DulError:
            pass
        finally:
            await self.close()

    async def abort(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(Exception):
            if self.recorder is not None:
                self.recorder("out", P.abort_pdu())
            self.writer.write(P.abort_pdu())
            await drain(self.writer, 1.0)
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await close_writer(self.writer)

    async def __aenter__(self) -> Association:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            await self.release()
        else:
            await self.abort()

    async def send_request(
        self, kind: str, sop_class: str, dataset: Dataset, **command: str
    ) -> int:
        """Send a C-STORE-, C-MOVE- or C-GET-RQ (``kind``: pynetdicom's class name, e.g.
        ``"C_GET_RQ"``) of ``sop_class`` with ``dataset`` on its presentation context, medium
        priority, a new MessageID, and the extra command elements ``command`` (keyword ->
        value). Returns the MessageID. Raises what sending raises (dul.errors).
        """
        from pynetdicom import dimse_messages as dm  # request classes dimse.py has no helper for

        cid, ts = self._context(sop_class)
        msg = getattr(dm, kind)()
        cs = msg.command_set
        cs.CommandField = getattr(dimse, kind)
        cs.MessageID = message_id = self._next_id()
        cs.AffectedSOPClassUID = sop_class
        cs.Priority = dimse.PRIORITY_MEDIUM
        for keyword, value in command.items():
            setattr(cs, keyword, value)
        data = dimse.encode_dataset(dataset, ts)
        await self._send(dimse.encode_message(msg, cid, self.peer_max_pdu, data))
        return message_id

    async def store(self, dataset: Dataset) -> int:
        """C-STORE of one instance (its SOP class/instance UIDs); returns the response status.

        Only the scanner's ``--intrusive`` check calls this (one harmless synthetic instance).
        """
        await self.send_request(
            "C_STORE_RQ",
            str(dataset.SOPClassUID),
            dataset,
            AffectedSOPInstanceUID=str(dataset.SOPInstanceUID),
        )
        reply = await self._receive()
        if reply.command_field != dimse.C_STORE_RSP:
            raise ProtocolViolation(
                f"expected C-STORE-RSP, got command 0x{reply.command_field:04x}"
            )
        return reply.status if reply.status is not None else -1

    async def move(
        self, sop_class: str, identifier: Dataset, destination: str, *, max_responses: int = 1000
    ) -> int:
        """C-MOVE to ``destination``; returns the final status.

        ``last_move`` holds how many pending responses came and the final sub-operation counts,
        which say whether the server tried to send anything.
        """
        await self.send_request("C_MOVE_RQ", sop_class, identifier, MoveDestination=destination)
        pending = 0
        for _ in range(max_responses):
            reply = await self._receive(1 << 20)
            if reply.command_field != dimse.C_MOVE_RSP:
                raise ProtocolViolation(
                    f"expected C-MOVE-RSP, got command 0x{reply.command_field:04x}"
                )
            if is_pending(reply.status):
                pending += 1
                continue
            counts = {
                k: int(reply.command.get(f"NumberOf{k.title()}Suboperations") or 0)
                for k in ("completed", "failed", "warning", "remaining")
            }
            self.last_move = {"pending": pending, **counts}
            return reply.status if reply.status is not None else -1
        raise ProtocolViolation(f"more than {max_responses} C-MOVE responses")


async def drain(writer: asyncio.StreamWriter, timeout: float) -> None:
    """``writer.drain()`` within ``timeout`` seconds (TimeoutError after).

    Free when the transport holds nothing unsent and is open, which is almost every time for
    the few hundred bytes of an association request or a C-ECHO: ``drain`` would return at once
    (it only waits above the high-water mark, and only raises once the transport is closing),
    and ``wait_for`` around it cost a Task and a timer per call.
    """
    transport = writer.transport
    if transport.get_write_buffer_size() == 0 and not transport.is_closing():
        return
    async with asyncio.timeout(timeout):
        await writer.drain()


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a stream without letting a peer that never acknowledges stall us."""
    transport = writer.transport
    if transport.get_write_buffer_size() == 0 and transport.get_extra_info("ssl_object") is None:
        # Plain TCP with nothing unsent: close() releases the socket on the loop's next pass
        # whatever we do, so waiting for it (a wakeup and a timer per association) buys nothing.
        with contextlib.suppress(Exception):
            writer.close()
        return
    with contextlib.suppress(Exception):
        writer.close()
        async with asyncio.timeout(1.0):  # not wait_for: no Task per association
            await writer.wait_closed()
    with contextlib.suppress(Exception):
        writer.transport.abort()


#: struct tcp_info (linux/tcp.h): eight one-byte fields, then 32-bit ones; tcpi_total_retrans
#: is the 24th of those (SYN retransmissions included)
_TCP_INFO_LEN = 104
_TOTAL_RETRANS = struct.Struct("=8x92xI")


def _retransmitted(sock: socket.socket | None) -> bool:
    """Did the connection need a TCP retransmission so far (the SYN or the request resent:
    the peer's accept queue was full)? False where TCP_INFO is not available."""
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return False
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return False
    return len(info) >= _TCP_INFO_LEN and _TOTAL_RETRANS.unpack_from(info)[0] > 0


async def associate_on(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: AssociateRequest,
    *,
    timeouts: Timeouts = Timeouts(),
    max_pdata: int = P.DEFAULT_MAX_PDATA,
    recorder: Recorder | None = None,
) -> AssociateOutcome:
    """Send an A-ASSOCIATE-RQ on an open stream and read the answer.

    Raises :class:`DulError` subclasses for silence, garbage, abort or a closed connection; the
    stream is closed in every case but an accepted association.
    """
    async with _closed_on_failure(writer):
        encoded = request.encode()
        if recorder is not None:
            recorder("out", encoded)
        writer.write(encoded)
        await drain(writer, timeouts.associate)
    return await _read_answer(
        reader, writer, request, timeouts=timeouts, max_pdata=max_pdata, recorder=recorder
    )


@contextlib.asynccontextmanager
async def _closed_on_failure(writer: asyncio.StreamWriter) -> AsyncIterator[None]:
    """The A-ASSOCIATE-RQ/answer exchange: any failure closes the stream; silence is
    :class:`PeerTimeout`, a lost connection :class:`PeerClosed`, anything else passes as is."""
    try:
        yield
    except TimeoutError:
        await close_writer(writer)
        raise PeerTimeout("peer stopped reading the request") from None
    except (ConnectionError, OSError) as exc:
        await close_writer(writer)
        raise PeerClosed(f"connection lost: {exc}") from None
    except BaseException:
        await close_writer(writer)
        raise


async def _read_answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: AssociateRequest,
    *,
    timeouts: Timeouts,
    max_pdata: int,
    recorder: Recorder | None,
) -> AssociateOutcome:
    """The A-ASSOCIATE-RQ went out: read and judge its answer (see :func:`associate_on`)."""
    async with _closed_on_failure(writer):
        raw = await P.read_pdu(reader, timeout=timeouts.associate, max_length=max_pdata)
        if recorder is not None:
            recorder("in", raw.data)
        tracker = current_connections.get()
        if tracker is not None and tracker.on_loss is not None and _retransmitted(
            writer.get_extra_info("socket")
        ):
            tracker.on_loss()  # congestion signal for the scan engine (scan.congestion)
        P.raise_if_abort(raw)
        if raw.pdu_type == P.A_ASSOCIATE_RJ:
            reject = decode_reject(P.decode(raw))  # type: ignore[arg-type]
            await close_writer(writer)
            return AssociateOutcome(None, reject)
        if raw.pdu_type != P.A_ASSOCIATE_AC:
            raise ProtocolViolation(f"answered A-ASSOCIATE-RQ with {raw.name}")
        # the byte reader takes every clean AC; pynetdicom decodes the rest (same record)
        accept = read_accept(raw.data, request) or decode_accept(
            P.decode(raw), request, raw=raw.data
        )  # type: ignore[arg-type]
    return AssociateOutcome(
        Association(reader, writer, request, accept, timeouts, max_pdata, recorder), None
    )


async def associate(
    host: str,
    port: int,
    request: AssociateRequest,
    *,
    timeouts: Timeouts = Timeouts(),
    ssl_context: ssl.SSLContext | None = None,
    max_pdata: int = P.DEFAULT_MAX_PDATA,
    recorder: Recorder | None = None,
    echo_and_release: bool = False,
) -> AssociateOutcome:
    """Connect and request an association in one step (``recorder`` sees every PDU).

    ``echo_and_release``: the caller's first request on the association will be
    ``echo(release=True)`` (scan discovery). On a plain connection without a recorder the
    C-ECHO-RQ and A-RELEASE-RQ are then written from the callback that reads a clean
    A-ASSOCIATE-AC accepting Verification, and the C-ECHO-RSP and A-RELEASE-RP are read the
    same way (:class:`_PipelinedEcho`); anything else hands over to the stream path at the
    point reached, so the outcome, errors and records are those of the stream path.
    """
    if echo_and_release and ssl_context is None and recorder is None:
        return await _associate_pipelined(host, port, request, timeouts, max_pdata)
    reader, writer = await open_stream(
        host, port, timeout=timeouts.connect, ssl_context=ssl_context
    )
    return await associate_on(
        reader, writer, request, timeouts=timeouts, max_pdata=max_pdata, recorder=recorder
    )


# -- the discovery exchange as one protocol ----------------------------------------------------
#
# Why hand-written (issue 13): per association, discovery is connect, A-ASSOCIATE-RQ/AC,
# C-ECHO-RQ + A-RELEASE-RQ, C-ECHO-RSP, A-RELEASE-RP. Through asyncio streams that costs a
# StreamReader, its protocol and writer, two readexactly() and an asyncio.timeout (a Timeout
# and a timer) per PDU, and a loop pass between the AC and the C-ECHO-RQ. Measured with
# bench/profile_discovery.py (CPU of the scan and its workers minus start-up, per association,
# median of 3 runs interleaved with the stream path's): Orthanc x 4,096 addresses 0.777 ->
# 0.661 ms, lab fleet x 2,047 0.675 -> 0.615 ms. The protocol
# below only handles the clean exchange; the first unusual event hands the connection to the
# stream path with everything it received, so PDU framing errors, aborts, rejects, unclean
# ACs, fragmented answers and the like are judged by the one general implementation.

_AC, _ECHO, _RELEASE, _DONE = range(4)
_KNOWN_PDUS = P.KNOWN_PDU_TYPES


@functools.lru_cache(maxsize=64)
def _echo_and_release_bytes(context_id: int, max_pdu: int) -> bytes:
    """C-ECHO-RQ (MessageID 1) and A-RELEASE-RQ in one write."""
    return b"".join(dimse.echo_pdus(1, context_id, max_pdu)) + P.RELEASE_RQ


class _PipelinedEcho(asyncio.Protocol):
    """The clean discovery exchange on one connection, driven from the transport callbacks.

    Reads PDUs as :func:`pdu.read_pdu` does (a timeout for the header, then one for the body
    unless it came with it; the same length bounds), in three phases: the A-ASSOCIATE-AC
    (``timeouts.associate``), the C-ECHO-RSP (``timeouts.dimse``), then anything up to the
    A-RELEASE-RP or an A-ABORT within ``timeouts.release`` (errors there only end the wait,
    as in :meth:`Association._await_release_rp`). :meth:`hand_over` gives the connection to
    a StreamReader/StreamWriter pair with the unread bytes, end of stream and loss replayed.
    """

    def __init__(
        self, request: AssociateRequest, timeouts: Timeouts, max_pdata: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.request = request
        self.timeouts = timeouts
        self.max_pdata = max_pdata
        self.loop = loop
        self.buf = bytearray()
        self.phase = _AC
        self.header_ok = False
        self.end = 0
        self.timer: asyncio.TimerHandle | None = None
        #: resolved when the AC phase ends, then again (a new future) when the exchange ends
        self.waiter: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.sock: socket.socket | None = None
        self.eof = False
        self.lost = False
        self.lost_exc: Exception | None = None
        self.handed = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        #: a timeout met in the AC or C-ECHO phase, raised where the stream path would have
        self.error: DulError | None = None
        self.accept: Accept | None = None
        self.echo_sent = False
        self.status: int | None = None
        self.release_deadline = 0.0

    # -- transport callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request.encode())  # type: ignore[attr-defined]
        self._arm(self.timeouts.associate)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.handed and self.phase != _DONE:
            self._advance()

    def eof_received(self) -> bool:
        self.eof = True
        if self.phase == _RELEASE:
            self._finish()
        elif self.phase != _DONE and not self.handed:
            self._unusual()
        return True  # keep the transport open for writing, as a StreamReaderProtocol does

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.lost_exc = True, exc
        if self.phase == _RELEASE:
            self._finish()
        elif self.phase != _DONE and not self.handed:
            self._unusual()

    # -- the exchange ---------------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.handed or self.phase == _DONE:
            return
        if self.phase == _RELEASE:
            self._finish()
            return
        timeout = self.timeouts.associate if self.phase == _AC else self.timeouts.dimse
        self.error = PeerTimeout(f"no data within {timeout:g}s")  # as pdu.read_pdu says it
        if self.phase == _AC:
            self.phase = _DONE
            self._wake()
        else:
            self._unusual()

    def _advance(self) -> None:
        buf = self.buf
        while True:
            if not self.header_ok:
                if len(buf) < 6:
                    return
                kind = buf[0]
                length = int.from_bytes(buf[2:6], "big")
                bound = self.max_pdata if kind == P.P_DATA_TF else P.MAX_ASSOCIATION_PDU
                if kind not in _KNOWN_PDUS or length > bound:
                    if self.phase == _RELEASE:
                        self._finish()  # a malformed PDU only ends the wait for the release
                    else:
                        self._unusual()
                    return
                self.header_ok = True
                self.end = 6 + length
                if len(buf) < self.end and self.phase != _RELEASE:
                    self._arm(self.timeouts.associate if self.phase == _AC
                              else self.timeouts.dimse)  # the body's own timeout
            if len(buf) < self.end:
                return
            pdu = bytes(buf[: self.end])
            kind = pdu[0]
            if self.phase == _AC:
                if not self._accepted(pdu):
                    self._unusual()
                    return
            elif self.phase == _ECHO:
                status = self._echo_status(pdu) if kind == P.P_DATA_TF else None
                if status is None:
                    self._unusual()
                    return
                self.status = status
                self.phase = _RELEASE
                self.release_deadline = self.loop.time() + self.timeouts.release
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = self.loop.call_at(self.release_deadline, self._expired)
            else:  # _RELEASE
                if kind in (P.A_RELEASE_RP, P.A_ABORT):
                    del buf[: self.end]
                    self._finish()
                    return
            del buf[: self.end]
            self.header_ok = False

    def _accepted(self, pdu: bytes) -> bool:
        """A clean AC that accepts Verification: write the C-ECHO-RQ and A-RELEASE-RQ now."""
        if pdu[0] != P.A_ASSOCIATE_AC:
            return False
        accept = read_accept(pdu, self.request)
        found = accept.context_for(dimse.VERIFICATION) if accept is not None else None
        if accept is None or found is None:
            return False
        tracker = current_connections.get()
        if tracker is not None and tracker.on_loss is not None and _retransmitted(self.sock):
            tracker.on_loss()  # congestion signal for the scan engine (scan.congestion)
        self.accept = accept
        self.transport.write(  # type: ignore[union-attr]
            _echo_and_release_bytes(found[0], accept.max_pdu or 0)
        )
        self.echo_sent = True
        self.phase = _ECHO
        self._arm(self.timeouts.dimse)
        self._wake()
        return True

    @staticmethod
    def _echo_status(pdu: bytes) -> int | None:
        """The status of a P-DATA-TF that is exactly one whole C-ECHO-RSP, else None."""
        assembler = dimse.MessageAssembler()
        try:
            messages = assembler.feed(pdu)
        except DulError:
            return None
        if (
            len(messages) != 1
            or not assembler.idle
            or messages[0].command_field != dimse.C_ECHO_RSP
            or messages[0].command.get("MessageIDBeingRespondedTo") != 1  # the stream path says
        ):
            return None
        status = messages[0].status
        return status if status is not None else -1

    def _unusual(self) -> None:
        """Something the clean exchange does not cover: the stream path takes over."""
        self.hand_over()
        self._wake()

    def _finish(self) -> None:
        """The release wait is over (A-RELEASE-RP, A-ABORT, error or time): close."""
        self.phase = _DONE
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            unsent = transport.get_write_buffer_size()
            transport.close()
            if unsent:  # as close_writer does for a peer that never reads
                self.loop.call_later(1.0, transport.abort)
        self._wake()

    def _wake(self) -> None:
        if not self.waiter.done():
            self.waiter.set_result(None)

    # -- the coroutine side ---------------------------------------------------------------------
    def hand_over(self) -> None:
        """Give the connection to a stream pair, exactly where the exchange stands."""
        if self.handed:
            return
        self.handed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        transport = self.transport
        assert transport is not None
        reader = asyncio.StreamReader(limit=1 << 16, loop=self.loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=self.loop)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        if self.buf:
            reader.feed_data(bytes(self.buf))
            self.buf.clear()
        if self.eof:
            protocol.eof_received()
        if self.lost:
            protocol.connection_lost(self.lost_exc)
        self.reader = reader
        self.writer = asyncio.StreamWriter(transport, protocol, reader, self.loop)

    async def echo_done(self) -> None:
        """Wait for the C-ECHO-RSP and the end of the release (:attr:`status` then holds the
        status), or for the stream path to take over (:attr:`error` may then hold the
        timeout to raise)."""
        if self.phase != _DONE and not self.handed:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            except BaseException:
                self.stop_waiting()
                raise

    def stop_waiting(self) -> None:
        """The caller gave up (cancelled, or an error while waiting): no timer, no next phase."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.phase = _DONE


async def _associate_pipelined(
    host: str, port: int, request: AssociateRequest, timeouts: Timeouts, max_pdata: int
) -> AssociateOutcome:
    """:func:`associate` with ``echo_and_release`` on a plain connection (see there)."""
    sock = await tcp_connect(host, port, timeout=timeouts.connect)
    loop = asyncio.get_running_loop()
    link = _PipelinedEcho(request, timeouts, max_pdata, loop)
    link.sock = sock
    try:
        transport, _ = await loop.create_connection(lambda: link, sock=sock)
    except OSError as exc:  # as open_stream
        sock.close()
        raise ConnectFailed("closed", str(exc) or "connection reset") from None
    except BaseException:
        sock.close()
        raise
    tracker = current_connections.get()
    if tracker is not None:
        tracker.add(transport)
    try:
        await link.waiter
    except BaseException:
        link.stop_waiting()
        transport.close()  # as associate_on's close_writer
        raise
    if link.accept is None and link.handed:  # not a clean AC: the stream path reads it
        return await _read_answer(
            link.reader,  # type: ignore[arg-type]
            link.writer,  # type: ignore[arg-type]
            request,
            timeouts=timeouts,
            max_pdata=max_pdata,
            recorder=None,
        )
    if link.accept is None:  # silence: as the stream path, close and raise
        assert link.error is not None
        transport.close()
        raise link.error
    assoc = Association(None, None, request, link.accept, timeouts, max_pdata)  # type: ignore[arg-type]
    assoc._link = link
    if tracker is not None:
        tracker.associated(transport)
    return AssociateOutcome(assoc, None)
