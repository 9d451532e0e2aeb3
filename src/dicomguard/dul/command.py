"""A DIMSE command set read from its bytes: the elements dicomguard acts on, in microseconds.

Hand-written on purpose. Command sets are always Implicit VR Little Endian group 0000 elements
(PS3.7 6.3.1, E.1), so they are a flat list of (tag, length, value). pydicom's reader builds a
full ``Dataset`` with validated values, which measured ~0.4 ms per command: more than the rest of
a C-FIND response's handling on the scanner's and the gateway's hot paths. The raw bytes are
kept, so whoever needs the whole command set still gets it from pydicom (:meth:`dataset`).
"""

from __future__ import annotations

import struct
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode as _decode_ds

from .codes import (
    C_CANCEL_RQ,
    C_ECHO_RQ,
    C_FIND_RQ,
    C_GET_RQ,
    C_MOVE_RQ,
    C_STORE_RQ,
    DATA_SET_ABSENT,
    N_ACTION_RQ,
    N_CREATE_RQ,
    N_DELETE_RQ,
    N_EVENT_REPORT_RQ,
    N_GET_RQ,
    N_SET_RQ,
    P_DATA_TF,
    PDV_COMMAND,
    PDV_LAST,
    RESPONSE_BIT,
)
from .errors import MalformedPdu

_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")

#: element number in group 0000 -> (keyword, True for US values, False for text)
_WANTED: dict[int, tuple[str, bool]] = {
    0x0002: ("AffectedSOPClassUID", False),
    0x0003: ("RequestedSOPClassUID", False),
    0x0100: ("CommandField", True),
    0x0110: ("MessageID", True),
    0x0120: ("MessageIDBeingRespondedTo", True),
    0x0600: ("MoveDestination", False),
    0x0700: ("Priority", True),
    0x0800: ("CommandDataSetType", True),
    0x0900: ("Status", True),
    0x0902: ("ErrorComment", False),
    0x1000: ("AffectedSOPInstanceUID", False),
    0x1001: ("RequestedSOPInstanceUID", False),
    0x1020: ("NumberOfRemainingSuboperations", True),
    0x1021: ("NumberOfCompletedSuboperations", True),
    0x1022: ("NumberOfFailedSuboperations", True),
    0x1023: ("NumberOfWarningSuboperations", True),
    0x1030: ("MoveOriginatorApplicationEntityTitle", False),
    0x1031: ("MoveOriginatorMessageID", True),
}


class CommandSet:
    """The elements of one command set by pydicom keyword; reads like a small ``Dataset``."""

    __slots__ = ("raw", "values")

    def __init__(self, raw: bytes, values: dict[str, int | str]) -> None:
        self.raw = raw
        self.values = values

    def get(self, keyword: str, default: int | str | None = None) -> int | str | None:
        return self.values.get(keyword, default)

    def __contains__(self, keyword: object) -> bool:
        return keyword in self.values

    def __getattr__(self, keyword: str) -> int | str:
        try:
            return self.values[keyword]
        except KeyError:
            raise AttributeError(keyword) from None

    @property
    def command_field(self) -> int:
        return int(self.values["CommandField"])

    @property
    def has_dataset(self) -> bool:
        return int(self.values["CommandDataSetType"]) != DATA_SET_ABSENT

    def dataset(self) -> Dataset:
        """The whole command set as a pydicom Dataset (for building a response to it)."""
        return _decode_ds(BytesIO(self.raw), True, True)


def parse_command(raw: bytes) -> CommandSet:
    """Read a command set; raises :class:`MalformedPdu` for anything that is not one."""
    values: dict[str, int | str] = {}
    pos, end = 0, len(raw)
    while pos < end:
        if pos + 8 > end:
            raise MalformedPdu("command set: truncated element header")
        group, element, length = _ELEMENT.unpack_from(raw, pos)
        pos += 8
        if group != 0x0000:
            raise MalformedPdu(f"command set: ({group:04x},{element:04x}) is not in group 0000")
        if length == 0xFFFFFFFF or pos + length > end:
            raise MalformedPdu(f"command set: element (0000,{element:04x}) length {length}")
        wanted = _WANTED.get(element)
        if wanted is not None and length:  # empty optional elements are legal (pynetdicom)
            keyword, is_us = wanted
            if is_us:
                if length != 2:
                    raise MalformedPdu(f"command set: {keyword} has length {length}")
                values[keyword] = _US.unpack_from(raw, pos)[0]
            else:
                text = raw[pos : pos + length].rstrip(b"\x00 ")
                values[keyword] = text.decode("ascii", "replace").strip()
        pos += length
    for keyword in ("CommandField", "CommandDataSetType"):
        if keyword not in values:
            raise MalformedPdu(f"command set without {keyword}")
    return CommandSet(raw, values)


