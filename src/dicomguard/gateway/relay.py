"""One association through the gateway: accept, decide, forward, then relay P-DATA both ways.

The request is read and judged *before* anything is sent to the backend, so a refused peer never
costs the legacy device a packet. Once the backend has accepted, P-DATA is relayed PDU by PDU:
only PDV headers are parsed, only command sets (small, bounded) are reassembled and decoded to
apply the per-identity operation policy, and data-set fragments are passed on as the very bytes
that arrived. A PDU whose PDVs are all passed on is written out unchanged; only when the gateway
holds or drops a PDV does it write the kept PDVs out one per PDU (each no larger than the PDU it
came in, so the peer's maximum length still holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as dm

from ..dul import dimse
from ..dul import pdu as P
from ..dul.associate_bytes import AssociateView, parse_associate, rewrite_associate
from ..dul.command import CommandRefused, CommandSet, parse_command_strict
from ..dul.errors import DulError, MalformedPdu, PeerClosed, PeerTimeout, ProtocolViolation
from .audit import PHI_CAPTURE_BYTES, read_phi
from .config import GatewayConfig, Listener
from .policy import (
    REQUEST_OPERATIONS,
    STATUS_OUT_OF_RESOURCES,
    Admission,
    AssociationPolicy,
    Peer,
    RateLimits,
    Refusal,
    decide_operation,
)
from .tls import handshake_failure, start_tls

if TYPE_CHECKING:
    from .audit import AuditTrail, PhiCapture
    from .metrics import Metrics

log = logging.getLogger("dicomguard.gateway")

_LEN = struct.Struct(">L")
_HEADER = struct.Struct(">BBL")
_WRITE_HIGH_WATER = 1 << 20

_RESPONSE_CLASSES: dict[int, type[dm.DIMSEMessage]] = {
    0x0001: dm.C_STORE_RSP,
    0x0010: dm.C_GET_RSP,
    0x0020: dm.C_FIND_RSP,
    0x0021: dm.C_MOVE_RSP,
    0x0030: dm.C_ECHO_RSP,
    0x0100: dm.N_EVENT_REPORT_RSP,
    0x0110: dm.N_GET_RSP,
    0x0120: dm.N_SET_RSP,
    0x0130: dm.N_ACTION_RSP,
    0x0140: dm.N_CREATE_RSP,
    0x0150: dm.N_DELETE_RSP,
}

_ids = itertools.count(1)
_IDENTITY_EXECUTOR: ThreadPoolExecutor | None = None


def _identity_executor() -> ThreadPoolExecutor:
    """The one thread user identities (passcode hashes, JWT signatures) are checked on."""
    global _IDENTITY_EXECUTOR
    if _IDENTITY_EXECUTOR is None:
        _IDENTITY_EXECUTOR = ThreadPoolExecutor(1, thread_name_prefix="dicomguard-identity")
    return _IDENTITY_EXECUTOR


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    """An encoded A-ASSOCIATE-RJ (10 bytes: PS3.8 9.3.4; too small to need pynetdicom)."""
    return bytes([P.A_ASSOCIATE_RJ, 0]) + _LEN.pack(4) + bytes([0, result, source, reason])


#: pending statuses (PS3.7 C.4: every other status is final)
STATUS_PENDING = frozenset(dimse.STATUS_PENDING)


def is_final_status(status: int | None) -> bool:
    return status not in STATUS_PENDING


def is_success_status(status: int | None) -> bool:
    """Success or warning (PS3.7 C: 0x0001, 0x0107, 0x0116, 0xB000-0xBFFF) is not a failure."""
    if status is None:
        return False
    return status in (0x0000, 0x0001, 0x0107, 0x0116) or 0xB000 <= status <= 0xBFFF


def failure_response(request: Dataset, status: int, comment: str = "") -> dm.DIMSEMessage | None:
    """The DIMSE response a refused request gets, or None when there is no response type."""
    kind = _RESPONSE_CLASSES.get(int(request.get("CommandField", -1)))
    if kind is None:
        return None
    msg = dimse.response(kind, request, status)
    cs = msg.command_set
    if comment and "ErrorComment" in cs:
        cs.ErrorComment = comment[:64]
    # pynetdicom's templates list every possible element with an empty value; a response built
    # by hand must drop the unused ones and carry a correct group length, as
    # pynetdicom's own primitive_to_message does.
    for elem in list(cs):
        if elem.tag != 0x00000000 and (elem.value is None or elem.value == ""):
            del cs[elem.tag]
    msg._set_command_group_length()
    return msg


@dataclass
class Shared:
    """What all relays of one gateway share; :meth:`Gateway.reload` swaps config and policy."""

    config: GatewayConfig
    policy: AssociationPolicy
    limits: RateLimits
    audit: AuditTrail
    metrics: Metrics
    tls_context: ssl.SSLContext | None = None
    #: admitted associations (counted against ``limits.max_associations``)
    active: set[Relay] = field(default_factory=set)
    #: connections in association setup, oldest first (a dict keeps insertion order)
    setup: dict[Relay, None] = field(default_factory=dict)
    #: connections in setup by source address
    setup_by_source: dict[str, int] = field(default_factory=dict)
    #: admitted associations by source address
    active_by_source: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Op:
    """A request the backend is working on (for the audit record of its outcome)."""

    operation: str
    sop_class: str
    sop_instance: str
    destination: str | None
    #: the request's command field (a response must answer this command)
    field: int = 0
    find_cap: int = 0
    results: int = 0
    capped: bool = False
    #: what the audit may record of the data set (only with audit.include_phi)
    phi: PhiCapture | None = None


class CommandSetError(MalformedPdu):
    """A command set above the byte or fragment bound: answered with A-ABORT."""


class _Inspector:
    """Per-direction PDV state: reassemble command sets, pass or swallow data fragments.

    ``on_command(context_id, command) -> bool`` decides whether a completed message is passed
    on (True) or dropped with its data set (False); it is called synchronously so the decision
    applies to fragments later in the same PDU. Command sets are read by
    :func:`parse_command_strict`: one the gateway could read otherwise than the peer behind it
    raises :class:`CommandRefused` and ends the association.
    """

    def __init__(
        self, max_bytes: int, max_fragments: int, on_command: Callable[[int, CommandSet], bool]
    ) -> None:
        self.max_bytes = max_bytes
        self.max_fragments = max_fragments
        self.on_command = on_command
        self._cmd = bytearray()
        self._held: list[bytes] = []
        self._cmd_cid: int | None = None
        self._data_cid: int | None = None
        self._data_pass = True
        #: PDUs of the gateway's own for this direction's output (a refusal's response, the
        #: C-CANCEL of a capped C-FIND), held until the message in progress ends: written
        #: inside a PDU or between the PDVs of one message, the peer would read them as part
        #: of it (and the rest of the PDU as a PDU the gateway never judged). Shared with the
        #: pipe (:meth:`_Pipe.send`).
        self.pending: list[bytes] = []
        #: with audit.include_phi: ``capture(fragment, last) -> want_more`` sees the passed
        #: data-set fragments of the current message (gateway/audit.py, PHI)
        self.capture: Callable[[bytes, bool], bool] | None = None

    def feed(self, pdu: bytes) -> list[bytes]:
        """One P-DATA-TF in; the PDUs to send on out (``[pdu]`` itself when nothing changed).

        PDV headers are walked here rather than with :func:`dimse.iter_pdvs` because that copies
        every fragment; on the data path the gateway only needs the offsets.
        """
        end = len(pdu)
        pos = 6
        passed: list[tuple[int, int]] = []  # (start, end) of whole PDV items passed on
        changed = bool(self._held)
        out: list[bytes] = []
        while pos < end:
            if pos + 6 > end:
                raise MalformedPdu("truncated PDV item header")
            (length,) = _LEN.unpack_from(pdu, pos)
            item_end = pos + 4 + length
            if length < 2 or item_end > end:
                raise MalformedPdu(f"PDV item length {length} does not fit the PDU")
            cid = pdu[pos + 4]
            hdr = pdu[pos + 5]
            if hdr & 0x01:
                if self._data_cid is not None:
                    raise ProtocolViolation("command fragment inside a data set")
                if self._cmd_cid is not None and cid != self._cmd_cid:
                    raise ProtocolViolation("command fragments on two presentation contexts")
                # the common case, a whole command set in one PDV, is read in place
                whole = hdr & 0x02 and not self._held
                if not whole:
                    self._cmd_cid = cid
                    self._cmd += pdu[pos + 6 : item_end]
                    self._held.append(pdu[pos:item_end])
                    if len(self._held) > self.max_fragments:
                        raise CommandSetError(
                            f"command set in more than {self.max_fragments} PDVs")
                raw = pdu[pos + 6 : item_end] if whole else self._cmd
                if len(raw) > self.max_bytes:
                    raise CommandSetError(f"command set above {self.max_bytes} bytes")
                if hdr & 0x02:
                    passes, has_data = self._complete(cid, raw if whole else bytes(raw))
                    if not passes:
                        changed = True
                    elif whole and not changed:
                        passed.append((pos, item_end))
                    else:
                        changed = True
                        if whole:
                            out.append(_wrap(pdu[pos:item_end]))
                        else:
                            out.extend(_wrap(item) for item in self._held)
                    if not whole:
                        self._cmd = bytearray()
                        self._held = []
                        self._cmd_cid = None
                    if has_data:
                        self._data_cid = cid
                        self._data_pass = passes
                else:
                    changed = True
            else:
                if self._data_cid is None:
                    raise ProtocolViolation("data set fragment before its command set")
                if cid != self._data_cid:
                    raise ProtocolViolation("data set fragments on two presentation contexts")
                if self._data_pass:
                    if changed:
                        out.append(_wrap(pdu[pos:item_end]))
                    else:
                        passed.append((pos, item_end))
                    if self.capture is not None and not self.capture(
                            pdu[pos + 6 : item_end], bool(hdr & 0x02)):
                        self.capture = None
                else:
                    changed = True
                if hdr & 0x02:
                    self._data_cid = None
                    self.capture = None
            pos = item_end
            if self.pending and self.at_boundary():
                changed = True
                out.extend(self.pending)
                self.pending.clear()
        if not changed:
            return [pdu]
        # Something was held or dropped: what was passed before that point goes out first.
        return [_wrap(pdu[s:e]) for s, e in passed] + out

    def at_boundary(self) -> bool:
        """Whether the peer has been sent no part of a message in progress (PDUs of the
        gateway's own may go out now)."""
        return not self._held and (self._data_cid is None or not self._data_pass)

    def may_stream(self, cid: int, hdr: int) -> bool:
        """Whether a PDU holding one PDV with this header can go through untouched.

        True for a data-set fragment that continues a passed data set on its presentation
        context (the state is advanced as :meth:`feed` would); anything else, including every
        protocol error, returns False so that :meth:`feed` handles and reports it.
        """
        if (hdr & 0x01 or self._held or cid != self._data_cid or not self._data_pass
                or self.capture is not None):
            return False
        if hdr & 0x02:
            self._data_cid = None
        return True

    def _complete(self, cid: int, raw: bytes) -> tuple[bool, bool]:
        command = parse_command_strict(raw)
        return self.on_command(cid, command), command.has_dataset


def _wrap(item: bytes) -> bytes:
    return _HEADER.pack(P.P_DATA_TF, 0, len(item)) + item


class RelayAbort(Exception):
    """End the association with A-ABORT to both sides (the message says why).

    ``abort_reason`` goes to the client in the A-ABORT (source 2, service provider; PS3.8
    9.3.8): 0 reason not specified, 6 invalid PDU parameter value (a refused command set).
    """

    def __init__(self, message: str, abort_reason: int = 0) -> None:
        super().__init__(message)
        self.abort_reason = abort_reason


#: how long an aborted client may take to close its end (the ARTIM timer, PS3.8 9.1.5)
ARTIM_SECONDS = 1.0

#: P-DATA PDUs at least this long are streamed through as they arrive when they hold one
#: data-set PDV that passes; shorter ones are gathered whole (a copy too small to matter).
STREAM_MIN = 8192

#: PDUs of the gateway's own that may wait for the end of a message in progress (one per
#: refused request of the peer on the other side: a bound on what a flood of them holds)
MAX_PENDING = 256


class _Pipe(asyncio.Protocol):
    """One direction of the data phase: the protocol of the socket it reads from.

    It replaces the stream protocol of that socket when the association is accepted. Bytes are
    parsed PDU by PDU as they arrive and written to the other socket in the same callback, with
    no task switch in between. A large P-DATA-TF that carries one data-set fragment of a passed
    message is forwarded chunk by chunk (``stream_left``); every other PDU is gathered whole
    and goes through :class:`_Inspector`. Back-pressure: when the other socket's send buffer is
    full, the other pipe pauses reading on this one.
    """

    def __init__(self, relay: Relay, direction: str, inspector: _Inspector) -> None:
        self.relay = relay
        self.direction = direction
        self.inspector = inspector
        self.max_len = relay.config.limits.max_pdu_bytes
        self.counter = relay.shared.metrics.bytes.child(direction=direction)
        self.transport: asyncio.Transport | None = None
        self.out: asyncio.Transport | None = None  # the other socket
        self.other: _Pipe | None = None
        self.buf = bytearray()  # the current PDU while gathered
        self.want = 6  # bytes of the current PDU needed before the next decision
        self.stream_left = 0
        #: output of the current arrival: (start, end) ranges of its bytes, or bytes objects
        self.parts: list[tuple[int, int] | bytes] = []
        #: where the PDU being gathered began in the current arrival (None: in an earlier one)
        self.pdu_start: int | None = None
        self.consuming = False  # inside _consume: writes of the relay's own queue behind parts
        self.closed = False
        #: when the first byte of the PDU in progress arrived, and its announced length (0
        #: until its header is in): the watchdog's per-PDU deadline (Limits.pdu_timeout)
        self.pdu_since = 0.0
        self.pdu_length = 0
        self.held_back = False  # reading paused by back-pressure (:meth:`_hold`)
        self._holds: set[str] = set()  # why: "other" and/or "own" socket's send buffer full
        self._stream_protocol: asyncio.BaseProtocol | None = None
        self._leftover = b""
        self._eof = False

    def attach(self, reader: asyncio.StreamReader, transport: asyncio.BaseTransport,
               other: _Pipe) -> None:
        """Take over ``transport`` from its stream, including bytes the stream still holds."""
        # not an isinstance check: uvloop's transports do not derive from asyncio.Transport
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.other = other
        self.out = other.transport or None
        other.out = transport
        self._stream_protocol = transport.get_protocol()
        transport.set_protocol(self)
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        # StreamReader has no public "take what is buffered without waiting"; its buffer is
        # read once, here, so that bytes that came with the A-ASSOCIATE exchange are not lost.
        # They are consumed by :meth:`start` once both pipes are attached, before the loop
        # runs again: a read callback of this socket may already be queued in the loop, and
        # bytes it delivers must come after these (with ``call_soon`` they came before them
        # now and then, the PDU stream was misparsed and the association hung).
        self._leftover = bytes(reader._buffer)
        reader._buffer.clear()
        self._eof = reader.at_eof()

    def start(self) -> None:
        """Consume what the stream held, then let the socket deliver (both pipes attached)."""
        assert self.transport is not None
        leftover, self._leftover = self._leftover, b""
        if leftover:
            self.data_received(leftover)
        if self._eof:
            self._fail(RelayAbort(f"{self.direction}: connection closed"))
        self.transport.resume_reading()

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.relay.last_activity = time.monotonic()
        self.counter.add(len(data))
        try:
            self._consume(data)
        except (RelayAbort, DulError) as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self._fail(RelayAbort(f"{self.direction}: connection closed"))
        self.relay._peer_closed(self.direction)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RelayAbort(f"{self.direction}: {exc or 'connection closed'}"))
        self.relay._peer_closed(self.direction)
        if self._stream_protocol is not None:  # so that StreamWriter.wait_closed() returns
            self._stream_protocol.connection_lost(exc)
            self._stream_protocol = None

    def pause_writing(self) -> None:
        """This pipe's socket takes no more: stop reading what would be written to it. On the
        client's socket that includes the client itself, whose refused requests the gateway
        answers without the backend (and so without the back-pressure on the backend's
        answers): a client that sends and never reads would otherwise fill memory with them."""
        if self.other is not None:
            self.other._hold("other", True)
        if self.direction == "up":
            self._hold("own", True)

    def resume_writing(self) -> None:
        if self.other is not None:
            self.other._hold("other", False)
        if self.direction == "up":
            self._hold("own", False)

    def _hold(self, why: str, hold: bool) -> None:
        """Pause or resume reading this pipe's socket for one reason; it reads again when no
        reason is left."""
        if self.transport is None:
            return
        was = bool(self._holds)
        if hold:
            self._holds.add(why)
        else:
            self._holds.discard(why)
        if bool(self._holds) == was:
            return
        self.held_back = bool(self._holds)
        if self.held_back:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()
            # time spent paused by back-pressure is not the sender's: its PDU clock restarts
            self.pdu_since = time.monotonic()

    def pdu_overdue(self, now: float, base: float, rate: float) -> str | None:
        """Why the PDU in progress is past its deadline (``base + length / rate`` seconds from
        its first byte), or None when there is none or it still has time."""
        if not (self.buf or self.stream_left) or self.closed or self.held_back:
            return None
        allowed = base + self.pdu_length / rate
        if now - self.pdu_since <= allowed:
            return None
        return (f"{self.direction}: PDU of {self.pdu_length} bytes not complete within "
                f"{allowed:g}s")

    # -- parsing ------------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if not self.closed:
            self.closed = True
            self.relay._end(exc)

    def _consume(self, data: bytes) -> None:
        """Parse what arrived and write what passes, in one write at the end.

        Bytes that pass unchanged are recorded as ranges of ``data``, and adjacent ranges
        merge, so an arrival that only continues and starts data-set PDUs (the bulk of a
        transfer) goes out as ``data`` itself: no copy and one ``send``, as a blind relay
        would. Only PDUs the gateway changed or that straddle arrivals are joined. (On
        loopback every ``send`` also runs the receiver's TCP path; one per PDU piece cost more
        than the gateway's own work.)
        """
        out = self.out
        assert out is not None
        parts = self.parts
        pos, n = 0, len(data)
        self.consuming = True
        try:
            while pos < n and not self.closed:
                if self.stream_left:
                    take = min(self.stream_left, n - pos)
                    self._range(pos, pos + take)
                    self.stream_left -= take
                    pos += take
                    self._flush_pending()
                    continue
                if not self.buf:
                    self.pdu_start = pos
                    self.pdu_since = self.relay.last_activity  # this arrival's time
                    self.pdu_length = 0
                need = self.want - len(self.buf)
                if need > n - pos:
                    self.buf += memoryview(data)[pos:]
                    self.pdu_start = None
                    return
                self.buf += memoryview(data)[pos : pos + need]
                pos += need
                if len(self.buf) == 6:
                    self._header(pos)
                elif len(self.buf) == 12 and self.want == 12:
                    self._try_stream(pos)
                else:
                    self._whole(bytes(self.buf), pos)
                    self._flush_pending()
        finally:
            self.consuming = False
            if self.buf:  # a PDU continues in the next arrival: its start is not in that one
                self.pdu_start = None
            if parts:
                if len(parts) == 1 and isinstance(parts[0], tuple):
                    start, end = parts[0]
                    out.write(data if end - start == n else memoryview(data)[start:end])
                else:
                    view = memoryview(data)
                    out.write(b"".join(view[p[0] : p[1]] if isinstance(p, tuple) else p
                                       for p in parts))
                parts.clear()

    def send(self, data: bytes) -> None:
        """Write ``data`` (whole PDUs of the gateway's own) after everything this pipe has let
        through so far, at the first point between two messages: at once when the pipe is
        there, else when the message in progress ends (:attr:`_Inspector.pending`)."""
        pending = self.inspector.pending
        if self.consuming or self.stream_left or pending or not self.inspector.at_boundary():
            if len(pending) >= MAX_PENDING:
                raise RelayAbort(f"{self.direction}: more than {MAX_PENDING} PDUs of the "
                                 "gateway's own waiting for the end of a message")
            pending.append(data)
        elif self.out is not None:
            self.out.write(data)

    def _flush_pending(self) -> None:
        """Between two PDUs: the gateway's own PDUs go out if no message is in progress."""
        pending = self.inspector.pending
        if pending and not self.stream_left and self.inspector.at_boundary():
            self.parts.extend(pending)
            pending.clear()

    def _range(self, start: int, end: int) -> None:
        parts = self.parts
        if parts and isinstance(parts[-1], tuple) and parts[-1][1] == start:
            parts[-1] = (parts[-1][0], end)
        else:
            parts.append((start, end))

    def _verbatim(self, end: int) -> None:
        """The current PDU's gathered bytes pass unchanged (as a range when it began in this
        arrival)."""
        if self.pdu_start is not None:
            self._range(self.pdu_start, end)
        else:
            self.parts.append(bytes(self.buf))

    def _header(self, pos: int) -> None:
        pdu_type, _, length = _HEADER.unpack(self.buf)
        self.pdu_length = length
        if pdu_type not in P.PDU_NAMES:
            raise RelayAbort(f"{self.direction}: not a PDU (type 0x{pdu_type:02x})")
        bound = self.max_len if pdu_type == P.P_DATA_TF else P.MAX_ASSOCIATION_PDU
        if length > bound:
            raise RelayAbort(f"{self.direction}: PDU of {length} bytes above {bound}")
        if length == 0:
            self._whole(bytes(self.buf), pos)
        elif pdu_type == P.P_DATA_TF and length >= STREAM_MIN:
            self.want = 12
        else:
            self.want = 6 + length

    def _try_stream(self, pos: int) -> None:
        """Twelve bytes in: the PDU header and the first PDV header. Stream if allowed."""
        (length,) = _LEN.unpack_from(self.buf, 2)
        (pdv_len,) = _LEN.unpack_from(self.buf, 6)
        if pdv_len + 4 != length or not self.inspector.may_stream(self.buf[10], self.buf[11]):
            self.want = 6 + length
            return
        self._verbatim(pos)
        self.stream_left = length - 6
        self.buf.clear()
        self.want = 6

    def _whole(self, data: bytes, pos: int) -> None:
        """A complete PDU (header included) that was gathered; it ends at ``pos``."""
        pdu_type = data[0]
        if pdu_type == P.P_DATA_TF:
            relay = self.relay
            try:
                chunks = self.inspector.feed(data)
            except (CommandSetError, CommandRefused) as exc:
                relay.shared.metrics.aborts.inc(reason="command-set")
                relay.shared.audit.protocol_violation(relay, f"{self.direction}: {exc}")
                log.info("association %d: %s: %s", relay.id, self.direction, exc)
                raise RelayAbort(f"{self.direction}: {exc}", 6) from None
            except (MalformedPdu, ProtocolViolation) as exc:
                relay.shared.metrics.aborts.inc(reason="protocol")
                relay.shared.audit.protocol_violation(relay, f"{self.direction}: {exc}")
                raise RelayAbort(f"{self.direction}: {exc}") from None
            if len(chunks) == 1 and chunks[0] is data:
                self._verbatim(pos)
            else:
                self.parts.extend(chunks)
        elif pdu_type in (P.A_RELEASE_RQ, P.A_RELEASE_RP, P.A_ABORT):
            if len(data) != 10:
                # PS3.8 9.3.6-9.3.8: these PDUs are 10 bytes. DCMTK, pynetdicom and Orthanc
                # read the announced length, but a device that reads the fixed 10 bytes would
                # take the rest for a PDU the gateway never judged: nothing else goes through.
                relay = self.relay
                relay.shared.metrics.aborts.inc(reason="protocol")
                why = f"{self.direction}: {P.PDU_NAMES[pdu_type]} of {len(data)} bytes"
                relay.shared.audit.protocol_violation(relay, why)
                raise RelayAbort(why)
            self._verbatim(pos)
            if pdu_type == P.A_RELEASE_RP:
                self.closed = True
                self.relay._end("released")
            elif pdu_type == P.A_ABORT:
                self.closed = True
                self.relay._end(
                    f"aborted by {'client' if self.direction == 'up' else 'backend'}")
        else:
            raise RelayAbort(f"{self.direction}: unexpected {P.PDU_NAMES[pdu_type]}")
        self.buf.clear()
        self.want = 6


