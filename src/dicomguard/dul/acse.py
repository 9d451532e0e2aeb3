"""Association negotiation: build an A-ASSOCIATE-RQ, read the AC or RJ that answers it.

pynetdicom's primitives and PDU classes do the encoding; this module keeps the result in a small
frozen record the scanner can store. A reject is a :class:`.codes.Reject` (PS3.8 9.3.4, its
reasons named there) so a verdict can say *why* a server refused; ``Reject`` and
``UserIdentityType`` are importable from here too, beside the request they answer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import pdu as _pdu
from pynetdicom import pdu_primitives as prim
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification

from .. import __version__
from .codes import (
    APPLICATION_CONTEXT_NAME,
    CONTEXT_ACCEPTANCE,
    CONTEXT_NO_REASON,
    Reject,
    UserIdentityType,
)
from .errors import MalformedPdu

DEFAULT_TRANSFER_SYNTAXES = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))

#: dicomguard's own identity (issue 6: honest by default). 2.25 root from a fixed UUID.
IMPLEMENTATION_CLASS_UID = "2.25.305828488182648779632024563416215404731"
IMPLEMENTATION_VERSION_NAME = ("DICOMGUARD_" + __version__.replace(".", ""))[:16]

DEFAULT_MAX_PDU = 65536


@dataclass(frozen=True)
class UserIdentity:
    """A user identity sub-item to send (primary = username or token)."""

    kind: UserIdentityType
    primary: bytes
    secondary: bytes = b""
    positive_response_requested: bool = True


def identity_items(max_pdu: int, class_uid: str | None, version_name: str | None) -> list[object]:
    """The user-information items every A-ASSOCIATE-RQ and -AC carries about its sender:
    maximum length, implementation class UID and (optional) version name."""
    items: list[object] = []
    ml = prim.MaximumLengthNotification()
    ml.maximum_length_received = max_pdu
    items.append(ml)
    if class_uid:
        ic = prim.ImplementationClassUIDNotification()
        ic.implementation_class_uid = class_uid
        items.append(ic)
    if version_name:
        iv = prim.ImplementationVersionNameNotification()
        iv.implementation_version_name = version_name
        items.append(iv)
    return items


@dataclass(frozen=True)
class AssociateRequest:
    """Everything that shapes one A-ASSOCIATE-RQ."""

    called_aet: str = "ANY-SCP"
    calling_aet: str = "DICOMGUARD"
    abstract_syntaxes: tuple[str, ...] = (str(Verification),)
    transfer_syntaxes: tuple[str, ...] = DEFAULT_TRANSFER_SYNTAXES
    max_pdu: int = DEFAULT_MAX_PDU
    user_identity: UserIdentity | None = None
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version_name: str | None = IMPLEMENTATION_VERSION_NAME

    def context_ids(self) -> dict[int, str]:
        """Presentation context ID (odd, from 1) for each abstract syntax, in order."""
        return {2 * i + 1: uid for i, uid in enumerate(self.abstract_syntaxes)}

    def encode(self) -> bytes:
        """The encoded A-ASSOCIATE-RQ PDU (cached: a scan sends the same few requests to
        every endpoint, and pynetdicom's encoder costs most of a millisecond each time)."""
        return _encode_request(self)

    def _encode(self) -> bytes:
        if not 1 <= len(self.abstract_syntaxes) <= 128:
            raise ValueError("an association carries 1 to 128 presentation contexts")
        p = prim.A_ASSOCIATE()
        p.application_context_name = APPLICATION_CONTEXT_NAME
        p.calling_ae_title = self.calling_aet
        p.called_ae_title = self.called_aet
        contexts = []
        for cid, uid in self.context_ids().items():
            cx = PresentationContext()
            cx.context_id = cid
            cx.abstract_syntax = uid
            cx.transfer_syntax = list(self.transfer_syntaxes)
            contexts.append(cx)
        p.presentation_context_definition_list = contexts
        items = identity_items(
            self.max_pdu, self.implementation_class_uid, self.implementation_version_name
        )
        if self.user_identity is not None:
            ui = prim.UserIdentityNegotiation()
            ui.user_identity_type = int(self.user_identity.kind)
            ui.positive_response_requested = self.user_identity.positive_response_requested
            ui.primary_field = self.user_identity.primary
            if self.user_identity.kind == UserIdentityType.USERNAME_PASSCODE:
                ui.secondary_field = self.user_identity.secondary
            items.append(ui)
        p.user_information = items  # type: ignore[assignment]
        rq = _pdu.A_ASSOCIATE_RQ()
        rq.from_primitive(p)
        return rq.encode()


@functools.lru_cache(maxsize=256)
def _encode_request(request: AssociateRequest) -> bytes:
    return request._encode()


@dataclass(frozen=True)
class Accept:
    """A decoded A-ASSOCIATE-AC: what the peer said about itself and our contexts."""

    implementation_class_uid: str | None
    implementation_version_name: str | None
    max_pdu: int | None
    #: context id -> (abstract syntax, accepted transfer syntax) for accepted contexts
    accepted: dict[int, tuple[str, str]] = field(default_factory=dict)
    #: abstract syntax -> result code (0 accepted, 1..4 rejected) for every proposed context
    results: dict[str, int] = field(default_factory=dict)
    #: server response to a user identity sub-item, when it sent one
    user_identity_response: bytes | None = None
    responding_aet: str | None = None

    def accepts(self, abstract_syntax: str) -> bool:
        return self.results.get(abstract_syntax) == CONTEXT_ACCEPTANCE

    def context_for(self, abstract_syntax: str) -> tuple[int, str] | None:
        """(context id, transfer syntax) of an accepted abstract syntax, or None."""
        for cid, (uid, ts) in self.accepted.items():
            if uid == abstract_syntax:
                return cid, ts
        return None


def decode_reject(pdu: _pdu.A_ASSOCIATE_RJ) -> Reject:
    """The result/source/reason triple of an A-ASSOCIATE-RJ (PS3.8 Table 9-21).

    Raises :class:`MalformedPdu` if the fields are not numbers (never anything else).
    """
    try:
        return Reject(int(pdu.result or 0), int(pdu.source or 0), int(pdu.reason_diagnostic or 0))
    except (TypeError, ValueError) as exc:
        raise MalformedPdu(f"undecodable A-ASSOCIATE-RJ: {exc}") from None


def decode_accept(
    pdu: _pdu.A_ASSOCIATE_AC, request: AssociateRequest, *, raw: bytes | None = None
) -> Accept:
    """Read an AC against the request it answers (the AC names contexts by ID only).

    Raises :class:`MalformedPdu` (``evidence`` = ``raw``, the AC's first bytes) for an AC
    pynetdicom decodes but cannot turn into a primitive: a presentation-context item with
    context ID 0 or an even one (PS3.8 9.3.3.2 wants odd 1-255), a sub-item of the wrong
    type (0x10, an application context item, inside a context item), a non-numeric result.
    Servers seen doing so: none named; issue 12 reproduced both from a hostile peer.
    """
    try:
        return _decode_accept(pdu, request)
    except MalformedPdu:
        raise
    except Exception as exc:  # pynetdicom's primitives raise ValueError, AttributeError, ...
        raise MalformedPdu(
            f"malformed A-ASSOCIATE-AC: {type(exc).__name__}: {exc}", evidence=raw
        ) from None


def _decode_accept(pdu: _pdu.A_ASSOCIATE_AC, request: AssociateRequest) -> Accept:
    proposed = request.context_ids()
    primitive = pdu.to_primitive()
    accepted: dict[int, tuple[str, str]] = {}
    results: dict[str, int] = {}
    for cx in primitive.presentation_context_definition_results_list:
        cid = cx.context_id
        uid = proposed.get(cid or -1)
        if uid is None:
            continue  # a context we never proposed: ignore, a strict peer would abort
        code = int(cx.result if cx.result is not None else CONTEXT_NO_REASON)
        results[uid] = code
        if code == CONTEXT_ACCEPTANCE and cx.transfer_syntax:
            accepted[cid] = (uid, str(cx.transfer_syntax[0]))
    max_pdu = icu = ivn = None
    ui_resp: bytes | None = None
    for item in primitive.user_information or []:
        if isinstance(item, prim.MaximumLengthNotification):
            max_pdu = item.maximum_length_received
        elif isinstance(item, prim.ImplementationClassUIDNotification):
            icu = str(item.implementation_class_uid) if item.implementation_class_uid else None
        elif isinstance(item, prim.ImplementationVersionNameNotification):
            ivn = item.implementation_version_name
            if isinstance(ivn, bytes):
                ivn = ivn.decode("ascii", "replace")
        elif isinstance(item, prim.UserIdentityNegotiation):
            ui_resp = item.server_response or b""
    responding = getattr(pdu, "_reserved_aet", None)
    if isinstance(responding, bytes):
        responding = responding.decode("ascii", "replace").strip() or None
    return Accept(
        implementation_class_uid=icu,
        implementation_version_name=(ivn.strip() if isinstance(ivn, str) else None),
        max_pdu=max_pdu,
        accepted=accepted,
        results=results,
        user_identity_response=ui_resp,
        responding_aet=responding if isinstance(responding, str) else None,
    )
