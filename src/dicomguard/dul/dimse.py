"""DIMSE messages over P-DATA: encode with pynetdicom, reassemble with a size bound.

Encoding uses pynetdicom's message classes (``C_ECHO_RQ`` and friends: they set the command
group length and fragment to the peer's maximum PDU). Reassembly is done here rather than with
``DIMSEMessage.decode_msg`` because that grows its buffers without limit and needs a threaded
``Association``; a scanner facing hostile peers must cap how much it buffers, and the gateway must
be able to see a command set without decoding the data set that follows it.
"""

from __future__ import annotations

import contextlib
import functools
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

from pydicom import config as _pydicom_config
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian
from pynetdicom import dimse_messages as dm
from pynetdicom import pdu as _pdu
from pynetdicom.dsutils import decode as _decode_ds
from pynetdicom.dsutils import encode as _encode_ds
from pynetdicom.sop_class import Verification

# Command fields, data set types, priorities and statuses are named in .codes; the ones the
# message helpers use are re-exported here (``dimse.C_FIND_RQ``): the same objects.
from .codes import C_CANCEL_RQ as C_CANCEL_RQ
from .codes import C_ECHO_RQ as C_ECHO_RQ
from .codes import C_ECHO_RSP as C_ECHO_RSP
from .codes import C_FIND_RQ as C_FIND_RQ
from .codes import C_FIND_RSP as C_FIND_RSP
from .codes import C_GET_RQ as C_GET_RQ
from .codes import C_GET_RSP as C_GET_RSP
from .codes import C_MOVE_RQ as C_MOVE_RQ
from .codes import C_MOVE_RSP as C_MOVE_RSP
from .codes import C_STORE_RQ as C_STORE_RQ
from .codes import C_STORE_RSP as C_STORE_RSP
from .codes import DATA_SET_ABSENT as DATA_SET_ABSENT
from .codes import DATA_SET_PRESENT, P_DATA_TF, PDV_COMMAND, PDV_LAST, RESPONSE_BIT
from .codes import PRIORITY_MEDIUM as PRIORITY_MEDIUM
from .codes import STATUS_CANCEL as STATUS_CANCEL
from .codes import STATUS_SUCCESS as STATUS_SUCCESS
from .command import CommandSet, encode_command, parse_command, pdata_pdus
from .errors import MalformedPdu, ProtocolViolation

VERIFICATION = str(Verification)


@dataclass
class DimseMessage:
    """One reassembled DIMSE message: command set (decoded) and data set (still encoded)."""

    context_id: int
    command: CommandSet
    dataset: bytes | None

    @property
    def command_field(self) -> int:
        return int(self.command.get("CommandField", -1))

    @property
    def status(self) -> int | None:
        status = self.command.get("Status")
        return int(status) if status is not None else None


def encode_message(
    msg: dm.DIMSEMessage, context_id: int, max_pdu: int, dataset: bytes | None = None
) -> list[bytes]:
    """Encode a pynetdicom DIMSE message (and an encoded data set) into P-DATA-TF PDUs."""
    if dataset is not None:
        msg.data_set = BytesIO(dataset)
        msg.command_set.CommandDataSetType = DATA_SET_PRESENT
    else:
        msg.data_set = None
        msg.command_set.CommandDataSetType = DATA_SET_ABSENT
    out = []
    # 0 means "no limit" on the wire; pynetdicom fragments by the value given.
    for primitive in msg.encode_msg(context_id, max_pdu or 0):
        pdu = _pdu.P_DATA_TF()
        pdu.from_primitive(primitive)
        out.append(pdu.encode())
    return out


def echo_pdus(message_id: int, context_id: int, max_pdu: int) -> list[bytes]:
    """A C-ECHO-RQ, ready for the wire (a fresh list; the bytes are shared)."""
    return list(_echo_pdus(message_id, context_id, max_pdu))


@functools.lru_cache(maxsize=64)  # every endpoint of a scan gets the same C-ECHO-RQ
def _echo_pdus(message_id: int, context_id: int, max_pdu: int) -> tuple[bytes, ...]:
    command = encode_command(
        {
            "CommandField": C_ECHO_RQ,
            "MessageID": message_id,
            "AffectedSOPClassUID": VERIFICATION,
            "CommandDataSetType": DATA_SET_ABSENT,
        }
    )
    return tuple(pdata_pdus(context_id, command, None, max_pdu))


