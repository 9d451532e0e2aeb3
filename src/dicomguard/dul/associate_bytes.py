"""A-ASSOCIATE-RQ/AC read and rewritten as bytes: AE titles and user identity, nothing else.

The gateway needs three things from an association request (the two AE titles and the user
identity sub-item) and two edits on the way through (new AE titles, the user identity removed
or answered). pynetdicom can do all of it (decode → primitive → edit → encode), but for the
120-odd presentation contexts DCMTK's storescu proposes that round trip validates every UID with
regular expressions and costs tens of milliseconds per association, which was most of the time
of a short storescu run through the gateway. Here the PDU is walked once: every item and sub-item
length is checked against its container (so nothing malformed reaches a legacy backend), and the
edits splice the few bytes that change. Layout: PS3.8 9.3.2 (RQ), 9.3.3 (AC) and the user
information sub-items of PS3.7 D.3.3.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pynetdicom import pdu_primitives as prim

from .codes import A_ASSOCIATE_AC, A_ASSOCIATE_RQ, CONTEXT_ACCEPTANCE, UserIdentityType
from .codes import ITEM_ABSTRACT_SYNTAX as ABSTRACT_SYNTAX
from .codes import ITEM_APPLICATION_CONTEXT as APPLICATION_CONTEXT
from .codes import ITEM_PRESENTATION_CONTEXT_AC as CONTEXT_AC
from .codes import ITEM_PRESENTATION_CONTEXT_RQ as CONTEXT_RQ
from .codes import ITEM_TRANSFER_SYNTAX as TRANSFER_SYNTAX
from .codes import ITEM_USER_INFORMATION as USER_INFORMATION
from .codes import SUBITEM_USER_IDENTITY_AC as USER_IDENTITY_AC
from .codes import SUBITEM_USER_IDENTITY_RQ as USER_IDENTITY_RQ
from .errors import MalformedPdu

_FIXED = 74  # header (6) + version (2) + reserved (2) + called (16) + calling (16) + reserved (32)
_ITEM = struct.Struct(">BBH")
_U16 = struct.Struct(">H")

_TOP_ITEMS = {
    A_ASSOCIATE_RQ: {APPLICATION_CONTEXT, CONTEXT_RQ, USER_INFORMATION},
    A_ASSOCIATE_AC: {APPLICATION_CONTEXT, CONTEXT_AC, USER_INFORMATION},
}
#: UIDs are digits and dots, but old devices are known to send letters; what is refused is what
#: cannot be a UID at all (empty, too long, control or non-ASCII bytes).
_UID_CHARS = bytes(range(0x21, 0x7F))
_IDENTITY_TYPES = frozenset(UserIdentityType)


@dataclass
class AssociateView:
    """What the gateway's policy reads from an A-ASSOCIATE-RQ (duck-typed like pynetdicom's
    ``A_ASSOCIATE`` primitive for the three attributes it uses)."""

    pdu_type: int
    called_ae_title: str
    calling_ae_title: str
    user_information: list[prim.UserIdentityNegotiation]
    #: (start, end) of the user information item, if any
    user_info_span: tuple[int, int] | None
    #: (start, end) of the user identity sub-item inside it, if any
    identity_span: tuple[int, int] | None
    #: protocol-version field (PS3.8 9.3.2: bit 0 set, version 1, is the only one defined)
    protocol_version: int = 1
    #: presentation context ID -> abstract syntax (RQ) or -> result/reason as a string
    #: ("0" acceptance, PS3.8 9.3.3.2) (AC); IDs are unique (a repeated one is malformed)
    contexts: dict[int, str] = field(default_factory=dict)


def _items(data: bytes, start: int, end: int, what: str) -> list[tuple[int, int, int]]:
    """(type, value start, value end) of each item in ``data[start:end]``; lengths checked."""
    out = []
    pos = start
    while pos < end:
        if pos + 4 > end:
            raise MalformedPdu(f"truncated {what} item header")
        kind, _, length = _ITEM.unpack_from(data, pos)
        value_end = pos + 4 + length
        if value_end > end:
            raise MalformedPdu(f"{what} item 0x{kind:02x} of {length} bytes overruns its PDU")
        out.append((kind, pos + 4, value_end))
        pos = value_end
    return out


def _check_uid(data: bytes, start: int, end: int, what: str) -> None:
    value = data[start:end].rstrip(b"\x00 ")
    # translate() deletes the allowed bytes in C: anything left over is not allowed
    if not value or len(value) > 64 or value.translate(None, _UID_CHARS):
        raise MalformedPdu(f"{what} is not a UID")


def _ae(data: bytes, offset: int) -> str:
    raw = data[offset : offset + 16].rstrip(b"\x00")  # some devices pad with NULs
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise MalformedPdu("AE title with control or non-ASCII characters")
    return raw.decode("ascii").strip()


def parse_associate(data: bytes) -> AssociateView:
    """Validate the structure of an A-ASSOCIATE-RQ or -AC and return what the policy needs.

    Raises :class:`MalformedPdu` for any length that does not add up, an unknown item, a
    presentation context without its syntaxes, a proposed presentation context ID that is even
    or given twice, or a user identity sub-item that lies.
    """
    if len(data) < _FIXED or data[0] not in _TOP_ITEMS:
        raise MalformedPdu("not an A-ASSOCIATE-RQ/AC")
    pdu_type = data[0]
    (length,) = struct.unpack_from(">L", data, 2)
    if length + 6 != len(data):
        raise MalformedPdu("A-ASSOCIATE length does not match its bytes")
    called, calling = _ae(data, 10), _ae(data, 26)
    (version,) = _U16.unpack_from(data, 6)
    seen_app = False
    contexts: dict[int, str] = {}
    user_info_span = identity_span = None
    identities: list[prim.UserIdentityNegotiation] = []
    for kind, start, end in _items(data, _FIXED, len(data), "A-ASSOCIATE"):
        if kind not in _TOP_ITEMS[pdu_type]:
            raise MalformedPdu(f"unexpected item 0x{kind:02x} in A-ASSOCIATE")
        if kind == APPLICATION_CONTEXT:
            if seen_app:
                raise MalformedPdu("two application context items")
            seen_app = True
            _check_uid(data, start, end, "application context name")
        elif kind in (CONTEXT_RQ, CONTEXT_AC):
            cid = data[start] if end > start else 0
            if kind == CONTEXT_RQ and not cid % 2:
                # PS3.8 9.3.2.2: odd, 1 to 255. Backends disagree on an even one (measured:
                # DCMTK's storescp and dcmqrscp and Orthanc accept 0 and 2 and answer on them,
                # pynetdicom's decoder raises and the association hangs): no reading to trust
                raise MalformedPdu(f"presentation context ID {cid} is even (PS3.8 9.3.2.2: "
                                   "odd, 1 to 255)")
            if cid in contexts:
                # Two readings (first or last proposal) would give two abstract syntaxes
                raise MalformedPdu(f"presentation context ID {cid} given twice")
            contexts[cid] = _check_context(data, start, end, kind)
        else:
            if user_info_span is not None:
                raise MalformedPdu("two user information items")
            user_info_span = (start - 4, end)
            for sub, s_start, s_end in _items(data, start, end, "user information"):
                if sub in (USER_IDENTITY_RQ, USER_IDENTITY_AC):
                    if identity_span is not None:
                        raise MalformedPdu("two user identity sub-items")
                    identity_span = (s_start - 4, s_end)
                    if sub == USER_IDENTITY_RQ:
                        identities.append(_user_identity(data, s_start, s_end))
    if not seen_app:
        raise MalformedPdu("no application context item")
    if pdu_type == A_ASSOCIATE_RQ and not contexts:
        raise MalformedPdu("no presentation context proposed")
    return AssociateView(pdu_type, called, calling, identities, user_info_span, identity_span,
                         version, contexts)


def _check_context(data: bytes, start: int, end: int, kind: int) -> str:
    """Check one presentation context item; its abstract syntax (RQ) or result (AC)."""
    if end - start < 4:
        raise MalformedPdu("presentation context item too short")
    # PS3.8 9.3.3.2: the transfer syntax of a context the acceptor refused is not significant
    checked = kind == CONTEXT_RQ or data[start + 2] == 0
    abstract = transfer = 0
    name = ""
    for sub, s_start, s_end in _items(data, start + 4, end, "presentation context"):
        if sub == ABSTRACT_SYNTAX and kind == CONTEXT_RQ:
            abstract += 1
            _check_uid(data, s_start, s_end, "abstract syntax")
            name = data[s_start:s_end].rstrip(b"\x00 ").decode("ascii")
        elif sub == TRANSFER_SYNTAX:
            transfer += 1
            if checked:
                _check_uid(data, s_start, s_end, "transfer syntax")
        else:
            raise MalformedPdu(f"unexpected sub-item 0x{sub:02x} in a presentation context")
    result = data[start + 2]
    if kind == CONTEXT_RQ and (abstract != 1 or not transfer):
        raise MalformedPdu("presentation context without one abstract and a transfer syntax")
    if kind == CONTEXT_AC and result == CONTEXT_ACCEPTANCE and transfer != 1:
        raise MalformedPdu("accepted presentation context without one transfer syntax")
    return name if kind == CONTEXT_RQ else str(result)


def _user_identity(data: bytes, start: int, end: int) -> prim.UserIdentityNegotiation:
    if end - start < 4:
        raise MalformedPdu("user identity sub-item too short")
    kind, positive = data[start], data[start + 1]
    (primary_len,) = _U16.unpack_from(data, start + 2)
    pos = start + 4 + primary_len
    if pos + 2 > end:
        raise MalformedPdu("user identity primary field overruns its sub-item")
    primary = data[start + 4 : pos]
    (secondary_len,) = _U16.unpack_from(data, pos)
    if pos + 2 + secondary_len != end:
        raise MalformedPdu("user identity secondary field does not fill its sub-item")
    secondary = data[pos + 2 : end]
    if kind not in _IDENTITY_TYPES or not primary:
        raise MalformedPdu(f"user identity of type {kind} with an empty primary field")
    ui = prim.UserIdentityNegotiation()
    ui.user_identity_type = kind
    ui.positive_response_requested = bool(positive)
    ui.primary_field = primary
    if kind == UserIdentityType.USERNAME_PASSCODE:
        ui.secondary_field = secondary
    return ui


def _pad_ae(title: str) -> bytes:
    return title.encode("ascii")[:16].ljust(16, b" ")


def rewrite_associate(
    data: bytes,
    view: AssociateView,
    *,
    called: str,
    calling: str,
    strip_identity: bool = False,
    identity_answer: bool = False,
) -> bytes:
    """``data`` with new AE titles; the user identity sub-item removed if ``strip_identity``;
    an empty user identity answer (PS3.7 D.3.3.7.2) added if ``identity_answer`` (AC only).
    Every enclosing length is recomputed."""
    out = bytearray(data)
    out[10:26] = _pad_ae(called)
    out[26:42] = _pad_ae(calling)
    if view.user_info_span is not None and (strip_identity or identity_answer):
        ui_start, ui_end = view.user_info_span
        body = bytes(out[ui_start + 4 : ui_end])
        if strip_identity and view.identity_span is not None:
            id_start, id_end = view.identity_span
            body = body[: id_start - ui_start - 4] + body[id_end - ui_start - 4 :]
        if identity_answer:
            body += _ITEM.pack(USER_IDENTITY_AC, 0, 2) + _U16.pack(0)
        out[ui_start:ui_end] = _ITEM.pack(USER_INFORMATION, 0, len(body)) + body
        struct.pack_into(">L", out, 2, len(out) - 6)
    return bytes(out)
