"""PDU framing on asyncio streams, with a timeout on every read and a bound on every length.

Decoding and encoding of the PDU *contents* is pynetdicom's (``pynetdicom.pdu``); what this module
adds is what pynetdicom's threaded transport does not give an asyncio caller: reading exactly one
PDU from a ``StreamReader`` without trusting the peer's length field, and turning every decoder
exception into :class:`MalformedPdu`.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from pynetdicom import pdu as _pdu

# The PDU types are named in .codes; imported here as well because every reader of a PDU
# compares against them (``P.A_ABORT``): the same objects, one definition.
from .codes import A_ABORT as A_ABORT
from .codes import A_ASSOCIATE_AC as A_ASSOCIATE_AC
from .codes import A_ASSOCIATE_RJ as A_ASSOCIATE_RJ
from .codes import A_ASSOCIATE_RQ as A_ASSOCIATE_RQ
from .codes import A_RELEASE_RP as A_RELEASE_RP
from .codes import A_RELEASE_RQ as A_RELEASE_RQ
from .codes import P_DATA_TF as P_DATA_TF
from .codes import PDU_NAMES as PDU_NAMES
from .codes import AbortReason, AbortSource, Reject
from .errors import MalformedPdu, PduTooLarge, PeerAborted, PeerClosed, PeerTimeout

#: Association PDUs are small (a few KiB even with 128 contexts); anything near 1 MiB is hostile.
MAX_ASSOCIATION_PDU = 1 << 20
#: Our default for P-DATA: the maximum PDU length we announce plus generous slack.
DEFAULT_MAX_PDATA = 4 << 20

_PDU_CLASSES: dict[int, type[_pdu.PDU]] = {
    A_ASSOCIATE_RQ: _pdu.A_ASSOCIATE_RQ,
    A_ASSOCIATE_AC: _pdu.A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ: _pdu.A_ASSOCIATE_RJ,
    P_DATA_TF: _pdu.P_DATA_TF,
    A_RELEASE_RQ: _pdu.A_RELEASE_RQ,
    A_RELEASE_RP: _pdu.A_RELEASE_RP,
    A_ABORT: _pdu.A_ABORT_RQ,
}

#: the PDU types :func:`read_pdu` reads (any other first byte is not a DICOM PDU)
KNOWN_PDU_TYPES = frozenset(_PDU_CLASSES)

_HEADER = struct.Struct(">BBL")


@dataclass(frozen=True, slots=True)
class RawPdu:
    """One PDU as read from the wire: its type and the complete encoded bytes (header included)."""

    pdu_type: int
    data: bytes

    @property
    def name(self) -> str:
        return PDU_NAMES.get(self.pdu_type, f"unknown PDU 0x{self.pdu_type:02x}")


async def read_pdu(
    reader: asyncio.StreamReader,
    *,
    timeout: float,
    max_length: int = DEFAULT_MAX_PDATA,
) -> RawPdu:
    """Read exactly one PDU, never waiting longer than ``timeout`` for each part of it.

    ``max_length`` bounds the announced length before anything is allocated: association PDUs are
    held to :data:`MAX_ASSOCIATION_PDU` whatever the caller allows.
    """
    header = await _read_exactly(reader, 6, timeout)
    pdu_type, _reserved, length = _HEADER.unpack(header)
    if pdu_type not in _PDU_CLASSES:
        raise MalformedPdu(f"not a DICOM PDU: first bytes {header[:6].hex()}", evidence=header)
    bound = max_length if pdu_type == P_DATA_TF else MAX_ASSOCIATION_PDU
    if length > bound:
        raise PduTooLarge(
            f"{PDU_NAMES[pdu_type]} announces {length} bytes, above the bound of {bound}",
            evidence=header,
        )
    body = await _read_exactly(reader, length, timeout)
    return RawPdu(pdu_type, header + body)


async def _read_exactly(reader: asyncio.StreamReader, n: int, timeout: float) -> bytes:
    try:
        if len(getattr(reader, "_buffer", b"")) >= n:
            # already received (a PDU body after its header, usually): nothing to wait for,
            # so no timer to arm and cancel; readexactly still raises a stored error
            return await reader.readexactly(n)
        # asyncio.timeout, not wait_for: wait_for wraps every read in a new Task
        async with asyncio.timeout(timeout):
            return await reader.readexactly(n)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise MalformedPdu(
                f"connection closed mid-PDU ({len(exc.partial)} of {n} bytes)"
            ) from None
        raise PeerClosed("connection closed by peer") from None
    except TimeoutError:
        raise PeerTimeout(f"no data within {timeout:g}s") from None
    except (ConnectionError, OSError) as exc:
        raise PeerClosed(f"connection lost: {exc}") from None


def decode(raw: RawPdu) -> _pdu.PDU:
    """Decode a raw PDU with pynetdicom's codec; any decoder failure becomes MalformedPdu
    (its ``evidence`` is the PDU's first bytes)."""
    obj = _PDU_CLASSES[raw.pdu_type]()
    try:
        obj.decode(raw.data)
    except Exception as exc:  # the codec raises anything from IndexError to ValueError
        # evidence only from association PDUs (AE titles, UIDs): a P-DATA-TF may carry
        # patient identifiers, which never go into a record
        evidence = raw.data if raw.pdu_type != P_DATA_TF else None
        raise MalformedPdu(
            f"undecodable {raw.name}: {type(exc).__name__}: {exc}", evidence=evidence
        ) from None
    return obj


def raise_if_abort(raw: RawPdu) -> None:
    """Turn an A-ABORT into :class:`PeerAborted` (source and reason from bytes 8 and 9)."""
    if raw.pdu_type == A_ABORT:
        source = raw.data[8] if len(raw.data) > 8 else 0
        reason = raw.data[9] if len(raw.data) > 9 else 0
        raise PeerAborted(source, reason)


def abort_pdu(
    source: int = AbortSource.SERVICE_USER, reason: int = AbortReason.NOT_SPECIFIED
) -> bytes:
    """An encoded A-ABORT, 10 bytes (PS3.8 9.3.8): ``source`` an :class:`.codes.AbortSource`,
    ``reason`` an :class:`.codes.AbortReason` (not-specified when the service user aborts)."""
    return bytes([A_ABORT, 0]) + struct.pack(">L", 4) + bytes([0, 0, source, reason])


def provider_abort_pdu(reason: int = AbortReason.NOT_SPECIFIED) -> bytes:
    """An A-ABORT from the service provider (A-P-ABORT) with one of :class:`.codes.AbortReason`."""
    return abort_pdu(AbortSource.SERVICE_PROVIDER, reason)


def reject_pdu(reject: Reject) -> bytes:
    """An encoded A-ASSOCIATE-RJ, 10 bytes (PS3.8 9.3.4, Table 9-21): header, a reserved byte,
    result, source, reason/diag. Too small to need pynetdicom's encoder (which gives the same
    bytes: ``dul/tests/test_reject_encoding.py``)."""
    return bytes([A_ASSOCIATE_RJ, 0]) + struct.pack(">L", 4) + bytes(
        [0, reject.result, reject.source, reject.reason]
    )


RELEASE_RQ = bytes([A_RELEASE_RQ, 0]) + struct.pack(">L", 4) + b"\x00" * 4
RELEASE_RP = bytes([A_RELEASE_RP, 0]) + struct.pack(">L", 4) + b"\x00" * 4