def find_pdus(
    message_id: int, sop_class: str, context_id: int, max_pdu: int, identifier: bytes
) -> list[bytes]:
    """A C-FIND-RQ with its encoded identifier, ready for the wire."""
    command = encode_command(
        {
            "CommandField": C_FIND_RQ,
            "MessageID": message_id,
            "AffectedSOPClassUID": sop_class,
            "Priority": PRIORITY_MEDIUM,
            "CommandDataSetType": DATA_SET_PRESENT,
        }
    )
    return pdata_pdus(context_id, command, identifier, max_pdu)


def cancel_pdus(message_id: int, context_id: int, max_pdu: int) -> list[bytes]:
    """A C-CANCEL-RQ for the operation ``message_id``."""
    command = encode_command(
        {
            "CommandField": C_CANCEL_RQ,
            "MessageIDBeingRespondedTo": message_id,
            "CommandDataSetType": DATA_SET_ABSENT,
        }
    )
    return pdata_pdus(context_id, command, None, max_pdu)


def response(
    kind: type[dm.DIMSEMessage], request: Dataset | CommandSet, status: int
) -> dm.DIMSEMessage:
    """A response message (for the server side) echoing the request's IDs."""
    msg = kind()
    cs = msg.command_set
    cs.CommandField = int(request.CommandField) | RESPONSE_BIT
    cs.MessageIDBeingRespondedTo = request.MessageID
    if "AffectedSOPClassUID" in cs:
        cs.AffectedSOPClassUID = request.get("AffectedSOPClassUID")
    if "AffectedSOPInstanceUID" in cs and "AffectedSOPInstanceUID" in request:
        cs.AffectedSOPInstanceUID = request.AffectedSOPInstanceUID
    cs.Status = status
    return msg


def encode_dataset(ds: Dataset, transfer_syntax: str) -> bytes:
    """Encode a data set for a presentation context's transfer syntax."""
    implicit = transfer_syntax == ImplicitVRLittleEndian
    big = transfer_syntax == ExplicitVRBigEndian
    data = _encode_ds(ds, implicit, not big)
    if data is None:
        raise ValueError("data set could not be encoded")
    return data


#: encoded query identifiers by content: a scan sends the same few identifiers to every endpoint
_QUERY_CACHE: dict[tuple[object, ...], bytes] = {}
_QUERY_CACHE_SIZE = 512


def encode_identifier(ds: Dataset, transfer_syntax: str) -> bytes:
    """:func:`encode_dataset` for a small flat query identifier, remembered by content.

    The exposure count sends the same handful of C-FIND identifiers to every endpoint, and
    pydicom's writer cost ~0.3 ms each time (a quarter of the scanner's CPU in a full
    assessment of the all-DICOM benchmark). The key is every element's tag, VR and value, so
    a changed identifier is encoded afresh; identifiers holding sequences are not cached.
    """
    key: list[object] = [transfer_syntax]
    for elem in ds:
        if elem.VR == "SQ":
            return encode_dataset(ds, transfer_syntax)
        key.append((elem.tag, elem.VR, type(elem.value).__name__, str(elem.value)))
    k = tuple(key)
    data = _QUERY_CACHE.get(k)
    if data is None:
        data = encode_dataset(ds, transfer_syntax)
        if len(_QUERY_CACHE) >= _QUERY_CACHE_SIZE:
            _QUERY_CACHE.clear()
        _QUERY_CACHE[k] = data
    return data


@contextlib.contextmanager
def values_unvalidated() -> Iterator[None]:
    """Read element values of a peer's data set without pydicom's value validation.

    pydicom validates a value when it is first read and quotes an invalid one in a warning
    and in its log (pydicom 3.0: ``Invalid value for VR UI: '<the value>'``, on stderr even
    without ``-v``): a stranger's Study Instance UID, or whatever a broken server puts in its
    place, would reach the console (PHI rule). Synchronous use only: the setting is global to
    the process, so no ``await`` may run inside the block.
    """
    settings = _pydicom_config.settings
    saved = settings.reading_validation_mode
    settings.reading_validation_mode = _pydicom_config.IGNORE
    try:
        yield
    finally:
        settings.reading_validation_mode = saved