class Relay:
    """One client connection, from the A-ASSOCIATE-RQ to release or abort."""

    def __init__(
        self,
        shared: Shared,
        listener: Listener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.shared = shared
        self.config = shared.config  # snapshot: a reload does not change a live association
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.id = next(_ids)
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        self.peer_address = str(peer[0])
        self.peer_port = int(peer[1])
        self.backend_reader: asyncio.StreamReader | None = None
        self.backend_writer: asyncio.StreamWriter | None = None
        self.admission: Admission | None = None
        self.calling_aet = ""
        self.called_aet = ""
        #: the client's requests outstanding at the backend, by MessageID (PS3.7 9.1.1.1: an ID
        #: is unique among a requestor's outstanding requests); a response is matched to its
        #: request by MessageIDBeingRespondedTo, never by order
        self.ops: dict[int, _Op] = {}
        #: C-FINDs past their cap: the client has its final status (and may use the ID again),
        #: the backend's late responses to them are swallowed until its own final one
        self.capped: dict[int, _Op] = {}
        #: the backend's requests outstanding at the client (C-GET's C-STORE sub-operations)
        self.backend_requests: dict[int, int] = {}
        #: accepted presentation context ID -> abstract syntax (set when the AC is relayed)
        self.proposed: dict[int, str] = {}
        self.accepted: dict[int, str] = {}
        #: accepted transfer syntax by presentation context ID (only with audit.include_phi)
        self.transfer_syntaxes: dict[int, str] = {}
        #: audit messages of this association's operations, rendered once (gateway/audit.py)
        self.audit_cache: dict[tuple[Any, ...], tuple[bool, tuple[str, str, str]]] = {}
        #: metrics.operations counters by (operation, result), looked up once (:meth:`_count`)
        self._op_counters: dict[tuple[str, str], Any] = {}
        self.last_activity = time.monotonic()
        self._pipes: dict[str, _Pipe] = {}  # the data phase's two directions
        self.stopping = False
        self._started = time.monotonic()
        self._in_setup = False
        self._admitted = False
        self._evicted = False
        self._task: asyncio.Task[None] | None = None

    # -- association setup --------------------------------------------------------------------
    async def run(self) -> None:
        shared = self.shared
        self._task = asyncio.current_task()
        try:
            if self._enter_setup():
                await self._run()
        except (DulError, OSError, TimeoutError, ssl.SSLError) as exc:
            if self._in_setup and isinstance(exc, TimeoutError | PeerTimeout):
                shared.metrics.setup_closed.inc(reason="timeout")
                log.debug("connection %d from %s: association setup timed out",
                          self.id, self.peer_address)
        except asyncio.CancelledError:
            if not self._evicted:
                raise
        except Exception:  # a bug must cost one association, never the listener
            log.exception("association %d: unexpected failure", self.id)
            self.shared.metrics.aborts.inc(reason="internal")
            self._abort_both()
        finally:
            self._leave_setup()
            if self._admitted:
                shared.active.discard(self)
                shared.metrics.active.dec()
                left = shared.active_by_source.get(self.peer_address, 1) - 1
                if left > 0:
                    shared.active_by_source[self.peer_address] = left
                else:
                    shared.active_by_source.pop(self.peer_address, None)
            await self._close_all()

    def _enter_setup(self) -> bool:
        """Count this connection as in setup; False (closed at once) when its source is at
        ``limits.max_setup_per_source``. At ``limits.max_setup``, the oldest connection in
        setup of the source that holds the most is closed to make room: an attacker holding
        half-open connections, even from many addresses, cannot keep a client out."""
        shared = self.shared
        lim = self.config.limits
        source = self.peer_address
        if shared.setup_by_source.get(source, 0) >= lim.max_setup_per_source:
            shared.metrics.setup_closed.inc(reason="per-source-limit")
            shared.audit.setup_refused(source, "per-source-limit")
            return False
        while len(shared.setup) >= lim.max_setup:
            # the oldest connection of the source holding the most: a client with one
            # connection in setup is evicted only when every source holds just one
            crowded = max(shared.setup_by_source.items(), key=lambda item: item[1])[0]
            next(r for r in shared.setup if r.peer_address == crowded)._evict()
        shared.setup[self] = None
        shared.setup_by_source[source] = shared.setup_by_source.get(source, 0) + 1
        shared.metrics.setup.inc()
        self._in_setup = True
        return True

    def _leave_setup(self) -> None:
        if not self._in_setup:
            return
        self._in_setup = False
        shared = self.shared
        shared.setup.pop(self, None)
        left = shared.setup_by_source.get(self.peer_address, 1) - 1
        if left > 0:
            shared.setup_by_source[self.peer_address] = left
        else:
            shared.setup_by_source.pop(self.peer_address, None)
        shared.metrics.setup.dec()

    def _evict(self) -> None:
        """Close this connection, still in setup, to make room for a newer one."""
        self.shared.metrics.setup_closed.inc(reason="evicted")
        self.shared.audit.setup_refused(self.peer_address, "evicted")
        self.close_setup()

    def close_setup(self) -> None:
        """Close this connection if it is still in setup (no association yet: a stop does not
        wait for it)."""
        if not self._in_setup:
            return
        self._leave_setup()
        self._evicted = True
        if self._task is not None:
            self._task.cancel()

    async def _read_request(self) -> tuple[P.RawPdu, dict[str, Any] | None]:
        """TLS handshake (on a TLS listener) and the A-ASSOCIATE-RQ, both within
        ``limits.associate_timeout`` in total."""
        lim = self.config.limits
        peer_cert = None
        async with asyncio.timeout(lim.associate_timeout):
            if self.listener.tls:
                context = self.shared.tls_context
                if context is None:
                    raise PeerClosed("TLS listener without a TLS context")
                try:
                    await start_tls(self.writer, context, lim.associate_timeout)
                except (ssl.SSLError, OSError) as exc:
                    self._tls_refused(exc)
                    raise
                peer_cert = self.writer.get_extra_info("peercert") or None
            raw = await P.read_pdu(self.reader, timeout=lim.associate_timeout)
        return raw, peer_cert

    def _tls_refused(self, exc: BaseException) -> None:
        """A refused TLS handshake: counted, audited (Security Alert, Node Authentication)
        and logged in one line."""
        failure = handshake_failure(exc)
        self.shared.metrics.tls_failures.inc(reason=failure.reason)
        if failure.reason == "closed":  # a probe or health check that hung up: not a refusal
            return
        self.shared.audit.tls_refused(self.peer_address, failure)
        log.info("connection %d from %s: TLS handshake refused: %s",
                 self.id, self.peer_address, failure.describe())

    async def _run(self) -> None:
        cfg = self.config
        raw, peer_cert = await self._read_request()
        if raw.pdu_type != P.A_ASSOCIATE_RQ:
            self.writer.write(P.abort_pdu(2, 2))  # unexpected PDU
            return
        try:
            rq = parse_associate(raw.data)
        except MalformedPdu:
            # Counted before the reply: a peer that has its A-ABORT finds it in the metrics.
            self.shared.metrics.associations.inc(result="malformed")
            self.writer.write(P.abort_pdu(2, 6))  # invalid PDU parameter value
            return
        self.called_aet = rq.called_ae_title
        self.calling_aet = rq.calling_ae_title
        peer = Peer(self.peer_address, self.listener.tls, peer_cert)
        # A refused connection stays counted in setup until it is closed: _refuse waits for
        # the peer to close first, and uncounted, those waits were a way to hold sockets
        # without bound (a flood of refused requests that never close).
        if len(self.shared.active) >= cfg.limits.max_associations:
            await self._refuse(Refusal(2, 3, 2, "too many associations", "limit"))
            return
        by_source = self.shared.active_by_source
        if by_source.get(self.peer_address, 0) >= cfg.limits.max_associations_per_source:
            await self._refuse(Refusal(2, 3, 2, "too many associations from this source",
                                       "limit"))
            return
        if rq.user_information:
            # A passcode costs ~70 ms of scrypt (measured here): on the event loop, every
            # attempt with a wrong one froze every association of the gateway for that long.
            # One worker thread: checks stay serial (the JWT replay cache is not shared
            # between threads) and the connection stays counted in setup until judged, so
            # what an attacker can queue is bounded by limits.max_setup(_per_source).
            decision = await asyncio.get_running_loop().run_in_executor(
                _identity_executor(), self.shared.policy.decide, peer, rq)
        else:
            decision = self.shared.policy.decide(peer, rq)
        if isinstance(decision, Refusal):
            await self._refuse(decision)
            return
        self._leave_setup()
        self.admission = decision
        self._admitted = True
        self.shared.active.add(self)
        by_source[self.peer_address] = by_source.get(self.peer_address, 0) + 1
        self.shared.metrics.active.inc()
        if not await self._forward_request(raw.data, rq, decision):
            return
        await self._relay()

    async def _refuse(self, refusal: Refusal) -> None:
        # Counted and audited first: a peer that has its RJ must find it in the metrics.
        self.shared.metrics.associations.inc(result=f"rejected-{refusal.check}")
        self.shared.audit.association(self, accepted=False, why=refusal.why, check=refusal.check)
        log.info(
            "association %d from %s (%s → %s) refused: %s",
            self.id,
            self.peer_address,
            self.calling_aet,
            self.called_aet,
            refusal.why,
        )
        self.writer.write(reject_pdu(refusal.result, refusal.source, refusal.reason))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), 2.0)
        # PS3.8: after an RJ the requestor closes; give it a moment, then close ourselves.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader.read(1), 1.0)

    async def _forward_request(self, data: bytes, rq: AssociateView, adm: Admission) -> bool:
        cfg = self.config
        route = adm.route
        self.proposed = rq.contexts
        out = rewrite_associate(
            data,
            rq,
            called=route.backend_aet,
            calling=route.calling_aet or rq.calling_ae_title,
            strip_identity=route.user_identity == "strip",
        )
        try:
            self.backend_reader, self.backend_writer = await asyncio.wait_for(
                asyncio.open_connection(route.backend_host, route.backend_port, limit=1 << 18),
                cfg.limits.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            await self._refuse(Refusal(2, 3, 1, f"backend unreachable: {exc}", "backend"))
            return False
        self.backend_writer.write(out)
        await self.backend_writer.drain()
        try:
            raw = await P.read_pdu(self.backend_reader, timeout=cfg.limits.associate_timeout)
        except DulError as exc:
            self.writer.write(P.abort_pdu(2, 0))
            self.shared.metrics.associations.inc(result="backend-failed")
            self.shared.audit.association(
                self, accepted=False, why=f"backend: {exc}", check="backend"
            )
            return False
        if raw.pdu_type == P.A_ASSOCIATE_RJ:
            self.writer.write(raw.data)
            await self.writer.drain()
            self.shared.metrics.associations.inc(result="rejected-backend")
            self.shared.audit.association(
                self, accepted=False, why="backend rejected", check="backend"
            )
            return False
        if raw.pdu_type != P.A_ASSOCIATE_AC:
            self.writer.write(P.abort_pdu(2, 0))
            self.shared.metrics.associations.inc(result="backend-failed")
            self.shared.audit.association(
                self, accepted=False, why=f"backend sent {raw.name}", check="backend"
            )
            return False
        self.writer.write(self._rewrite_accept(raw, adm))
        await self.writer.drain()
        self.shared.metrics.associations.inc(result="accepted")
        self.shared.audit.association(self, accepted=True, why="", check="")
        return True

    def _rewrite_accept(self, raw: P.RawPdu, adm: Admission) -> bytes:
        """The backend's AC with the client's AE titles and the gateway's identity answer.

        With ``user_identity = "strip"`` the backend never saw the identity, so the gateway,
        which verified it, answers for it when the client asked for a response (PS3.7
        D.3.3.7.2: an empty server response for username/passcode; a JWT is not echoed).
        """
        ac = parse_associate(raw.data)
        self.accepted = {cid: self.proposed[cid] for cid, result in ac.contexts.items()
                         if result == "0" and cid in self.proposed}
        if self.config.audit.include_phi:  # the audit names the transfer syntax of each query
            with contextlib.suppress(DulError):
                self.transfer_syntaxes = {
                    item.context_id: str(item.transfer_syntax)
                    for item in P.decode(raw).presentation_context  # type: ignore[attr-defined]
                    if item.result == 0 and item.transfer_syntax}
        strip = adm.route.user_identity == "strip"
        ui = adm.user_identity
        return rewrite_associate(
            raw.data,
            ac,
            called=self.called_aet or "ANY",
            calling=self.calling_aet or "ANY",
            strip_identity=strip,
            identity_answer=strip and ui is not None and bool(ui.positive_response_requested),
        )

    # -- P-DATA relay -------------------------------------------------------------------------
    async def _relay(self) -> None:
        """Hand both sockets to :class:`_Pipe` protocols and wait for the association to end.

        The association phase above reads through streams (simple, bounded, awaitable); the
        data phase does not, because every PDU through a stream costs a buffer copy and a
        coroutine wake-up per hop. Each pipe parses PDUs in ``data_received`` and writes to the
        other socket in the same callback, and streams the bytes of large data-set PDUs through
        as they arrive (cut-through) instead of holding whole PDUs.
        """
        assert self.backend_reader is not None and self.backend_writer is not None
        lim = self.config.limits
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._client_gone: asyncio.Future[None] = loop.create_future()
        up = _Pipe(self, "up", _Inspector(
            lim.max_command_bytes, lim.max_command_fragments, self._on_request))
        down = _Pipe(self, "down", _Inspector(
            lim.max_command_bytes, lim.max_command_fragments, self._on_response))
        self._pipes = {"up": up, "down": down}
        up.attach(self.reader, self.writer.transport, down)
        down.attach(self.backend_reader, self.backend_writer.transport, up)
        up.start()
        down.start()
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await asyncio.wait([self._done, watchdog], return_when=asyncio.FIRST_COMPLETED)
            if not self._done.done():
                exc: BaseException | None = watchdog.exception()
            else:
                exc = self._done.exception()
            if exc is None:
                reason = str(self._done.result())
            elif isinstance(exc, RelayAbort | DulError):
                reason = str(exc) or type(exc).__name__
                self._abort_both(getattr(exc, "abort_reason", 0))
                await self._linger()
            else:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("association %d: relay failed", self.id, exc_info=exc)
                self._abort_both()
                await self._linger()
        finally:
            up.closed = down.closed = True
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
        log.debug(
            "association %d (%s from %s) ended: %s",
            self.id,
            self.calling_aet,
            self.peer_address,
            reason,
        )
        self.shared.audit.association_end(self, reason)

    def _peer_closed(self, direction: str) -> None:
        gone = getattr(self, "_client_gone", None)
        if direction == "up" and gone is not None and not gone.done():
            gone.set_result(None)

    async def _linger(self) -> None:
        """After an A-ABORT, give the client up to ``ARTIM_SECONDS`` to close (PS3.8 9.1.5, the
        ARTIM timer, run in state Sta13 of 9.2), reading and dropping what it still sends.
        Closing with unread bytes makes the kernel reset the connection, and the reset could
        destroy the A-ABORT before the client read it ("connection dropped without an
        A-ABORT")."""
        with contextlib.suppress(Exception):
            self.writer.transport.resume_reading()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._client_gone), ARTIM_SECONDS)

    def _end(self, reason: str | BaseException) -> None:
        """Called by a pipe: the association is over (released, aborted or failed)."""
        done = getattr(self, "_done", None)
        if done is None or done.done():
            return
        if isinstance(reason, BaseException):
            done.set_exception(reason)
        else:
            done.set_result(reason)

    async def _watchdog(self) -> None:
        """Abort an association idle for longer than ``limits.idle_timeout``, or whose PDU in
        progress (either direction) is past its deadline (``limits.pdu_timeout`` plus its
        length at ``limits.min_pdu_rate``). Checked coarsely, so the data path pays no timer
        per PDU: a deadline is enforced within a quarter of ``pdu_timeout`` (at most 5 s)."""
        lim = self.config.limits
        idle = lim.idle_timeout
        while True:
            await asyncio.sleep(min(5.0, idle / 2, lim.pdu_timeout / 4))
            now = time.monotonic()
            if now - self.last_activity > idle:
                raise RelayAbort(f"idle for more than {idle:g}s")
            for pipe in self._pipes.values():
                late = pipe.pdu_overdue(now, lim.pdu_timeout, lim.min_pdu_rate)
                if late is not None:
                    self.shared.metrics.aborts.inc(reason="pdu-deadline")
                    self.shared.audit.protocol_violation(self, late)
                    raise RelayAbort(late)

    # -- policy on commands -------------------------------------------------------------------
    def _check_context(self, cid: int, values: dict[str, int | str]) -> int:
        """A command must arrive on an accepted presentation context, and a request naming a
        SOP class must name that context's abstract syntax (PS3.7 9.1.1, 10.1.1; PS3.8 7.1.1.13):
        otherwise the backend, not the gateway, would decide which service it is. Returns the
        command field."""
        syntax = self.accepted.get(cid)
        if syntax is None:
            raise CommandRefused(f"command on presentation context {cid}, which was not accepted")
        field_ = int(values["CommandField"])
        if field_ & 0x8000:
            return field_
        sop_class = values.get("AffectedSOPClassUID") or values.get("RequestedSOPClassUID")
        if sop_class is not None and sop_class != syntax:
            raise CommandRefused(f"SOP class {sop_class} on presentation context {cid} "
                                 f"({syntax})")
        return field_

    def _count(self, operation: str, result: str) -> None:
        """One more operation with this result in the metrics (the labelled counter is looked
        up once per association: building its label key cost ~1.5 us per call)."""
        counter = self._op_counters.get((operation, result))
        if counter is None:
            counter = self._op_counters[(operation, result)] = (
                self.shared.metrics.operations.child(operation=operation, result=result))
        counter.add()

    def _drop_response(self, command: CommandSet, why: str) -> bool:
        """A response that answers no outstanding request: dropped, counted and audited."""
        field_ = command.command_field
        op = _Op(f"response 0x{field_:04x}", str(command.get("AffectedSOPClassUID", "")), "",
                 None)
        raw_status = command.get("Status")
        status = int(raw_status) if raw_status is not None else None
        self._count("response", "dropped")
        self.shared.audit.operation(self, op, status=status, refused=why)
        log.info("association %d: %s dropped: %s", self.id, op.operation, why)
        return False

    def _on_request(self, cid: int, command: CommandSet) -> bool:
        """Client → backend command set: apply the identity's operation policy.

        The strict reader guarantees the elements the command's table requires (PS3.7 9.3,
        10.3), so they are read from ``command.values`` directly; request tracking is one dict
        lookup per request and per response."""
        assert self.admission is not None
        values = command.values
        field_ = self._check_context(cid, values)
        if field_ & 0x8000:
            # a response, e.g. a C-STORE-RSP to a C-GET sub-operation: it must answer one
            answered = values["MessageIDBeingRespondedTo"]
            if self.backend_requests.get(answered) != field_ & 0x7FFF:
                return self._drop_response(
                    command, f"answers message ID {answered}, which the backend has not sent")
            del self.backend_requests[answered]
            return True
        if field_ == dimse.C_CANCEL_RQ:
            # a cancel for nothing outstanding is a normal race (PS3.7 9.3.2.3: ignored); a
            # capped C-FIND was cancelled by the gateway already
            return values["MessageIDBeingRespondedTo"] in self.ops
        msg_id = values["MessageID"]
        if msg_id in self.ops:
            # its responses could not be told apart from the outstanding request's
            raise CommandRefused(f"MessageID {msg_id} is already outstanding")
        operation = REQUEST_OPERATIONS.get(field_)
        destination = (str(values.get("MoveDestination", "")) if field_ == dimse.C_MOVE_RQ
                       else None)
        verdict = decide_operation(
            self.admission.policy, operation, field_, destination, self.shared.limits
        )
        op = _Op(
            operation or f"0x{field_:04x}",
            str(values.get("AffectedSOPClassUID", "")),
            str(values.get("AffectedSOPInstanceUID", "")),
            destination,
            field_,
        )
        if not verdict.allowed:
            self._count(op.operation, "refused")
            self.shared.audit.operation(self, op, status=verdict.status, refused=verdict.why)
            self._answer_client(cid, command.dataset(), verdict.status, verdict.why)
            return False
        old = self.capped.get(msg_id)
        if old is not None and old.field == field_:
            # the backend still answers the capped C-FIND with this ID: the answers to a
            # second one could not be told apart from those
            why = "message ID still in use"
            self._count(op.operation, "refused")
            self.shared.audit.operation(self, op, status=STATUS_OUT_OF_RESOURCES, refused=why)
            self._answer_client(cid, command.dataset(), STATUS_OUT_OF_RESOURCES, why)
            return False
        if operation == "FIND":
            op.find_cap = self.admission.policy.find_max_results
        self.ops[msg_id] = op
        if self.config.audit.include_phi and command.has_dataset and operation in (
                "FIND", "MOVE", "GET", "STORE"):
            self._capture_phi(cid, op)
        return True

    def _capture_phi(self, cid: int, op: _Op) -> None:
        """Keep the start of this request's data set for the audit record (include_phi)."""
        kept = bytearray()

        def take(fragment: bytes, last: bool) -> bool:
            kept.extend(fragment[: PHI_CAPTURE_BYTES - len(kept)])
            if last or len(kept) >= PHI_CAPTURE_BYTES:
                op.phi = read_phi(op.operation, bytes(kept), self.transfer_syntaxes.get(cid, ""))
                return False
            return True

        self._pipes["up"].inspector.capture = take

    def _on_response(self, cid: int, command: CommandSet) -> bool:
        """Backend → client command set: count C-FIND matches by the request they answer,
        audit final statuses, drop responses to nothing outstanding."""
        values = command.values
        field_ = self._check_context(cid, values)
        if not field_ & 0x8000:
            # a request from the backend (C-GET's C-STORE sub-operations)
            msg_id = values.get("MessageID")
            if msg_id is None:  # a C-CANCEL-RQ: the backend has no request of the client's
                raise CommandRefused("C-CANCEL-RQ from the backend")
            self.backend_requests[int(msg_id)] = field_
            return True
        # a response's table requires both (parse_command_strict)
        key = values["MessageIDBeingRespondedTo"]
        status = values["Status"]
        op = self.ops.get(key)
        if op is None or op.field != field_ & 0x7FFF:
            capped = self.capped.get(key)
            if capped is not None and capped.field == field_ & 0x7FFF:
                if status not in STATUS_PENDING:
                    del self.capped[key]  # the client already has its final status
                return False
            return self._drop_response(
                command, f"answers message ID {key}, which is not outstanding")
        if status in STATUS_PENDING:
            if field_ == dimse.C_FIND_RSP and op.find_cap:
                op.results += 1
                if op.results > op.find_cap:
                    self._cap_find(cid, command, op)
                    return False
            return True
        del self.ops[key]
        self._count(op.operation, "ok" if is_success_status(status) else "failed")
        self.shared.audit.operation(self, op, status=int(status))
        return True

    def _cap_find(self, cid: int, response: CommandSet, op: _Op) -> None:
        """More matches than the identity may see: cancel at the backend, close at the client."""
        assert self.backend_writer is not None
        op.capped = True
        msg_id = int(response.MessageIDBeingRespondedTo)
        self.capped[msg_id] = self.ops.pop(msg_id)
        for chunk in dimse.cancel_pdus(msg_id, cid, 0):
            self._send("up", chunk)
        request = Dataset()
        request.CommandField = dimse.C_FIND_RQ
        request.MessageID = msg_id
        request.AffectedSOPClassUID = response.get("AffectedSOPClassUID") or op.sop_class
        why = f"result cap of {op.find_cap} reached"
        self.shared.metrics.find_capped.inc()
        self._count("FIND", "capped")
        self.shared.audit.operation(self, op, status=STATUS_OUT_OF_RESOURCES, refused=why)
        self._answer_client(cid, request, STATUS_OUT_OF_RESOURCES, why)

    def _answer_client(self, cid: int, request: Dataset, status: int, why: str) -> None:
        msg = failure_response(request, status, f"dicomguard: {why}")
        if msg is None:
            raise RelayAbort(f"no response type for command {request.get('CommandField')}")
        for chunk in dimse.encode_message(msg, cid, 0):
            self._send("down", chunk)

    def _send(self, direction: str, data: bytes) -> None:
        """Bytes of the gateway's own for the client ("down") or the backend ("up"), in order
        with what that direction's pipe is relaying."""
        pipe = self._pipes.get(direction)
        writer = self.writer if direction == "down" else self.backend_writer
        if pipe is not None:
            pipe.send(data)
        elif writer is not None:
            writer.write(data)

    # -- ending -------------------------------------------------------------------------------
    def _abort_both(self, client_reason: int = 0) -> None:
        """A-ABORT to both sides; written straight to the transports, which flush it before
        they close (a stream's drain would wait on a protocol the data phase replaced).
        ``client_reason`` is the reason the client gets (PS3.8 9.3.8, source 2)."""
        for w, reason in ((self.writer, client_reason), (self.backend_writer, 0)):
            if w is None:
                continue
            with contextlib.suppress(Exception):
                w.transport.write(P.abort_pdu(2, reason))

    async def abort(self) -> None:
        """Used by a stop past its grace period: A-ABORT both sides and close."""
        self._abort_both()
        await self._close_all()

    async def _close_all(self) -> None:
        for w in (self.writer, self.backend_writer):
            if w is None:
                continue
            with contextlib.suppress(Exception):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w.wait_closed(), 1.0)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip()
