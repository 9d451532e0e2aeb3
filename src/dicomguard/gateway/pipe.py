"""The data phase's cut-through pipe: PDU framing and forwarding, one direction per socket.

Two units, neither with any policy:

- :class:`PdvFilter` walks the PDV items of each P-DATA-TF, reassembles command sets (small,
  bounded), reads them with :func:`~dicomguard.dul.command.parse_command_strict` and asks one
  callback, ``on_command(context_id, command) -> bool``, whether the message passes; data-set
  fragments of a passed message go on as the very bytes that arrived, those of a dropped one
  vanish. PDUs of the gateway's own wait for a boundary between two messages.
- :class:`Pipe` is the ``asyncio.Protocol`` of one socket in the data phase: it parses PDUs as
  they arrive and writes what passes to the other socket in the same callback, streams large
  data-set PDUs through as they arrive, and applies back-pressure between the two sockets.

What the pipe tells its owner goes through narrow callbacks (``on_end``, ``on_violation``,
``on_peer_closed``, ``count_bytes``); it knows nothing of associations, identities, audit or
metrics. The operation policy is :mod:`.judge`'s, the wiring :mod:`.relay`'s. Tests drive both
units with bytes and a recording transport (``gateway/tests/test_pipe_parser.py``).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import cast

from ..dul import pdu as P
from ..dul.codes import PDV_COMMAND, PDV_LAST, AbortReason
from ..dul.command import CommandRefused, CommandSet, parse_command_strict
from ..dul.errors import DulError, MalformedPdu, ProtocolViolation

_LEN = struct.Struct(">L")
_HEADER = struct.Struct(">BBL")
#: a socket's send buffer above this pauses reading on the socket that feeds it
WRITE_HIGH_WATER = 1 << 20


class CommandSetError(MalformedPdu):
    """A command set above the byte or fragment bound: answered with A-ABORT."""


class PdvFilter:
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
        #: pipe (:meth:`Pipe.send`).
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
            if hdr & PDV_COMMAND:
                if self._data_cid is not None:
                    raise ProtocolViolation("command fragment inside a data set")
                if self._cmd_cid is not None and cid != self._cmd_cid:
                    raise ProtocolViolation("command fragments on two presentation contexts")
                # the common case, a whole command set in one PDV, is read in place
                whole = hdr & PDV_LAST and not self._held
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
                if hdr & PDV_LAST:
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
                            pdu[pos + 6 : item_end], bool(hdr & PDV_LAST)):
                        self.capture = None
                else:
                    changed = True
                if hdr & PDV_LAST:
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
        if (hdr & PDV_COMMAND or self._held or cid != self._data_cid or not self._data_pass
                or self.capture is not None):
            return False
        if hdr & PDV_LAST:
            self._data_cid = None
        return True

    def _complete(self, cid: int, raw: bytes) -> tuple[bool, bool]:
        command = parse_command_strict(raw)
        return self.on_command(cid, command), command.has_dataset


def _wrap(item: bytes) -> bytes:
    return _HEADER.pack(P.P_DATA_TF, 0, len(item)) + item


class RelayAbort(Exception):
    """End the association with A-ABORT to both sides (the message says why).

    ``abort_reason`` goes to the client in the A-ABORT (source service provider; PS3.8
    9.3.8, Table 9-26): ``AbortReason.NOT_SPECIFIED``, or
    ``AbortReason.INVALID_PDU_PARAMETER_VALUE`` for a refused command set.
    """

    def __init__(self, message: str, abort_reason: int = AbortReason.NOT_SPECIFIED) -> None:
        super().__init__(message)
        self.abort_reason = abort_reason


#: P-DATA PDUs at least this long are streamed through as they arrive when they hold one
#: data-set PDV that passes; shorter ones are gathered whole (a copy too small to matter).
STREAM_MIN = 8192

#: PDUs of the gateway's own that may wait for the end of a message in progress (one per
#: refused request of the peer on the other side: a bound on what a flood of them holds)
MAX_PENDING = 256


class Pipe(asyncio.Protocol):
    """One direction of the data phase: the protocol of the socket it reads from.

    It replaces the stream protocol of that socket when the association is accepted. Bytes are
    parsed PDU by PDU as they arrive and written to the other socket in the same callback, with
    no task switch in between. A large P-DATA-TF that carries one data-set fragment of a passed
    message is forwarded chunk by chunk (``stream_left``); every other PDU is gathered whole
    and goes through :class:`PdvFilter`. Back-pressure: when the other socket's send buffer is
    full, the other pipe pauses reading on this one.
    """

    def __init__(
        self,
        direction: str,
        inspector: PdvFilter,
        *,
        max_pdu: int,
        on_end: Callable[[str | BaseException], None],
        on_violation: Callable[[str, str], None] = lambda kind, why: None,
        on_peer_closed: Callable[[], None] = lambda: None,
        count_bytes: Callable[[int], None] = lambda n: None,
    ) -> None:
        """``direction`` names the pipe in messages ("up": client to backend, "down").

        Callbacks: ``on_end(reason)`` once, when the association is over here (a str:
        released, aborted by the peer; an exception: :class:`RelayAbort` or a
        :class:`~dicomguard.dul.errors.DulError` to abort with); ``on_violation(kind, why)``
        before a protocol violation ends it ("command-set": a command set refused or above
        its bounds, answered with A-ABORT reason 6; "protocol": any other); ``on_peer_closed()``
        when this pipe's socket is closed by its peer; ``count_bytes(n)`` per arrival.
        ``max_pdu`` bounds a P-DATA-TF's length (bytes after its header).
        """
        self.direction = direction
        self.inspector = inspector
        self.max_len = max_pdu
        self.on_end = on_end
        self.on_violation = on_violation
        self.on_peer_closed = on_peer_closed
        self.count_bytes = count_bytes
        self.transport: asyncio.Transport | None = None
        self.out: asyncio.Transport | None = None  # the other socket
        self.other: Pipe | None = None
        #: when the last bytes arrived (time.monotonic): the owner's idle timer
        self.last_activity = time.monotonic()
        self.buf = bytearray()  # the current PDU while gathered
        self.want = 6  # bytes of the current PDU needed before the next decision
        self.stream_left = 0
        #: output of the current arrival: (start, end) ranges of its bytes, or bytes objects
        self.parts: list[tuple[int, int] | bytes] = []
        #: where the PDU being gathered began in the current arrival (None: in an earlier one)
        self.pdu_start: int | None = None
        self.consuming = False  # inside _consume: the owner's own PDUs queue behind parts
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
               other: Pipe) -> None:
        """Take over ``transport`` from its stream, including bytes the stream still holds."""
        # not an isinstance check: uvloop's transports do not derive from asyncio.Transport
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.other = other
        self.out = other.transport or None
        other.out = transport
        self._stream_protocol = transport.get_protocol()
        transport.set_protocol(self)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
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
        self.last_activity = time.monotonic()
        self.count_bytes(len(data))
        try:
            self._consume(data)
        except (RelayAbort, DulError) as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self._fail(RelayAbort(f"{self.direction}: connection closed"))
        self.on_peer_closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RelayAbort(f"{self.direction}: {exc or 'connection closed'}"))
        self.on_peer_closed()
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
            self.on_end(exc)

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
        inspector = self.inspector
        pos, n = 0, len(data)
        self.consuming = True
        try:
            while pos < n and not self.closed:
                if self.stream_left:
                    take = min(self.stream_left, n - pos)
                    self._range(pos, pos + take)
                    self.stream_left -= take
                    pos += take
                    if inspector.pending:
                        self._flush_pending()
                    continue
                if not self.buf and pos + 6 <= n:
                    # the common case: a whole PDU too small to stream in this arrival, judged
                    # where it lies (no gathering: measured ~1 us per C-STORE exchange)
                    pdu_type, _, length = _HEADER.unpack_from(data, pos)
                    end = pos + 6 + length
                    if end <= n and (length < STREAM_MIN or pdu_type != P.P_DATA_TF):
                        self._check_header(pdu_type, length)
                        self.pdu_start = pos
                        self._whole(data[pos:end], end)
                        pos = end
                        if inspector.pending:
                            self._flush_pending()
                        continue
                if not self.buf:
                    self.pdu_start = pos
                    self.pdu_since = self.last_activity  # this arrival's time
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
                    if inspector.pending:
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
        there, else when the message in progress ends (:attr:`PdvFilter.pending`)."""
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

    def _check_header(self, pdu_type: int, length: int) -> None:
        """A PDU type the relay knows, and a length within the bound for that type."""
        if pdu_type not in P.PDU_NAMES:
            raise RelayAbort(f"{self.direction}: not a PDU (type 0x{pdu_type:02x})")
        bound = self.max_len if pdu_type == P.P_DATA_TF else P.MAX_ASSOCIATION_PDU
        if length > bound:
            raise RelayAbort(f"{self.direction}: PDU of {length} bytes above {bound}")

    def _header(self, pos: int) -> None:
        """The gathered header of a PDU: what to gather next."""
        pdu_type, _, length = _HEADER.unpack(self.buf)
        self.pdu_length = length
        self._check_header(pdu_type, length)
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
            try:
                chunks = self.inspector.feed(data)
            except (CommandSetError, CommandRefused) as exc:
                self.on_violation("command-set", f"{self.direction}: {exc}")
                raise RelayAbort(f"{self.direction}: {exc}",
                                 AbortReason.INVALID_PDU_PARAMETER_VALUE) from None
            except (MalformedPdu, ProtocolViolation) as exc:
                self.on_violation("protocol", f"{self.direction}: {exc}")
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
                why = f"{self.direction}: {P.PDU_NAMES[pdu_type]} of {len(data)} bytes"
                self.on_violation("protocol", why)
                raise RelayAbort(why)
            self._verbatim(pos)
            if pdu_type == P.A_RELEASE_RP:
                self.closed = True
                self.on_end("released")
            elif pdu_type == P.A_ABORT:
                self.closed = True
                self.on_end(
                    f"aborted by {'client' if self.direction == 'up' else 'backend'}")
        else:
            raise RelayAbort(f"{self.direction}: unexpected {P.PDU_NAMES[pdu_type]}")
        self.buf.clear()
        self.want = 6


