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
        return int(self.values["CommandDataSetType"]) != 0x0101

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
            header = (1 if is_command else 0) | (2 if last else 0)
            item = struct.pack(">LBB", len(fragment) + 2, context_id, header) + fragment
            out.append(struct.pack(">BBL", 0x04, 0, len(item)) + item)
    return out