_BY_KEYWORD: dict[str, tuple[int, bool]] = {kw: (el, us) for el, (kw, us) in _WANTED.items()}
_UID_ELEMENTS = {0x0002, 0x0003, 0x1000, 0x1001}


def encode_command(values: dict[str, int | str]) -> bytes:
    """Encode a command set (Implicit VR LE, group length first) from keyword -> value.

    The counterpart of :func:`parse_command`, for the responses dicomguard itself sends (lab,
    gateway): building them through pynetdicom's message classes and pydicom cost ~0.3 ms each
    and left empty optional elements in the output. ``None`` values are left out.
    """
    body = bytearray()
    for element, keyword, value in sorted(
        (_BY_KEYWORD[k][0], k, v) for k, v in values.items() if v is not None
    ):
        if _BY_KEYWORD[keyword][1]:
            raw = _US.pack(int(value))
        else:
            raw = str(value).encode("ascii")
            if len(raw) % 2:
                raw += b"\x00" if element in _UID_ELEMENTS else b" "
        body += _ELEMENT.pack(0x0000, element, len(raw)) + raw
    return _ELEMENT.pack(0x0000, 0x0000, 4) + struct.pack("<L", len(body)) + bytes(body)


def pdata_pdus(context_id: int, command: bytes, dataset: bytes | None, max_pdu: int) -> list[bytes]:
    """P-DATA-TF PDUs carrying one message, each PDV list within the peer's maximum length."""
    room = (max_pdu - 6) if max_pdu and max_pdu > 6 else 1 << 30
    out = []
    for payload, is_command in ((command, True), (dataset, False)):
        if payload is None:
            continue
        for start in range(0, max(len(payload), 1), room):
            fragment = payload[start : start + room]
            last = start + room >= len(payload)
            header = (PDV_COMMAND if is_command else 0) | (PDV_LAST if last else 0)
            item = struct.pack(">LBB", len(fragment) + 2, context_id, header) + fragment
            out.append(struct.pack(">BBL", P_DATA_TF, 0, len(item)) + item)
    return out


# --- the gateway's strict reading ----------------------------------------------------------------


class CommandRefused(MalformedPdu):
    """A command set that two DICOM implementations could read differently, or that breaks the
    command's table in PS3.7: the gateway aborts the association instead of judging it."""


#: US/UL/AT value lengths (PS3.5 6.2); other VRs are text
_FIXED_LENGTH = {"US": 2, "UL": 4}
#: maximum value length of the text VRs found in group 0000 (PS3.5 6.2)
_TEXT_MAX = {"UI": 64, "AE": 16, "SH": 16, "LO": 64, "CS": 16, "IS": 12, "LT": 10240}
_UID_BYTES = frozenset(b"0123456789.")
#: printable ASCII without the value delimiter backslash (PS3.5 6.1.2: default repertoire)
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) - {0x5C}


def _group_0000() -> dict[int, tuple[str, str]]:
    """element number -> (keyword, VR) for group 0000, from pydicom's data dictionary."""
    from pydicom.datadict import DicomDictionary

    return {tag: (entry[4], entry[0]) for tag, entry in DicomDictionary.items() if tag < 0x10000}


_DICTIONARY = _group_0000()

_RQ_BASE = frozenset({"CommandGroupLength", "CommandField", "CommandDataSetType"})
_RSP_REQUIRED = frozenset({"CommandField", "MessageIDBeingRespondedTo", "CommandDataSetType",
                           "Status"})


