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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as dm
from pynetdicom import pdu as _pdu
from pynetdicom import pdu_primitives as prim

from ..dul import dimse
from ..dul import pdu as P
from ..dul.command import CommandSet, parse_command
from ..dul.errors import DulError, MalformedPdu, ProtocolViolation
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

if TYPE_CHECKING:
    from .audit import AuditTrail
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


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    """An encoded A-ASSOCIATE-RJ (10 bytes: PS3.8 9.3.4; too small to need pynetdicom)."""
    return bytes([P.A_ASSOCIATE_RJ, 0]) + _LEN.pack(4) + bytes([0, result, source, reason])


def is_final_status(status: int | None) -> bool:
    return status not in dimse.STATUS_PENDING


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
    active: set[Relay] = field(default_factory=set)


@dataclass
class _Op:
    """A request the backend is working on (for the audit record of its outcome)."""

    operation: str
    sop_class: str
    sop_instance: str
    destination: str | None
    find_cap: int = 0
    results: int = 0
    capped: bool = False


class CommandSetError(MalformedPdu):
    """A command set above the byte or fragment bound: answered with A-ABORT."""


class _Inspector:
    """Per-direction PDV state: reassemble command sets, pass or swallow data fragments.

    ``on_command(context_id, command) -> bool`` decides whether a completed message is passed
    on (True) or dropped with its data set (False); it is called synchronously so the decision
    applies to fragments later in the same PDU.
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
                self._cmd_cid = cid
                self._cmd += pdu[pos + 6 : item_end]
                self._held.append(pdu[pos:item_end])
                if len(self._cmd) > self.max_bytes:
                    raise CommandSetError(f"command set above {self.max_bytes} bytes")
                if len(self._held) > self.max_fragments:
                    raise CommandSetError(f"command set in more than {self.max_fragments} PDVs")
                if hdr & 0x02:
                    passes, has_data = self._complete(cid)
                    if passes:
                        if len(self._held) == 1 and not changed:
                            passed.append((pos, item_end))
                        else:
                            changed = True
                            out.extend(_wrap(item) for item in self._held)
                    else:
                        changed = True
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
                else:
                    changed = True
                if hdr & 0x02:
                    self._data_cid = None
            pos = item_end
        if not changed:
            return [pdu]
        # Something was held or dropped: what was passed before that point goes out first.
        return [_wrap(pdu[s:e]) for s, e in passed] + out

    def _complete(self, cid: int) -> tuple[bool, bool]:
        command = parse_command(bytes(self._cmd))
        return self.on_command(cid, command), command.has_dataset


def _wrap(item: bytes) -> bytes:
    return _HEADER.pack(P.P_DATA_TF, 0, len(item)) + item


class RelayAbort(Exception):
    """End the association with A-ABORT to both sides (the message says why)."""


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
        #: requests in progress by (message ID, request command field): peers reuse IDs
        #: across operation types (pynetdicom numbers each service from 1), responses name both
        self.ops: dict[tuple[int, int], _Op] = {}
        self.last_activity = time.monotonic()
        self.stopping = False
        self._started = time.monotonic()

    # -- association --------------------------------------------------------------------------
    async def run(self) -> None:
        shared = self.shared
        shared.active.add(self)
        shared.metrics.active.inc()
        try:
            await self._run()
        except (DulError, OSError, TimeoutError, ssl.SSLError):
            pass
        except Exception:  # a bug must cost one association, never the listener
            log.exception("association %d: unexpected failure", self.id)
            self.shared.metrics.aborts.inc(reason="internal")
            with contextlib.suppress(Exception):
                self.writer.write(P.abort_pdu(2, 0))
        finally:
            shared.active.discard(self)
            shared.metrics.active.dec()
            await self._close_all()

    async def _run(self) -> None:
        cfg = self.config
        peer_cert = None
        if self.listener.tls:
            if self.shared.tls_context is None:
                return
            await self.writer.start_tls(
                self.shared.tls_context, ssl_handshake_timeout=cfg.limits.associate_timeout
            )
            peer_cert = self.writer.get_extra_info("peercert") or None
        raw = await P.read_pdu(self.reader, timeout=cfg.limits.associate_timeout)
        if raw.pdu_type != P.A_ASSOCIATE_RQ:
            self.writer.write(P.abort_pdu(2, 2))  # unexpected PDU
            return
        try:
            rq_pdu = P.decode(raw)
            rq = rq_pdu.to_primitive()
        except Exception:
            self.writer.write(P.abort_pdu(2, 6))
            self.shared.metrics.associations.inc(result="malformed")
            return
        self.called_aet = _text(rq.called_ae_title)
        self.calling_aet = _text(rq.calling_ae_title)
        peer = Peer(self.peer_address, self.listener.tls, peer_cert)
        if len(self.shared.active) > cfg.limits.max_associations:
            await self._refuse(Refusal(2, 3, 2, "too many associations", "limit"))
            return
        decision = self.shared.policy.decide(peer, rq)
        if isinstance(decision, Refusal):
            await self._refuse(decision)
            return
        self.admission = decision
        if not await self._forward_request(rq, decision):
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

    async def _forward_request(self, rq: prim.A_ASSOCIATE, adm: Admission) -> bool:
        cfg = self.config
        route = adm.route
        rq.called_ae_title = route.backend_aet
        if route.calling_aet:
            rq.calling_ae_title = route.calling_aet
        if route.user_identity == "strip":
            rq.user_information = [
                i
                for i in rq.user_information or []
                if not isinstance(i, prim.UserIdentityNegotiation)
            ]
        out = _pdu.A_ASSOCIATE_RQ()
        out.from_primitive(rq)
        try:
            self.backend_reader, self.backend_writer = await asyncio.wait_for(
                asyncio.open_connection(route.backend_host, route.backend_port, limit=1 << 18),
                cfg.limits.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            await self._refuse(Refusal(2, 3, 1, f"backend unreachable: {exc}", "backend"))
            return False
        self.backend_writer.write(out.encode())
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
        """The backend's AC with the client's AE titles and the gateway's identity answer."""
        ac = P.decode(raw).to_primitive()
        ac.called_ae_title = self.called_aet or "ANY"
        ac.calling_ae_title = self.calling_aet or "ANY"
        ui = adm.user_identity
        if adm.route.user_identity == "strip":
            items = [
                i
                for i in ac.user_information or []
                if not isinstance(i, prim.UserIdentityNegotiation)
            ]
            if ui is not None and ui.positive_response_requested:
                # The gateway verified the identity, so the gateway answers for it (PS3.7
                # D.3.3.7.2: empty server response for username/passcode; the token is not
                # echoed for JWT).
                answer = prim.UserIdentityNegotiation()
                answer.server_response = b""
                items.append(answer)
            ac.user_information = items
        out = _pdu.A_ASSOCIATE_AC()
        out.from_primitive(ac)
        return out.encode()

    # -- P-DATA relay -------------------------------------------------------------------------
    async def _relay(self) -> None:
        assert self.backend_reader is not None and self.backend_writer is not None
        lim = self.config.limits
        up = _Inspector(lim.max_command_bytes, lim.max_command_fragments, self._on_request)
        down = _Inspector(lim.max_command_bytes, lim.max_command_fragments, self._on_response)
        tasks = [
            asyncio.create_task(self._pump(self.reader, self.backend_writer, up, "up")),
            asyncio.create_task(self._pump(self.backend_reader, self.writer, down, "down")),
            asyncio.create_task(self._watchdog()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            reason = "released"
            for task in done:
                exc = task.exception()
                if isinstance(exc, RelayAbort | DulError):
                    reason = str(exc) or type(exc).__name__
                    await self._abort_both()
                elif exc is not None:
                    reason = f"{type(exc).__name__}: {exc}"
                    log.error("association %d: relay failed", self.id, exc_info=exc)
                    await self._abort_both()
                elif task.result():
                    reason = str(task.result())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        log.debug(
            "association %d (%s from %s) ended: %s",
            self.id,
            self.calling_aet,
            self.peer_address,
            reason,
        )
        self.shared.audit.association_end(self, reason)

    async def _watchdog(self) -> None:
        """Abort an association idle for longer than ``limits.idle_timeout`` (checked coarsely
        so the data path pays no timer per PDU)."""
        idle = self.config.limits.idle_timeout
        while True:
            await asyncio.sleep(min(5.0, idle / 2))
            if time.monotonic() - self.last_activity > idle:
                raise RelayAbort(f"idle for more than {idle:g}s")

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        inspector: _Inspector,
        direction: str,
    ) -> str | None:
        max_len = self.config.limits.max_pdu_bytes
        counter = self.shared.metrics.bytes.child(direction=direction)
        while True:
            try:
                header = await reader.readexactly(6)
                pdu_type, _, length = _HEADER.unpack(header)
                if pdu_type not in P.PDU_NAMES:
                    raise RelayAbort(f"{direction}: not a PDU (type 0x{pdu_type:02x})")
                bound = max_len if pdu_type == P.P_DATA_TF else P.MAX_ASSOCIATION_PDU
                if length > bound:
                    raise RelayAbort(f"{direction}: PDU of {length} bytes above {bound}")
                data = header + await reader.readexactly(length)
            except asyncio.IncompleteReadError:
                raise RelayAbort(f"{direction}: connection closed") from None
            except (ConnectionError, OSError) as exc:
                raise RelayAbort(f"{direction}: {exc}") from None
            self.last_activity = time.monotonic()
            counter.add(len(data))
            if pdu_type == P.P_DATA_TF:
                try:
                    out = inspector.feed(data)
                except CommandSetError as exc:
                    self.shared.metrics.aborts.inc(reason="command-set")
                    self.shared.audit.protocol_violation(self, f"{direction}: {exc}")
                    raise RelayAbort(f"{direction}: {exc}") from None
                except (MalformedPdu, ProtocolViolation) as exc:
                    self.shared.metrics.aborts.inc(reason="protocol")
                    self.shared.audit.protocol_violation(self, f"{direction}: {exc}")
                    raise RelayAbort(f"{direction}: {exc}") from None
                for chunk in out:
                    writer.write(chunk)
                if writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
                    await writer.drain()
            elif pdu_type in (P.A_RELEASE_RQ, P.A_RELEASE_RP):
                writer.write(data)
                await writer.drain()
                if pdu_type == P.A_RELEASE_RP:
                    return "released"
            elif pdu_type == P.A_ABORT:
                writer.write(data)
                with contextlib.suppress(Exception):
                    await writer.drain()
                return f"aborted by {'client' if direction == 'up' else 'backend'}"
            else:
                raise RelayAbort(f"{direction}: unexpected {P.PDU_NAMES[pdu_type]}")

    # -- policy on commands -------------------------------------------------------------------
    def _on_request(self, cid: int, command: CommandSet) -> bool:
        """Client → backend command set: apply the identity's operation policy."""
        assert self.admission is not None
        field_ = command.command_field
        if field_ & 0x8000:
            return True  # a response (e.g. C-STORE-RSP to a C-GET sub-operation)
        if field_ == dimse.C_CANCEL_RQ:
            op = self.ops.get(
                (int(command.get("MessageIDBeingRespondedTo", -1) or 0), dimse.C_FIND_RQ)
            )
            return not (op is not None and op.capped)
        operation = REQUEST_OPERATIONS.get(field_)
        destination = str(command.get("MoveDestination", "")) if field_ == dimse.C_MOVE_RQ else None
        verdict = decide_operation(
            self.admission.policy, operation, field_, destination, self.shared.limits
        )
        op = _Op(
            operation or f"0x{field_:04x}",
            str(command.get("AffectedSOPClassUID", "")),
            str(command.get("AffectedSOPInstanceUID", "")),
            destination,
        )
        if not verdict.allowed:
            self.shared.metrics.operations.inc(operation=op.operation, result="refused")
            self.shared.audit.operation(self, op, status=verdict.status, refused=verdict.why)
            self._answer_client(cid, command.dataset(), verdict.status, verdict.why)
            return False
        if operation == "FIND":
            op.find_cap = self.admission.policy.find_max_results
        key = (int(command.get("MessageID", 0)), field_)
        old = self.ops.get(key)
        if old is not None and old.capped:
            # Its backend responses are still being swallowed; a second request with the same
            # ID could not be told apart from them.
            self.shared.metrics.operations.inc(operation=op.operation, result="refused")
            self._answer_client(
                cid,
                command.dataset(),
                STATUS_OUT_OF_RESOURCES if operation == "FIND" else 0x0210,
                "message ID still in use",
            )
            return False
        self.ops[key] = op
        return True

    def _on_response(self, cid: int, command: CommandSet) -> bool:
        """Backend → client command set: count C-FIND matches, audit final statuses."""
        field_ = command.command_field
        if not field_ & 0x8000:
            return True  # a request from the backend (C-GET's C-STORE sub-operations)
        key = (int(command.get("MessageIDBeingRespondedTo", -1) or 0), field_ & 0x7FFF)
        raw_status = command.get("Status")
        status = int(raw_status) if raw_status is not None else None
        op = self.ops.get(key)
        if op is None:
            return True
        if not is_final_status(status):
            if op.capped:
                return False
            if field_ == dimse.C_FIND_RSP and op.find_cap:
                op.results += 1
                if op.results > op.find_cap:
                    self._cap_find(cid, command, op)
                    return False
            return True
        del self.ops[key]
        if op.capped:
            return False  # the client already has its final status
        result = "ok" if is_success_status(status) else "failed"
        self.shared.metrics.operations.inc(operation=op.operation, result=result)
        self.shared.audit.operation(self, op, status=status)
        return True

    def _cap_find(self, cid: int, response: CommandSet, op: _Op) -> None:
        """More matches than the identity may see: cancel at the backend, close at the client."""
        assert self.backend_writer is not None
        op.capped = True
        msg_id = int(response.get("MessageIDBeingRespondedTo", 0) or 0)
        for chunk in dimse.cancel_pdus(msg_id, cid, 0):
            self.backend_writer.write(chunk)
        request = Dataset()
        request.CommandField = dimse.C_FIND_RQ
        request.MessageID = msg_id
        request.AffectedSOPClassUID = response.get("AffectedSOPClassUID") or op.sop_class
        why = f"result cap of {op.find_cap} reached"
        self.shared.metrics.find_capped.inc()
        self.shared.metrics.operations.inc(operation="FIND", result="capped")
        self.shared.audit.operation(self, op, status=STATUS_OUT_OF_RESOURCES, refused=why)
        self._answer_client(cid, request, STATUS_OUT_OF_RESOURCES, why)

    def _answer_client(self, cid: int, request: Dataset, status: int, why: str) -> None:
        msg = failure_response(request, status, f"dicomguard: {why}")
        if msg is None:
            raise RelayAbort(f"no response type for command {request.get('CommandField')}")
        for chunk in dimse.encode_message(msg, cid, 0):
            self.writer.write(chunk)

    # -- ending -------------------------------------------------------------------------------
    async def _abort_both(self) -> None:
        for w in (self.writer, self.backend_writer):
            if w is None:
                continue
            with contextlib.suppress(Exception):
                w.write(P.abort_pdu(2, 0))
                await asyncio.wait_for(w.drain(), 1.0)

    async def abort(self) -> None:
        """Used by a stop past its grace period: A-ABORT both sides and close."""
        await self._abort_both()
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