def decode_dataset(data: bytes, transfer_syntax: str) -> Dataset:
    """Decode a data set completely; raises only :class:`MalformedPdu` (no evidence kept).

    pydicom converts element values lazily, on first access, and junk then raises there
    (``struct.error``, ``OSError`` from a broken sequence item): every element, sequences
    included, is converted here so no caller meets an untyped error later (issue 12, found by
    ``dul/tests/test_decoders_raise_typed_errors.py``).
    """
    implicit = transfer_syntax == ImplicitVRLittleEndian
    big = transfer_syntax == ExplicitVRBigEndian
    try:
        # a peer's encoding slips ("Expected explicit VR, but found implicit VR") are pydicom
        # UserWarnings that would land on the scan's console between its results (pydicom
        # still logs them on its own logger, visible with -v); values are converted here, so
        # here too they must not be validated (pydicom would quote invalid ones)
        with warnings.catch_warnings(), values_unvalidated():
            warnings.simplefilter("ignore", UserWarning)
            ds = _decode_ds(BytesIO(data), implicit, not big)
            if ds is None:
                raise ValueError("nothing decoded")
            for _element in ds.iterall():  # converts every raw element, nested ones too
                pass
            return ds
    except Exception as exc:  # pydicom raises many kinds on junk
        # the type only, and no evidence: pydicom's messages and the bytes may hold identifiers
        raise MalformedPdu(f"undecodable data set ({type(exc).__name__})") from None


def iter_pdvs(pdata: bytes) -> list[tuple[int, int, bytes]]:
    """Split an encoded P-DATA-TF PDU into (context id, control header, fragment) tuples.

    Hand-written because it is six lines and lets the gateway look at headers without building
    pynetdicom primitives for every PDU on the hot path.
    """
    out = []
    end = len(pdata)
    pos = 6
    while pos < end:
        if pos + 6 > end:
            raise MalformedPdu("truncated PDV item header")
        (length,) = struct.unpack_from(">L", pdata, pos)
        if length < 2 or pos + 4 + length > end:
            raise MalformedPdu(f"PDV item length {length} does not fit the PDU")
        cid = pdata[pos + 4]
        header = pdata[pos + 5]
        out.append((cid, header, pdata[pos + 6 : pos + 4 + length]))
        pos += 4 + length
    return out


def pack_pdata(pdus: list[bytes], max_pdu: int = 0) -> list[bytes]:
    """Merge single-message P-DATA-TF PDUs into as few PDUs as the peer's maximum allows.

    PS3.8 9.3.5: a P-DATA-TF carries "one or more" PDV items, and nothing ties a PDU to one
    DIMSE message; servers that batch their output (all C-FIND-RSP of a query in one PDU) are
    legal. ``max_pdu`` is the receiver's Maximum Length (bytes of PDV items per PDU, 0 = no
    limit). A PDV longer than the limit on its own keeps its PDU. Used by the lab acceptor's
    ``pack_find_responses`` and by tests of requestors.
    """
    out: list[bytes] = []
    items = bytearray()
    for pdu in pdus:
        body = pdu[6:]
        if items and max_pdu and len(items) + len(body) > max_pdu:
            out.append(struct.pack(">BBL", P_DATA_TF, 0, len(items)) + bytes(items))
            items = bytearray()
        items += body
    if items:
        out.append(struct.pack(">BBL", P_DATA_TF, 0, len(items)) + bytes(items))
    return out


class MessageAssembler:
    """Collects PDV fragments until a whole DIMSE message is there, never above ``max_bytes``."""

    def __init__(self, max_bytes: int = 16 << 20, *, max_command_bytes: int = 64 << 10) -> None:
        self.max_bytes = max_bytes
        self.max_command_bytes = max_command_bytes
        self._reset()

    def _reset(self) -> None:
        self._cmd = bytearray()
        self._data = bytearray()
        self._command: CommandSet | None = None
        self._cid: int | None = None

    @property
    def idle(self) -> bool:
        """No message is part-way through (nothing fed since the last complete one)."""
        return self._cid is None and not self._cmd and not self._data

    def feed(self, pdata: bytes) -> list[DimseMessage]:
        """Feed one encoded P-DATA-TF PDU; return the messages it completes."""
        done: list[DimseMessage] = []
        for cid, header, fragment in iter_pdvs(pdata):
            if self._cid is not None and cid != self._cid:
                raise ProtocolViolation("PDVs of one message on two presentation contexts")
            self._cid = cid
            if header & PDV_COMMAND:
                if self._command is not None:
                    raise ProtocolViolation("command fragment after a complete command set")
                self._cmd += fragment
                if len(self._cmd) > self.max_command_bytes:
                    raise MalformedPdu(f"command set above {self.max_command_bytes} bytes")
                if header & PDV_LAST:
                    command = parse_command(bytes(self._cmd))
                    if not command.has_dataset:
                        done.append(DimseMessage(cid, command, None))
                        self._reset()
                    else:
                        self._command = command
            else:
                if self._command is None:
                    raise ProtocolViolation("data set fragment before its command set")
                self._data += fragment
                if len(self._data) > self.max_bytes:
                    raise MalformedPdu(f"data set above {self.max_bytes} bytes")
                if header & PDV_LAST:
                    done.append(DimseMessage(cid, self._command, bytes(self._data)))
                    self._reset()
        return done