def _table(required: str, optional: str = "", *, data: bool | None) -> tuple[
        frozenset[str], frozenset[str], bool | None]:
    req = frozenset(required.split())
    return req, _RQ_BASE | req | frozenset(optional.split()), data


#: request command field -> (required keywords, allowed keywords, data set: True present /
#: False absent / None either). PS3.7 9.3.1-9.3.5 (C-STORE/FIND/GET/MOVE/ECHO-RQ), 9.3.2.3
#: (C-CANCEL-RQ) and 10.3.1-10.3.6 (N-EVENT-REPORT/GET/SET/ACTION/CREATE/DELETE-RQ).
#: CommandGroupLength is required by the tables but nobody acts on it (DCMTK and pydicom read
#: the elements up to the end of the command set whatever it says), so its absence or a wrong
#: value is tolerated; a length other than 4 is not.
REQUEST_TABLES: dict[int, tuple[frozenset[str], frozenset[str], bool | None]] = {
    C_STORE_RQ: _table("AffectedSOPClassUID MessageID Priority AffectedSOPInstanceUID",
                   "MoveOriginatorApplicationEntityTitle MoveOriginatorMessageID", data=True),
    C_GET_RQ: _table("AffectedSOPClassUID MessageID Priority", data=True),
    C_FIND_RQ: _table("AffectedSOPClassUID MessageID Priority", data=True),
    C_MOVE_RQ: _table("AffectedSOPClassUID MessageID Priority MoveDestination", data=True),
    C_ECHO_RQ: _table("AffectedSOPClassUID MessageID", data=False),
    C_CANCEL_RQ: _table("MessageIDBeingRespondedTo", data=False),
    N_EVENT_REPORT_RQ: _table("AffectedSOPClassUID MessageID AffectedSOPInstanceUID EventTypeID",
                   data=None),
    N_GET_RQ: _table("RequestedSOPClassUID MessageID RequestedSOPInstanceUID",
                   "AttributeIdentifierList", data=False),
    N_SET_RQ: _table("RequestedSOPClassUID MessageID RequestedSOPInstanceUID", data=True),
    N_ACTION_RQ: _table("RequestedSOPClassUID MessageID RequestedSOPInstanceUID ActionTypeID",
                   data=None),
    N_CREATE_RQ: _table("AffectedSOPClassUID MessageID", "AffectedSOPInstanceUID", data=None),
    N_DELETE_RQ: _table("RequestedSOPClassUID MessageID RequestedSOPInstanceUID", data=False),
}
#: elements a response may carry (PS3.7 9.3 and 10.3 response tables, all services together)
RESPONSE_ELEMENTS = _RSP_REQUIRED | frozenset({
    "CommandGroupLength", "AffectedSOPClassUID", "AffectedSOPInstanceUID", "OffendingElement",
    "ErrorComment", "ErrorID", "EventTypeID", "ActionTypeID", "AttributeIdentifierList",
    "NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
    "NumberOfFailedSuboperations", "NumberOfWarningSuboperations", "RequestedSOPClassUID",
    "RequestedSOPInstanceUID"})


#: how :func:`parse_command_strict` reads each kind of value (one small int per element, so the
#: per-element branch is an int compare, not a VR string lookup)
_K_US, _K_UL, _K_AT, _K_COMMENT, _K_UI, _K_TEXT = range(6)
_TAG_LENGTH = struct.Struct("<LL")
_UID_CHARS = bytes(sorted(_UID_BYTES))
_TEXT_CHARS = bytes(sorted(_TEXT_BYTES))


