"""An asyncio DICOM association acceptor (SCP): negotiate, answer DIMSE requests, release.

pynetdicom's acceptor runs a thread per association and a server thread per port; its users
here (the lab's fleet, test peers) need hundreds of listeners on distinct loopback addresses in
one process, each with its own policy, surviving any garbage a scanner under test throws at
them. So the state machine here is asyncio, while every PDU and DIMSE message is still encoded
and decoded by pynetdicom's classes (``A_ASSOCIATE_AC.from_primitive``,
``negotiate_as_acceptor``, ``C_FIND_RSP`` ...).

This is the protocol layer only: negotiation by an :class:`AcceptorPolicy`, DIMSE messages read,
dispatched to :class:`Handlers` and answered. What a service does with a request (match a query,
keep or discard an instance, run or refuse a retrieval) is the handler's: without one, a request
on an accepted context is answered "SOP class not supported" (0x0122), C-ECHO excepted. The
lab's service behaviour (an archive that discards what it is sent, retrievals that move nothing,
slow greetings) lives in ``dicomguard.lab.services``.

The reject conventions mirror pynetdicom's ACSE (``acse._negotiate_as_acceptor``): calling AE
refused → :data:`.codes.REJECT_CALLING_AET` (1, 1, 3); called AE refused →
:data:`.codes.REJECT_CALLED_AET` (1, 1, 7); user identity refused →
:data:`.codes.REJECT_USER_IDENTITY` (2, 2, 1), i.e. rejected-transient by the ACSE provider with
no reason; association limit → :data:`.codes.REJECT_LOCAL_LIMIT` (2, 3, 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import dimse_messages as dm
from pynetdicom import pdu as _pdu
from pynetdicom import pdu_primitives as prim
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from . import dimse
from . import pdu as P
from .acse import (
    DEFAULT_MAX_PDU,
    DEFAULT_TRANSFER_SYNTAXES,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    UserIdentityType,
    identity_items,
)
from .codes import (
    APPLICATION_CONTEXT_NAME,
    CONTEXT_ACCEPTANCE,
    DATA_SET_ABSENT,
    DATA_SET_PRESENT,
    PROTOCOL_VERSION,
    REJECT_APPLICATION_CONTEXT,
    REJECT_CALLED_AET,
    REJECT_CALLING_AET,
    REJECT_LOCAL_LIMIT,
    REJECT_PROTOCOL_VERSION,
    REJECT_USER_IDENTITY,
    RESPONSE_BIT,
    STATUS_CANCEL,
    STATUS_IDENTIFIER_MISMATCH,
    STATUS_SOP_CLASS_NOT_SUPPORTED,
    STATUS_SUCCESS,
    STATUS_UNABLE_TO_PROCESS,
    AbortReason,
    Reject,
    is_pending,
)
from .command import encode_command, pdata_pdus
from .errors import DulError, MalformedPdu, PduTooLarge, PeerClosed, PeerTimeout

LOG = logging.getLogger(__name__)

VERIFICATION = dimse.VERIFICATION  # the Verification SOP Class UID (pynetdicom), as a str

#: (type, primary, secondary) → True (accept; empty server response if one was requested),
#: bytes (accept with this server response), False (reject), None (ignore the item, accept).
UserIdentityCheck = Callable[[int, bytes, bytes], "bool | bytes | None"]


@dataclass
class AcceptorPolicy:
    """Who may associate, what is offered, and how this acceptor introduces itself.

    One policy serves every connection of a listener; it also carries the count of open
    associations so ``max_associations`` holds across them.
    """

    ae_title: str = "ANY-SCP"
    #: called AE titles accepted; None = any title (most archives in the wild)
    called_aets: frozenset[str] | None = None
    #: calling AE titles allowed; None = anyone
    calling_aets: frozenset[str] | None = None
    user_identity_check: UserIdentityCheck | None = None
    #: reject associations that carry no user identity item at all
    require_user_identity: bool = False
    abstract_syntaxes: tuple[str, ...] = (VERIFICATION,)
    transfer_syntaxes: tuple[str, ...] = DEFAULT_TRANSFER_SYNTAXES
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version_name: str | None = IMPLEMENTATION_VERSION_NAME
    max_pdu: int = DEFAULT_MAX_PDU
    max_associations: int | None = None
    #: ARTIM: how long a fresh connection may take to send its A-ASSOCIATE-RQ
    associate_timeout: float = 10.0
    #: an established association silent for this long is aborted
    idle_timeout: float = 60.0
    #: timeout for our own writes (a peer that stops reading)
    write_timeout: float = 10.0
    #: bound on one reassembled DIMSE message (C-STORE data sets included)
    max_message_bytes: int = 4 << 20
    #: how C-FIND-RSPs go on the wire: "" one PDU per PDV (as pynetdicom and DCMTK send them);
    #: "message" each response's command and data set in one PDU; "query" every response of
    #: the query at the end, packed into as few P-DATA-TF PDUs as the requestor's maximum
    #: length allows (several DIMSE messages per PDU, PS3.8 9.3.5; a worklist server seen in
    #: the field does this, dicom-rs PR #528)
    pack_find_responses: str = ""
    active: int = field(default=0, init=False, compare=False)
    #: A-ASSOCIATE-RQ bytes -> negotiated outcome, for policies whose answer depends on the
    #: request alone (no identity callback): scanners send the same request to every port, and
    #: pynetdicom's decode/negotiate/encode cost milliseconds per association.
    outcomes: dict[bytes, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def supported_contexts(self) -> list[PresentationContext]:
        out = []
        for uid in self.abstract_syntaxes:
            cx = PresentationContext()
            cx.abstract_syntax = uid
            cx.transfer_syntax = list(self.transfer_syntaxes)
            out.append(cx)
        return out


@dataclass(frozen=True)
class AssociationInfo:
    """What the acceptor learned about the requestor, passed to every handler."""

    peer: tuple[str, int] | None
    calling_aet: str
    called_aet: str
    implementation_class_uid: str | None
    implementation_version_name: str | None
    peer_max_pdu: int
    user_identity_type: int | None
    username: bytes | None
    #: context id → (abstract syntax, transfer syntax), accepted contexts only
    contexts: dict[int, tuple[str, str]]


@dataclass(frozen=True)
class FindRequest:
    sop_class: str
    identifier: Dataset
    association: AssociationInfo
    #: the context's transfer syntax: a handler may yield matches already encoded in it
    transfer_syntax: str = str(ImplicitVRLittleEndian)


@dataclass(frozen=True)
class StoreRequest:
    sop_class: str
    sop_instance: str
    #: the data set as received (encoded in ``transfer_syntax``); decoding is the handler's call
    dataset: bytes
    transfer_syntax: str
    association: AssociationInfo


@dataclass(frozen=True)
class RetrieveRequest:
    """A C-MOVE-RQ or C-GET-RQ (PS3.7 9.1.4, 9.1.3) on an accepted context."""

    #: dimse.C_MOVE_RQ or dimse.C_GET_RQ
    command_field: int
    sop_class: str
    #: the C-MOVE-RQ's Move Destination, stripped (None for C-GET)
    move_destination: str | None
    #: the identifier as received (encoded in ``transfer_syntax``), None if it had none
    identifier: bytes | None
    transfer_syntax: str
    association: AssociationInfo


FindHandler = Callable[[FindRequest], AsyncIterator[tuple[int, Dataset | bytes | None]]]
StoreHandler = Callable[[StoreRequest], Awaitable[int]]
#: -> (Status of the final C-MOVE-RSP/C-GET-RSP, further command elements for it: the
#: NumberOf...Suboperations counts, PS3.7 Table 9.3-30); sub-operations themselves are the
#: handler's to run
RetrieveHandler = Callable[[RetrieveRequest], Awaitable[tuple[int, dict[str, int]]]]


@dataclass
class Handlers:
    """What the acceptor does with DIMSE requests on accepted contexts.

    C-ECHO always succeeds. C-FIND, C-STORE, C-MOVE and C-GET without a handler answer
    "SOP class not supported" (0x0122); a handler that raises answers "unable to process"
    (0xC000) and costs that request only.
    """

    find: FindHandler | None = None
    store: StoreHandler | None = None
    move: RetrieveHandler | None = None
    get: RetrieveHandler | None = None
    #: called once per accepted association (e.g. to record who came)
    on_associated: Callable[[AssociationInfo], None] | None = None
    #: per-operation access check: ("find" | "move" | "get", association) -> True to refuse
    #: the request with an A-ABORT, as Orthanc 1.10 does for a calling AE it does not know
    #: (contexts accepted, then "DICOM authorization rejected" and the association aborted)
    refuse: Callable[[str, AssociationInfo], bool] | None = None


class _Abort(Exception):
    """Internal: end the association with an A-ABORT carrying ``reason``."""

    def __init__(self, reason: int, why: str) -> None:
        super().__init__(why)
        self.reason = reason


#: DIMSE requests subject to :attr:`Handlers.refuse`
_OPERATION_KINDS = {dimse.C_FIND_RQ: "find", dimse.C_MOVE_RQ: "move", dimse.C_GET_RQ: "get"}

# Control events the reader task hands to the dispatcher besides DIMSE messages.
_RELEASE = "release"
_PEER_ABORT = "abort"


async def serve_association(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    policy: AcceptorPolicy,
    handlers: Handlers | None = None,
) -> None:
    """Serve one connection from A-ASSOCIATE-RQ to release or abort; never raises DulError.

    Usable directly as (part of) an ``asyncio.start_server`` callback.
    """
    handlers = handlers or Handlers()
    counted = False
    try:
        info = await negotiate(reader, writer, policy, handlers)
        if info is None:
            return
        counted = True
        if handlers.on_associated is not None:
            handlers.on_associated(info)
        await _Established(reader, writer, policy, handlers, info).run()
    except _Abort as exc:
        LOG.debug("aborting association: %s", exc)
        await _send_abort(writer, exc.reason)
    except (PeerClosed, PeerTimeout) as exc:
        LOG.debug("association ended: %s", exc)
    except PduTooLarge as exc:
        LOG.debug("oversized PDU: %s", exc)
        await _send_abort(writer, AbortReason.INVALID_PDU_PARAMETER_VALUE)
    except MalformedPdu as exc:
        LOG.debug("malformed PDU: %s", exc)
        await _send_abort(writer, AbortReason.UNRECOGNIZED_PDU)
    except DulError as exc:
        LOG.debug("protocol error: %s", exc)
        await _send_abort(writer, AbortReason.UNEXPECTED_PDU)
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug or a handler failure must cost one association, not the server
        LOG.exception("acceptor failed")
        await _send_abort(writer, AbortReason.NOT_SPECIFIED)
    finally:
        if counted:
            policy.active -= 1
        await _close(writer)


async def negotiate(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    policy: AcceptorPolicy,
    handlers: Handlers,
) -> AssociationInfo | None:
    """Read the A-ASSOCIATE-RQ, send the A-ASSOCIATE-AC or -RJ ``policy`` decides; return the
    association's facts when accepted, None when rejected, silent past the ARTIM time
    (``policy.associate_timeout`` seconds) or aborted.

    The first half of :func:`serve_association`, public for peers that negotiate properly and
    then behave their own way (the lab's hostile peers, the test kit's scripted acceptor).
    An accepted association counts in ``policy.active``: the caller decrements it when done, or
    leaves it if ``policy.max_associations`` is None. Raises ``dul.errors.DulError`` for a
    broken A-ASSOCIATE-RQ, or an internal exception asking for an A-ABORT when the first PDU
    is not an A-ASSOCIATE-RQ; callers that are not :func:`serve_association` close the
    connection on either.
    """
    try:
        raw = await P.read_pdu(
            reader, timeout=policy.associate_timeout, max_length=P.MAX_ASSOCIATION_PDU
        )
    except PeerTimeout:
        return None  # ARTIM expired: close without a word, as PS3.8 AA-2 says
    if raw.pdu_type != P.A_ASSOCIATE_RQ:
        if raw.pdu_type == P.A_ABORT:
            return None
        raise _Abort(AbortReason.UNEXPECTED_PDU, f"{raw.name} before association")
    cacheable = policy.user_identity_check is None
    outcome = policy.outcomes.get(raw.data) if cacheable else None
    if outcome is None:
        outcome = _negotiate_request(raw, policy)
        if cacheable:
            if len(policy.outcomes) >= 256:
                policy.outcomes.clear()
            policy.outcomes[raw.data] = outcome
    reject, ac_bytes, facts = outcome
    if policy.max_associations is not None and policy.active >= policy.max_associations:
        reject = REJECT_LOCAL_LIMIT
    if reject is not None:
        await _send(writer, [P.reject_pdu(reject)], policy.write_timeout)
        return None
    policy.active += 1
    try:
        await _send(writer, [ac_bytes], policy.write_timeout)
    except BaseException:
        policy.active -= 1
        raise
    peer = writer.get_extra_info("peername")
    return AssociationInfo(
        peer=(str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None, **facts
    )


def _negotiate_request(
    raw: P.RawPdu, policy: AcceptorPolicy
) -> tuple[Reject | None, bytes, dict[str, Any]]:
    """(reject or None, encoded A-ASSOCIATE-AC, association facts) for one request."""
    rq = P.decode(raw)
    try:
        primitive = rq.to_primitive()  # type: ignore[attr-defined]
    except Exception as exc:  # the codec's primitive builder trusts the items it decoded
        raise MalformedPdu(f"unusable A-ASSOCIATE-RQ: {exc}") from None
    calling = str(primitive.calling_ae_title or "").strip()
    called = str(primitive.called_ae_title or "").strip()
    items = list(primitive.user_information or [])
    peer_max = 0
    impl_uid = impl_name = None
    identity: prim.UserIdentityNegotiation | None = None
    roles: dict[str, tuple[bool | None, bool | None]] = {}
    for item in items:
        if isinstance(item, prim.MaximumLengthNotification):
            peer_max = int(item.maximum_length_received or 0)
        elif isinstance(item, prim.ImplementationClassUIDNotification):
            impl_uid = str(item.implementation_class_uid or "") or None
        elif isinstance(item, prim.ImplementationVersionNameNotification):
            impl_name = str(item.implementation_version_name or "").strip() or None
        elif isinstance(item, prim.UserIdentityNegotiation):
            identity = item
        elif isinstance(item, prim.SCP_SCU_RoleSelectionNegotiation) and item.sop_class_uid:
            roles[str(item.sop_class_uid)] = (item.scu_role, item.scp_role)

    reject, identity_response = _decide(policy, rq, primitive, calling, called, identity)
    if reject is not None:
        return reject, b"", {}

    results, ac_roles = negotiate_as_acceptor(
        list(primitive.presentation_context_definition_list or []),
        policy.supported_contexts(),
        roles or None,
    )
    contexts = {
        int(cx.context_id): (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
        for cx in results
        if cx.result == CONTEXT_ACCEPTANCE and cx.context_id is not None and cx.transfer_syntax
    }
    ac = prim.A_ASSOCIATE()
    ac.application_context_name = APPLICATION_CONTEXT_NAME
    ac.calling_ae_title = calling or "UNKNOWN"
    ac.called_ae_title = called or policy.ae_title
    ac.result = 0
    ac.result_source = 1
    ac.presentation_context_definition_results_list = results
    user_info = identity_items(
        policy.max_pdu, policy.implementation_class_uid, policy.implementation_version_name
    )
    user_info.extend(ac_roles)
    if identity_response is not None:
        ui = prim.UserIdentityNegotiation()
        ui.server_response = identity_response
        user_info.append(ui)
    ac.user_information = user_info  # type: ignore[assignment]
    pdu = _pdu.A_ASSOCIATE_AC()
    pdu.from_primitive(ac)
    return (
        None,
        pdu.encode(),
        dict(
            calling_aet=calling,
            called_aet=called,
            implementation_class_uid=impl_uid,
            implementation_version_name=impl_name,
            peer_max_pdu=peer_max,
            user_identity_type=int(identity.user_identity_type) if identity else None,
            username=bytes(identity.primary_field or b"") if identity else None,
            contexts=contexts,
        ),
    )


def _decide(
    policy: AcceptorPolicy,
    rq: _pdu.PDU,
    primitive: prim.A_ASSOCIATE,
    calling: str,
    called: str,
    identity: prim.UserIdentityNegotiation | None,
) -> tuple[Reject | None, bytes | None]:
    """(A-ASSOCIATE-RJ to send or None, user identity server response or None).

    Later checks override earlier ones, in pynetdicom's order, so a scanner sees the same reason
    from us as from a pynetdicom SCP configured the same way.
    """
    reject: Reject | None = None
    response: bytes | None = None
    if policy.calling_aets is not None and calling not in policy.calling_aets:
        reject = REJECT_CALLING_AET
    if policy.called_aets is not None and called not in policy.called_aets:
        reject = REJECT_CALLED_AET
    if identity is None:
        if policy.require_user_identity:
            reject = REJECT_USER_IDENTITY
    elif policy.user_identity_check is not None:
        kind = int(identity.user_identity_type or 0)
        secondary = b""
        if kind == UserIdentityType.USERNAME_PASSCODE:
            secondary = bytes(identity.secondary_field or b"")
        verdict = policy.user_identity_check(kind, bytes(identity.primary_field or b""), secondary)
        if verdict is False:
            reject = REJECT_USER_IDENTITY
        elif identity.positive_response_requested and verdict is not None:
            response = verdict if isinstance(verdict, bytes) else b""
    elif policy.require_user_identity:
        # required but nothing can verify it: refuse, never wave through
        reject = REJECT_USER_IDENTITY
    if str(primitive.application_context_name or "") != APPLICATION_CONTEXT_NAME:
        reject = REJECT_APPLICATION_CONTEXT
    if getattr(rq, "protocol_version", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        reject = REJECT_PROTOCOL_VERSION
    # (the association limit is checked per connection in negotiate: it changes over time)
    return reject, (None if reject else response)


class _Established:
    """One accepted association: a reader task feeding a queue, a dispatcher answering it.

    The reader runs on its own so a C-CANCEL (or A-ABORT) that arrives while a long C-FIND is
    streaming results is seen between two results instead of after the last one.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        policy: AcceptorPolicy,
        handlers: Handlers,
        info: AssociationInfo,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.policy = policy
        self.handlers = handlers
        self.info = info
        self.queue: asyncio.Queue[dimse.DimseMessage | str | BaseException] = asyncio.Queue()
        self.backlog: deque[dimse.DimseMessage | str | BaseException] = deque()
        #: an operation is being answered: the peer's silence is expected, not idleness
        self.busy = False
        self.last_activity = asyncio.get_running_loop().time()
        #: C-FIND responses held back to be sent packed (``pack_find_responses``)
        self._held: list[bytes] | None = None

    async def run(self) -> None:
        task = asyncio.create_task(self._read_loop())
        try:
            while True:
                item = self.backlog.popleft() if self.backlog else await self.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item == _RELEASE:
                    await _send(self.writer, [P.RELEASE_RP], self.policy.write_timeout)
                    return
                if item == _PEER_ABORT:
                    return
                assert isinstance(item, dimse.DimseMessage)
                self.busy = True
                try:
                    await self._dispatch(item)
                finally:
                    self.busy = False
                    self.last_activity = asyncio.get_running_loop().time()
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _read_loop(self) -> None:
        assembler = dimse.MessageAssembler(self.policy.max_message_bytes)
        max_pdata = max(self.policy.max_pdu, 16384) + 4096
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    raw = await P.read_pdu(
                        self.reader, timeout=self.policy.idle_timeout, max_length=max_pdata
                    )
                except PeerTimeout:
                    # A requestor waiting for a long C-FIND is silent but not idle.
                    if self.busy or loop.time() - self.last_activity < self.policy.idle_timeout:
                        continue
                    raise
                self.last_activity = loop.time()
                if raw.pdu_type == P.P_DATA_TF:
                    for msg in assembler.feed(raw.data):
                        self.queue.put_nowait(msg)
                elif raw.pdu_type == P.A_RELEASE_RQ:
                    self.queue.put_nowait(_RELEASE)
                    return
                elif raw.pdu_type == P.A_ABORT:
                    self.queue.put_nowait(_PEER_ABORT)
                    return
                else:
                    raise _Abort(AbortReason.UNEXPECTED_PDU, f"unexpected {raw.name}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.queue.put_nowait(exc)

    # -- dispatch -------------------------------------------------------------------------------
    async def _dispatch(self, msg: dimse.DimseMessage) -> None:
        ctx = self.info.contexts.get(msg.context_id)
        if ctx is None:
            raise _Abort(AbortReason.INVALID_PDU_PARAMETER_VALUE,
                         f"message on unaccepted context {msg.context_id}")
        field_ = msg.command_field
        kind = _OPERATION_KINDS.get(field_)
        if kind and self.handlers.refuse is not None and self.handlers.refuse(kind, self.info):
            raise _Abort(AbortReason.NOT_SPECIFIED, f"{kind} refused for {self.info.calling_aet}")
        if field_ == dimse.C_ECHO_RQ:
            await self._respond(dm.C_ECHO_RSP, msg, STATUS_SUCCESS)
        elif field_ == dimse.C_FIND_RQ:
            await self._find(msg, ctx)
        elif field_ == dimse.C_STORE_RQ:
            await self._store(msg, ctx)
        elif field_ == dimse.C_MOVE_RQ:
            await self._retrieve(msg, ctx, dm.C_MOVE_RSP, self.handlers.move)
        elif field_ == dimse.C_GET_RQ:
            await self._retrieve(msg, ctx, dm.C_GET_RSP, self.handlers.get)
        elif field_ == dimse.C_CANCEL_RQ:
            return  # a cancel for an operation already finished: nothing to do
        else:
            raise _Abort(AbortReason.UNRECOGNIZED_PDU, f"unsupported DIMSE command 0x{field_:04x}")

    async def _respond(
        self,
        kind: type[dm.DIMSEMessage],
        msg: dimse.DimseMessage,
        status: int,
        dataset: bytes | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        request = msg.command
        values: dict[str, int | str] = {
            "CommandField": request.command_field | RESPONSE_BIT,
            "MessageIDBeingRespondedTo": int(request.get("MessageID", 0) or 0),
            "CommandDataSetType": DATA_SET_PRESENT if dataset is not None else DATA_SET_ABSENT,
            "Status": status,
        }
        for keyword in ("AffectedSOPClassUID", "AffectedSOPInstanceUID"):
            if request.get(keyword):
                values[keyword] = request.get(keyword)  # type: ignore[assignment]
        values.update(extra or {})  # type: ignore[arg-type]
        command = encode_command(values)
        pdus = pdata_pdus(msg.context_id, command, dataset, self.info.peer_max_pdu)
        if self._held is not None:
            self._held.extend(pdus)
            return
        if self.policy.pack_find_responses == "message" and kind is dm.C_FIND_RSP:
            pdus = dimse.pack_pdata(pdus, self.info.peer_max_pdu)
        await _send(self.writer, pdus, self.policy.write_timeout)

    async def _find(self, msg: dimse.DimseMessage, ctx: tuple[str, str]) -> None:
        sop_class, ts = ctx
        if self.handlers.find is None:
            await self._respond(dm.C_FIND_RSP, msg, STATUS_SOP_CLASS_NOT_SUPPORTED)
            return
        if msg.dataset is None:
            await self._respond(dm.C_FIND_RSP, msg, STATUS_IDENTIFIER_MISMATCH)
            return
        identifier = dimse.decode_dataset(msg.dataset, ts)
        message_id = int(msg.command.get("MessageID", 0))
        results = self.handlers.find(FindRequest(sop_class, identifier, self.info, ts))
        final = STATUS_SUCCESS
        final_data: bytes | None = None
        if self.policy.pack_find_responses == "query":
            self._held = []
        try:
            async for status, ds in results:
                if self._cancel_seen(message_id):
                    final = STATUS_CANCEL
                    break
                if not is_pending(status):
                    final = status
                    if ds is not None:  # a quirk some SCPs have (pynetdicom #571): kept
                        final_data = ds if isinstance(ds, bytes) else dimse.encode_dataset(ds, ts)
                    break
                # a handler may hand over bytes already encoded in this context's syntax
                encoded = ds is None or isinstance(ds, bytes)
                data = ds if encoded else dimse.encode_dataset(ds, ts)
                await self._respond(dm.C_FIND_RSP, msg, status, data)
                await asyncio.sleep(0)  # let the reader task see a C-CANCEL
            else:
                if self._cancel_seen(message_id):
                    final = STATUS_CANCEL
        except (DulError, _Abort):
            raise
        except Exception:
            LOG.exception("C-FIND handler failed")
            final = STATUS_UNABLE_TO_PROCESS
        finally:
            aclose = getattr(results, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await self._respond(dm.C_FIND_RSP, msg, final, final_data)
        held, self._held = self._held, None
        if held is not None:
            packed = dimse.pack_pdata(held, self.info.peer_max_pdu)
            await _send(self.writer, packed, self.policy.write_timeout)

    def _cancel_seen(self, message_id: int) -> bool:
        """Drain what the reader has queued; True if it holds a C-CANCEL for ``message_id``.

        A peer abort or a broken stream ends the C-FIND at once; anything else (the next
        request, a release) waits in the backlog until the final response has gone out.
        """
        found = False
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, BaseException):
                raise item
            if item == _PEER_ABORT:
                raise PeerClosed("peer aborted during C-FIND")
            if (
                isinstance(item, dimse.DimseMessage)
                and item.command_field == dimse.C_CANCEL_RQ
                and int(item.command.get("MessageIDBeingRespondedTo", -1)) == message_id
            ):
                found = True
                continue
            self.backlog.append(item)
        return found

    async def _store(self, msg: dimse.DimseMessage, ctx: tuple[str, str]) -> None:
        sop_class, ts = ctx
        status = STATUS_SOP_CLASS_NOT_SUPPORTED
        if self.handlers.store is not None:
            request = StoreRequest(
                sop_class=sop_class,
                sop_instance=str(msg.command.get("AffectedSOPInstanceUID", "")),
                dataset=msg.dataset or b"",
                transfer_syntax=ts,
                association=self.info,
            )
            try:
                status = await self.handlers.store(request)
            except Exception:
                LOG.exception("C-STORE handler failed")
                status = STATUS_UNABLE_TO_PROCESS
        await self._respond(dm.C_STORE_RSP, msg, status)

    async def _retrieve(
        self,
        msg: dimse.DimseMessage,
        ctx: tuple[str, str],
        kind: type[dm.DIMSEMessage],
        handler: RetrieveHandler | None,
    ) -> None:
        sop_class, ts = ctx
        status, extra = STATUS_SOP_CLASS_NOT_SUPPORTED, {}
        if handler is not None:
            is_move = kind is dm.C_MOVE_RSP
            request = RetrieveRequest(
                command_field=msg.command_field,
                sop_class=sop_class,
                move_destination=(
                    str(msg.command.get("MoveDestination", "")).strip() if is_move else None
                ),
                identifier=msg.dataset,
                transfer_syntax=ts,
                association=self.info,
            )
            try:
                status, extra = await handler(request)
            except Exception:
                LOG.exception("C-MOVE/C-GET handler failed")
                status, extra = STATUS_UNABLE_TO_PROCESS, {}
        await self._respond(kind, msg, status, extra=dict(extra))


async def _send(writer: asyncio.StreamWriter, pdus: list[bytes], timeout: float) -> None:
    try:
        for data in pdus:
            writer.write(data)
        await asyncio.wait_for(writer.drain(), timeout)
    except TimeoutError:
        raise PeerTimeout("peer stopped reading") from None
    except (ConnectionError, OSError) as exc:
        raise PeerClosed(f"connection lost while sending: {exc}") from None


async def _send_abort(writer: asyncio.StreamWriter, reason: int) -> None:
    with contextlib.suppress(Exception):
        writer.write(P.provider_abort_pdu(reason))
        await asyncio.wait_for(writer.drain(), 1.0)


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    with contextlib.suppress(Exception):
        writer.transport.abort()


async def start_acceptor(
    host: str,
    port: int,
    policy: AcceptorPolicy,
    handlers: Handlers | None = None,
    **server_kwargs: object,
) -> asyncio.Server:
    """Listen on ``host:port`` and serve every connection with ``policy`` and ``handlers``.

    ``server_kwargs`` go to ``asyncio.start_server`` (``ssl=``, ``reuse_address=`` ...).
    """

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_association(reader, writer, policy, handlers)

    return await asyncio.start_server(on_connect, host, port, **server_kwargs)  # type: ignore[arg-type]
