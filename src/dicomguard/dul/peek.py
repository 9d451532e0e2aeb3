"""Read a few top-level element values from an encoded data set without decoding it.

Hand-written for the same reason as :mod:`.command`: counting what an archive exposes means
handling thousands of C-FIND responses of which only two or three values matter, and a full
pydicom decode of each costs more than everything else on that path. Anything this reader does
not understand makes it return ``None``, and the caller falls back to pydicom.
"""

from __future__ import annotations

import struct

from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

IMPLICIT_VR_LE = str(ImplicitVRLittleEndian)
_NOT_READ_HERE = frozenset({str(ExplicitVRBigEndian), str(DeflatedExplicitVRLittleEndian)})
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<L")
UNDEFINED = 0xFFFFFFFF


def tag(group: int, element: int) -> int:
    return (group << 16) | element


def peek(data: bytes, transfer_syntax: str, wanted: frozenset[int]) -> dict[int, bytes] | None:
    """Values (raw bytes, padding stripped) of ``wanted`` top-level tags, or None if unsure.

    Little endian only (implicit or explicit VR); big endian and deflate return None.
    """
    if transfer_syntax in _NOT_READ_HERE:
        return None
    implicit = transfer_syntax == IMPLICIT_VR_LE
    out: dict[int, bytes] = {}
    pos, end = 0, len(data)
    try:
        while pos < end:
            group, element = _TAG.unpack_from(data, pos)
            t = (group << 16) | element
            if implicit:
                (length,) = _U32.unpack_from(data, pos + 4)
                pos += 8
            else:
                vr = data[pos + 4 : pos + 6]
                if vr in _LONG_VRS:
                    (length,) = _U32.unpack_from(data, pos + 8)
                    pos += 12
                else:
                    (length,) = _U16.unpack_from(data, pos + 6)
                    pos += 8
            if length == UNDEFINED:
                return None  # an undefined-length sequence: leave it to pydicom
            if pos + length > end:
                return None
            if t in wanted:
                out[t] = data[pos : pos + length].rstrip(b"\x00 ")
            pos += length
    except struct.error:
        return None
    return out