def _strict_entries() -> tuple[dict[int, tuple[str, int, int, int]], dict[str, int]]:
    """tag as read by ``_TAG_LENGTH`` (element << 16) -> (keyword, kind, bit, maximum value
    length), and keyword -> bit.

    Every element of group 0000 gets one bit (in ascending element order): the reader collects
    the elements present, and the ones with a value, as two ints, and a command's table is two
    masks, so "an element the table does not have" and "a required element missing or empty"
    are one ``&`` each instead of a set lookup per element.
    """
    entries: dict[int, tuple[str, int, int, int]] = {}
    bits: dict[str, int] = {}
    for index, element in enumerate(sorted(_DICTIONARY)):
        keyword, vr = _DICTIONARY[element]
        bit = 1 << index
        bits[keyword] = bit
        if keyword == "ErrorComment":
            kind, limit = _K_COMMENT, 64
        elif vr in _FIXED_LENGTH:
            kind, limit = (_K_US if vr == "US" else _K_UL), _FIXED_LENGTH[vr]
        elif vr == "AT":
            kind, limit = _K_AT, 0
        else:
            kind, limit = (_K_UI if vr == "UI" else _K_TEXT), _TEXT_MAX.get(vr, 64)
        entries[element << 16] = (keyword, kind, bit, limit)
    return entries, bits


_ENTRIES, _BITS = _strict_entries()


def _mask(keywords: frozenset[str]) -> int:
    mask = 0
    for keyword in keywords:
        mask |= _BITS[keyword]
    return mask


#: command field -> (required mask, allowed mask, data set rule) of :data:`REQUEST_TABLES`
_REQUEST_MASKS = {field_: (_mask(req), _mask(allowed), data)
                  for field_, (req, allowed, data) in REQUEST_TABLES.items()}
_RESPONSE_MASKS = (_mask(_RSP_REQUIRED), _mask(RESPONSE_ELEMENTS), None)


def _first(mask: int) -> str:
    """The keyword of the lowest element in ``mask`` (for the refusal's message)."""
    lowest = mask & -mask
    return next(keyword for keyword, bit in _BITS.items() if bit == lowest)


