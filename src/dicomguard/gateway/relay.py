"""One association through the gateway: accept, decide, forward, then relay P-DATA both ways.

The request is read and judged *before* anything is sent to the backend, so a refused peer never
costs the legacy device a packet. Once the backend has accepted, the data phase is three units
wired together here: two :class:`~.pipe.Pipe`\\ s (one per socket: PDU framing, cut-through
forwarding, back-pressure; no policy), one :class:`~.judge.OperationJudge` (the identity's
operation policy and the association's request state: command sets in, decisions out) and this
relay, which sends the judge's PDUs through the pipes, counts and audits its outcomes, and ends
the association (release, abort, idle and per-PDU deadlines).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..dul import pdu as P
from ..dul.associate_bytes import AssociateView, parse_associate, rewrite_associate
from ..dul.codes import (
    CONTEXT_ACCEPTANCE,
    REJECT_LOCAL_LIMIT,
    REJECT_TEMPORARY_CONGESTION,
    AbortReason,
)
from ..dul.command import CommandSet
from ..dul.errors import DulError, MalformedPdu, PeerClosed, PeerTimeout
from .audit import PHI_CAPTURE_BYTES, read_phi
from .config import GatewayConfig, Listener
from .identity_queue import IdentityQueue
from .judge import PASS, Decision, Operation, OperationJudge
from .pipe import PdvFilter, Pipe, RelayAbort
from .policy import (
    Admission,
    AssociationPolicy,
    Peer,
    RateLimits,
    Refusal,
)
from .tls import handshake_failure, start_tls

if TYPE_CHECKING:
    from .audit import AuditTrail
    from .metrics import Metrics

log = logging.getLogger("dicomguard.gateway")


_ids = itertools.count(1)


@dataclass
class Shared:
    """What all relays of one gateway share; :meth:`Gateway.reload` swaps config and policy."""

    config: GatewayConfig
    policy: AssociationPolicy
    limits: RateLimits
    audit: AuditTrail
    metrics: Metrics
    tls_context: ssl.SSLContext | None = None
    #: user identity checks: one thread, sources in turn, failures limited per source
    identity: IdentityQueue = field(init=False)
    #: admitted associations (counted against ``limits.max_associations``)
    active: set[Relay] = field(default_factory=set)
    #: connections in association setup, oldest first (a dict keeps insertion order)
    setup: dict[Relay, None] = field(default_factory=dict)
    #: connections in setup by source address
    setup_by_source: dict[str, int] = field(default_factory=dict)
    #: admitted associations by source address
    active_by_source: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.identity = IdentityQueue(self.metrics)


#: how long an aborted client may take to close its end (the ARTIM timer, PS3.8 9.1.5)
ARTIM_SECONDS = 1.0


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
        #: the data phase's operation policy and request state (made when the AC is relayed)
        self.judge: OperationJudge | None = None
        #: presentation context ID -> abstract syntax, proposed and accepted (set when the AC
        #: is relayed)
        self.proposed: dict[int, str] = {}
        self.accepted: dict[int, str] = {}
        #: accepted transfer syntax by presentation context ID (only with audit.include_phi)
        self.transfer_syntaxes: dict[int, str] = {}
        #: audit messages of this association's operations, rendered once (gateway/audit.py)
        self.audit_cache: dict[tuple[Any, ...], tuple[bool, tuple[str, str, str]]] = {}
        #: metrics.operations counters by (operation, result), looked up once (:meth:`_count`)
        self._op_counters: dict[tuple[str, str], Any] = {}
        self._pipes: dict[str, Pipe] = {}  # the data phase's two directions
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
            self.writer.write(P.provider_abort_pdu(AbortReason.UNEXPECTED_PDU))
            return
        try:
            rq = parse_associate(raw.data)
        except MalformedPdu:
            # Counted before the reply: a peer that has its A-ABORT finds it in the metrics.
            self.shared.metrics.associations.inc(result="malformed")
            self.writer.write(P.provider_abort_pdu(AbortReason.INVALID_PDU_PARAMETER_VALUE))
            return
        self.called_aet = rq.called_ae_title
        self.calling_aet = rq.calling_ae_title
        peer = Peer(self.peer_address, self.listener.tls, peer_cert)
        # A refused connection stays counted in setup until it is closed: _refuse waits for
        # the peer to close first, and uncounted, those waits were a way to hold sockets
        # without bound (a flood of refused requests that never close).
        if len(self.shared.active) >= cfg.limits.max_associations:
            await self._refuse(Refusal(REJECT_LOCAL_LIMIT, "too many associations", "limit"))
            return
        by_source = self.shared.active_by_source
        if by_source.get(self.peer_address, 0) >= cfg.limits.max_associations_per_source:
            await self._refuse(Refusal(REJECT_LOCAL_LIMIT,
                                       "too many associations from this source", "limit"))
            return
        policy = self.shared.policy
        decision: Admission | Refusal | None
        if rq.user_information:
            # A passcode costs ~45-70 ms of scrypt: checked on the identity thread, sources
            # served in turn, a source that failed too often refused unhashed
            # (identity_queue.py). The cheap checks before it run here first, so a request
            # they refuse never queues. The connection stays counted in setup until judged.
            decision = policy.screen(peer, rq)
            if decision is None:
                decision = await self.shared.identity.decide(
                    self.peer_address, functools.partial(policy.decide, peer, rq),
                    self.shared.config.limits)
        else:
            decision = policy.decide(peer, rq)
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
        self.writer.write(P.reject_pdu(refusal.reject))
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
            await self._refuse(Refusal(REJECT_TEMPORARY_CONGESTION, f"backend unreachable: {exc}",
                                       "backend"))
            return False
        self.backend_writer.write(out)
        await self.backend_writer.drain()
        try:
            raw = await P.read_pdu(self.backend_reader, timeout=cfg.limits.associate_timeout)
        except DulError as exc:
            self.writer.write(P.provider_abort_pdu())
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
            self.writer.write(P.provider_abort_pdu())
            self.shared.metrics.associations.inc(result="backend-failed")
            self.shared.audit.association(
                self, accepted=False, why=f"backend sent {raw.name}", check="backend"
            )
            return False
        try:
            accept = self._rewrite_accept(raw, adm)
        except MalformedPdu as exc:
            # the backend accepted, but not in a form the gateway can judge: both sides hear
            # of it (the client would otherwise see its connection dropped without a word)
            self._abort_both()
            self.shared.metrics.associations.inc(result="backend-failed")
            self.shared.audit.association(
                self, accepted=False, why=f"backend sent an unreadable A-ASSOCIATE-AC: {exc}",
                check="backend")
            log.info("association %d from %s: backend sent an unreadable A-ASSOCIATE-AC: %s",
                     self.id, self.peer_address, exc)
            return False
        self.writer.write(accept)
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
                         if result == str(CONTEXT_ACCEPTANCE) and cid in self.proposed}
        if self.config.audit.include_phi:  # the audit names the transfer syntax of each query
            with contextlib.suppress(DulError):
                self.transfer_syntaxes = {
                    item.context_id: str(item.transfer_syntax)
                    for item in P.decode(raw).presentation_context  # type: ignore[attr-defined]
                    if item.result == CONTEXT_ACCEPTANCE and item.transfer_syntax}
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
        """Hand both sockets to :class:`~.pipe.Pipe` protocols, judge their command sets
        with an :class:`~.judge.OperationJudge`, and wait for the association to end.

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
        assert self.admission is not None
        self.judge = OperationJudge(self.accepted, self.admission.policy, self.shared.limits,
                                    include_phi=self.config.audit.include_phi)
        bytes_counter = self.shared.metrics.bytes
        up = Pipe("up", PdvFilter(lim.max_command_bytes, lim.max_command_fragments,
                                  self._on_request),
                  max_pdu=lim.max_pdu_bytes, on_end=self._end, on_violation=self._violation,
                  on_peer_closed=self._client_closed,
                  count_bytes=bytes_counter.child(direction="up").add)
        down = Pipe("down", PdvFilter(lim.max_command_bytes, lim.max_command_fragments,
                                      self._on_response),
                    max_pdu=lim.max_pdu_bytes, on_end=self._end, on_violation=self._violation,
                    count_bytes=bytes_counter.child(direction="down").add)
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
                self._abort_both(getattr(exc, "abort_reason", AbortReason.NOT_SPECIFIED))
                await self._linger()
            else:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("association %d: relay failed", self.id, exc_info=exc)
                self._abort_both()
                await self._linger()
        finally:
            up.closed = down.closed = True
            # The association is over for this relay: a pipe that ends it later (its socket
            # closed by _close_all, a stop) must not leave an exception in _done that nobody
            # reads (asyncio logs "Future exception was never retrieved" when it is collected).
            if self._done.done():
                if not self._done.cancelled():
                    self._done.exception()
            else:
                self._done.cancel()
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

    def _client_closed(self) -> None:
        """Called by the client's pipe when the client closed its end (ends :meth:`_linger`)."""
        gone = getattr(self, "_client_gone", None)
        if gone is not None and not gone.done():
            gone.set_result(None)

    def _violation(self, kind: str, why: str) -> None:
        """Called by a pipe before a protocol violation ends the association: counted (kind
        "command-set" or "protocol"), audited, and logged for a refused command set."""
        self.shared.metrics.aborts.inc(reason=kind)
        self.shared.audit.protocol_violation(self, why)
        if kind == "command-set":
            log.info("association %d: %s", self.id, why)

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
        """Called by a pipe: the association is over (released, aborted or failed; an
        exception is answered with A-ABORT to both sides)."""
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
            if now - max(pipe.last_activity for pipe in self._pipes.values()) > idle:
                raise RelayAbort(f"idle for more than {idle:g}s")
            for pipe in self._pipes.values():
                late = pipe.pdu_overdue(now, lim.pdu_timeout, lim.min_pdu_rate)
                if late is not None:
                    self.shared.metrics.aborts.inc(reason="pdu-deadline")
                    self.shared.audit.protocol_violation(self, late)
                    raise RelayAbort(late)

    # -- the judge's decisions ------------------------------------------------------------------
    def _on_request(self, cid: int, command: CommandSet) -> bool:
        """Client → backend command set (called by the client's :class:`~.pipe.PdvFilter`)."""
        assert self.judge is not None
        decision = self.judge.request(cid, command)
        if decision is not PASS:
            self._apply(cid, decision)
        return decision.passes

    def _on_response(self, cid: int, command: CommandSet) -> bool:
        """Backend → client command set (called by the backend's :class:`~.pipe.PdvFilter`)."""
        assert self.judge is not None
        decision = self.judge.response(cid, command)
        if decision is not PASS:
            self._apply(cid, decision)
        return decision.passes

    def _apply(self, cid: int, decision: Decision) -> None:
        """Count and audit the decision's outcome first (a peer that has its answer finds it
        counted), then send its PDUs and start its data-set capture."""
        op, result = decision.op, decision.result
        if op is not None:
            if result == "dropped":
                self._count("response", "dropped")
                log.info("association %d: %s dropped: %s", self.id, op.operation, decision.why)
            else:
                if result == "capped":
                    self.shared.metrics.find_capped.inc()
                self._count(op.operation, result or "")
            if decision.why is None:
                self.shared.audit.operation(self, op, status=decision.status)
            else:
                self.shared.audit.operation(self, op, status=decision.status,
                                            refused=decision.why)
        for chunk in decision.to_backend:
            self._send("up", chunk)
        for chunk in decision.to_client:
            self._send("down", chunk)
        if decision.capture is not None:
            self._capture_phi(cid, decision.capture)

    def _count(self, operation: str, result: str) -> None:
        """One more operation with this result in the metrics (the labelled counter is looked
        up once per association: building its label key cost ~1.5 us per call)."""
        counter = self._op_counters.get((operation, result))
        if counter is None:
            counter = self._op_counters[(operation, result)] = (
                self.shared.metrics.operations.child(operation=operation, result=result))
        counter.add()

    def _capture_phi(self, cid: int, op: Operation) -> None:
        """Keep the start of this request's data set for the audit record (include_phi)."""
        kept = bytearray()

        def take(fragment: bytes, last: bool) -> bool:
            kept.extend(fragment[: PHI_CAPTURE_BYTES - len(kept)])
            if last or len(kept) >= PHI_CAPTURE_BYTES:
                op.phi = read_phi(op.operation, bytes(kept), self.transfer_syntaxes.get(cid, ""))
                return False
            return True

        self._pipes["up"].inspector.capture = take

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
    def _abort_both(self, client_reason: int = AbortReason.NOT_SPECIFIED) -> None:
        """A-ABORT to both sides; written straight to the transports, which flush it before
        they close (a stream's drain would wait on a protocol the data phase replaced).
        ``client_reason`` is the reason the client gets (PS3.8 9.3.8, source service
        provider)."""
        for w, reason in ((self.writer, client_reason),
                          (self.backend_writer, AbortReason.NOT_SPECIFIED)):
            if w is None:
                continue
            with contextlib.suppress(Exception):
                w.transport.write(P.provider_abort_pdu(reason))

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