def parse_command_strict(raw: bytes, *, request: bool | None = None) -> CommandSet:
    """Read a command set the way the gateway judges it; raise :class:`CommandRefused` when
    any DICOM implementation could read it otherwise, or it breaks its command's table.

    Refused (PS3.5 7.1: elements in ascending tag order, each once; PS3.7 9.3/10.3 tables):
    an element outside group 0000 or unknown to the data dictionary, a repeated element or one
    out of ascending order (DCMTK keeps the first copy, pydicom the last), a value whose length
    does not fit its VR, text outside its repertoire or with leading/embedded padding, an
    element the command's table does not have, a missing required element or an empty one, and
    a data set type the command does not allow. A response's ErrorComment is free text nobody
    acts on: only its length is checked. ``request`` True/False asks for a request or a
    response; None takes what the command field says.

    Text values are read the one way every implementation agrees on: the VR's repertoire
    (digits and dots for UI; printable ASCII without backslash otherwise), no leading space,
    trailing padding as PS3.5 6.2 defines it (one NUL after a UI, spaces after other text) and
    trailing spaces after a UI (old devices; pydicom and DCMTK both strip them). Leading spaces,
    embedded NULs, a backslash (a second value), control or non-ASCII bytes are refused: the
    readers disagree on some of them (dcmdump reads an AE " VIEWER1" with its space, pydicom
    without it).

    One pass over the bytes with a precomputed entry per element (:func:`_strict_entries`):
    the table checks are mask operations, the repertoire checks ``bytes.translate``. Cost,
    measured with ``timeit`` (best of 5 x 20,000 calls, this machine): a C-STORE-RQ 3.0 µs and
    its C-STORE-RSP 2.9 µs against 5.4/5.3 µs for the per-element set lookups it replaced and
    2.6 µs for the tolerant :func:`parse_command`; it runs once per command set, never per
    data-set byte.
    """
    values: dict[str, int | str] = {}
    present = filled = 0
    pos, end = 0, len(raw)
    last = -1
    unpack = _TAG_LENGTH.unpack_from
    entries = _ENTRIES
    while pos < end:
        if pos + 8 > end:
            raise CommandRefused("command set: truncated element header")
        # the tag as one little-endian int: group in the low half, element in the high half,
        # so within group 0000 ascending tags are ascending ints
        tag, length = unpack(raw, pos)
        pos += 8
        if tag <= last or pos + length > end:  # (a length of 0xFFFFFFFF always overruns)
            element = tag >> 16
            if tag & 0xFFFF:
                raise CommandRefused(f"command set: ({tag & 0xFFFF:04x},{element:04x}) is not "
                                     "in group 0000")
            if tag <= last:
                raise CommandRefused(
                    f"command set: (0000,{element:04x}) "
                    + ("repeated" if tag == last else "out of ascending tag order"))
            raise CommandRefused(f"command set: (0000,{element:04x}) length {length} overruns it")
        last = tag
        entry = entries.get(tag)
        if entry is None:
            element = tag >> 16
            if tag & 0xFFFF:
                raise CommandRefused(f"command set: ({tag & 0xFFFF:04x},{element:04x}) is not "
                                     "in group 0000")
            raise CommandRefused(f"command set: (0000,{element:04x}) is not a command element")
        keyword, kind, bit, limit = entry
        present |= bit
        if not length:
            continue  # empty: allowed only where the element is optional (checked below)
        if kind == _K_US:
            if length != 2:
                raise CommandRefused(f"command set: {keyword} (US) has length {length}")
            values[keyword] = raw[pos] | raw[pos + 1] << 8
            filled |= bit
        elif kind == _K_UI:
            if length > limit:
                raise CommandRefused(f"command set: (0000,{tag >> 16:04x}) UI of {length} bytes")
            value = raw[pos : pos + length]
            # one NUL is the standard padding; trailing spaces are a quirk of old devices that
            # pydicom and DCMTK both strip (checked with dcmdump)
            value = value[:-1] if value[-1] == 0 else value.rstrip(b" ")
            if value.translate(None, _UID_CHARS):
                raise CommandRefused(f"command set: (0000,{tag >> 16:04x}) is not a UID")
            if value:  # only padding: as empty as a zero length
                values[keyword] = value.decode("ascii")
                filled |= bit
        elif kind == _K_TEXT:
            if length > limit:
                vr = _DICTIONARY[tag >> 16][1]
                raise CommandRefused(f"command set: (0000,{tag >> 16:04x}) {vr} of {length} bytes")
            value = raw[pos : pos + length].rstrip(b" ")
            if value.translate(None, _TEXT_CHARS) or value[:1] == b" ":
                vr = _DICTIONARY[tag >> 16][1]
                raise CommandRefused(f"command set: (0000,{tag >> 16:04x}) {vr} value with bytes "
                                     "that implementations read differently")
            if value:
                values[keyword] = value.decode("ascii")
                filled |= bit
        elif kind == _K_UL:
            if length != 4:
                raise CommandRefused(f"command set: {keyword} (UL) has length {length}")
        elif kind == _K_AT:
            if length % 4:
                raise CommandRefused(f"command set: {keyword} (AT) has length {length}")
        elif length > limit:  # ErrorComment: free text of a response that nobody acts on: a
            # backend's odd characters in it must not cost the association (only its length)
            raise CommandRefused(f"command set: ErrorComment of {length} bytes")
        pos += length
    field_ = values.get("CommandField")
    if not isinstance(field_, int):
        raise CommandRefused("command set without CommandField")
    if "CommandDataSetType" not in values:
        raise CommandRefused("command set without CommandDataSetType")
    is_response = bool(field_ & RESPONSE_BIT)
    if request is not None and is_response == request:
        wanted = "request" if request else "response"
        raise CommandRefused(f"command 0x{field_:04x} where a {wanted} was expected")
    if is_response:
        required, allowed, data = _RESPONSE_MASKS
    else:
        masks = _REQUEST_MASKS.get(field_)
        if masks is None:
            raise CommandRefused(f"command set: unknown command field 0x{field_:04x}")
        required, allowed, data = masks
    if present & ~allowed:
        raise CommandRefused(f"command set: {_first(present & ~allowed)} does not belong in "
                             f"command 0x{field_:04x}")
    if required & ~filled:
        raise CommandRefused(f"command set: command 0x{field_:04x} without "
                             f"{_first(required & ~filled)}")
    if data is not None and (values["CommandDataSetType"] != DATA_SET_ABSENT) != data:
        raise CommandRefused(f"command set: command 0x{field_:04x} "
                             + ("needs a data set" if data else "cannot have a data set"))
    return CommandSet(raw, values)
