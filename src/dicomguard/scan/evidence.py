"""``--evidence DIR``: the PDUs exchanged with each endpoint, identifiers redacted, one file each.

A finding is easier to accept when its owner can see the bytes: the A-ASSOCIATE-RQ we sent, the
AC or RJ that came back, every DIMSE message. Each endpoint gets ``DIR/<host>_<port>.jsonl``: a
header line, then one line per PDU ``{"dir": "out"|"in", "t": seconds, "pdu_type": n, "pdu":
name, "hex": ...}``.

Redaction: C-FIND identifiers and answers carry patient names, IDs and birth dates. The data
sets inside P-DATA-TF PDUs are reassembled (they may span fragments and PDUs), parsed with
pydicom to find where each sensitive element's value sits (``RawDataElement.value_tell``,
recursively into sequences), and those value bytes are overwritten with ``X`` in the PDU bytes
themselves. Lengths and structure stay intact, so the file still decodes with any DICOM tool,
and no identifier ever reaches the disk. A data set that cannot be parsed is blanked whole.
"""

from __future__ import annotations

import json
import struct
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian
from pynetdicom import pdu as _pdu

from .. import __version__
from ..dul import pdu as P
from ..dul.codes import CONTEXT_ACCEPTANCE, PDV_COMMAND, PDV_LAST

__all__ = ["REDACTED_TAGS", "EndpointEvidence", "redaction_ranges"]

#: elements whose values are identifiers (PS3.15 E.1-1 basic profile, the patient part and the
#: study identifiers); any PN-valued element is redacted too
REDACTED_TAGS = frozenset(
    {
        0x00100010,  # PatientName
        0x00100020,  # PatientID
        0x00100021,  # IssuerOfPatientID
        0x00100030,  # PatientBirthDate
        0x00100032,  # PatientBirthTime
        0x00101000,  # OtherPatientIDs
        0x00101001,  # OtherPatientNames
        0x00101005,  # PatientBirthName
        0x00101040,  # PatientAddress
        0x00101060,  # PatientMotherBirthName
        0x00102154,  # PatientTelephoneNumbers
        0x00080050,  # AccessionNumber
        0x00080080,  # InstitutionName
        0x00080090,  # ReferringPhysicianName
        0x00200010,  # StudyID
        0x0020000D,  # StudyInstanceUID
        0x0020000E,  # SeriesInstanceUID
        0x00080018,  # SOPInstanceUID
        0x00380010,  # AdmissionID
        0x00401001,  # RequestedProcedureID
    }
)
IMPLICIT_LE = str(ImplicitVRLittleEndian)
EXPLICIT_BE = str(ExplicitVRBigEndian)


def _sensitive(tag: int, vr: str | None) -> bool:
    if tag in REDACTED_TAGS:
        return True
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return False
    return vr == "PN"


def _walk(ds: Dataset, base: int, out: list[tuple[int, int]]) -> None:
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        vr = getattr(raw, "VR", None)
        if vr is None:
            try:
                vr = dictionary_VR(int(tag))
            except KeyError:
                vr = None
        tell = getattr(raw, "value_tell", None)
        if vr == "SQ" and tell is not None:
            for item in ds[tag].value:  # items' offsets are relative to the sequence value
                _walk(item, base + tell, out)
        elif _sensitive(int(tag), vr) and tell is not None and raw.length not in (0, 0xFFFFFFFF):
            out.append((base + tell, int(raw.length)))


def redaction_ranges(data: bytes, transfer_syntax: str) -> list[tuple[int, int]] | None:
    """(offset, length) of every sensitive value in an encoded data set; None if unparsable."""
    implicit = transfer_syntax == IMPLICIT_LE
    little = transfer_syntax != EXPLICIT_BE
    try:
        ds = read_dataset(BytesIO(data), implicit, little)
        out: list[tuple[int, int]] = []
        _walk(ds, 0, out)
    except Exception:  # anything pydicom cannot read is blanked whole by the caller
        return None
    return out


class EndpointEvidence:
    """A :data:`dicomguard.dul.scu.Recorder` for one endpoint; :meth:`write` saves it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.started = time.time()
        self._t0 = time.monotonic()
        self.pdus: list[dict[str, Any]] = []
        self._bytes: list[bytearray] = []
        #: context id -> transfer syntax of the association in progress (from its AC)
        self._ts: dict[int, str] = {}
        #: per direction: fragments (pdu index, offset, length) of the data set being received
        self._pending: dict[str, list[tuple[int, int, int]]] = {"in": [], "out": []}
        self._pending_ctx: dict[str, int] = {}

    def __call__(self, direction: str, data: bytes) -> None:
        index = len(self._bytes)
        buf = bytearray(data)
        self._bytes.append(buf)
        ptype = data[0] if data else -1
        self.pdus.append(
            {
                "dir": direction,
                "t": round(time.monotonic() - self._t0, 6),
                "pdu_type": ptype,
                "pdu": P.PDU_NAMES.get(ptype, "unknown"),
            }
        )
        if ptype == P.A_ASSOCIATE_AC and direction == "in":
            self._read_ac(bytes(data))
        elif ptype == P.P_DATA_TF:
            self._pdata(direction, index, buf)

    def _read_ac(self, data: bytes) -> None:
        self._ts = {}
        try:
            ac = _pdu.A_ASSOCIATE_AC()
            ac.decode(data)
            for cx in ac.to_primitive().presentation_context_definition_results_list:
                if (cx.result == CONTEXT_ACCEPTANCE and cx.transfer_syntax
                        and cx.context_id is not None):
                    self._ts[int(cx.context_id)] = str(cx.transfer_syntax[0])
        except Exception:
            self._ts = {}  # unknown syntaxes: data sets are then blanked whole

    def _pdata(self, direction: str, index: int, buf: bytearray) -> None:
        pos = 6
        while pos + 6 <= len(buf):
            (item_len,) = struct.unpack(">L", buf[pos : pos + 4])
            if item_len < 2 or pos + 4 + item_len > len(buf):
                self._blank(buf, pos + 4, len(buf) - pos - 4)  # malformed: keep nothing
                return
            ctx, header = buf[pos + 4], buf[pos + 5]
            start, length = pos + 6, item_len - 2
            if not header & PDV_COMMAND:  # a data set fragment, commands are kept
                self._pending[direction].append((index, start, length))
                self._pending_ctx[direction] = ctx
                if header & PDV_LAST:  # last fragment: the data set is complete
                    self._redact(direction)
            pos += 4 + item_len

    def _redact(self, direction: str) -> None:
        frags = self._pending[direction]
        self._pending[direction] = []
        data = b"".join(bytes(self._bytes[i][s : s + n]) for i, s, n in frags)
        ts = self._ts.get(self._pending_ctx.get(direction, -1))
        ranges = redaction_ranges(data, ts) if ts else None
        if ranges is None:
            ranges = [(0, len(data))]
        # map data set offsets back onto the fragments they fall in
        mask = bytearray(len(data))
        for off, n in ranges:
            mask[off : off + n] = b"\x01" * min(n, len(data) - off)
        pos = 0
        for i, s, n in frags:
            buf = self._bytes[i]
            for k in range(n):
                if mask[pos + k]:
                    buf[s + k] = 0x58  # "X": same length, still a valid character value
            pos += n

    @staticmethod
    def _blank(buf: bytearray, start: int, length: int) -> None:
        buf[start : start + max(0, length)] = b"X" * max(0, length)

    def flush_pending(self) -> None:
        """Blank any data set whose last fragment never arrived (connection cut mid-way)."""
        for direction, frags in self._pending.items():
            for i, s, n in frags:
                self._blank(self._bytes[i], s, n)
            self._pending[direction] = []

    def lines(self) -> list[dict[str, Any]]:
        self.flush_pending()
        return [{**meta, "hex": self._bytes[i].hex()} for i, meta in enumerate(self.pdus)]

    def write(self, directory: str | Path) -> Path | None:
        """Write ``<host>_<port>.jsonl`` in ``directory``; nothing when no PDU was exchanged."""
        if not self.pdus:
            return None
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.host.replace(':', '_')}_{self.port}.jsonl"
        header = {
            "endpoint": f"{self.host}:{self.port}",
            "started": self.started,
            "dicomguard": __version__,
            "redacted": "values of patient identifiers, names, birth dates and study identifiers"
            " in every data set are replaced by X (same length)",
        }
        with path.open("w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
            for line in self.lines():
                f.write(json.dumps(line) + "\n")
        return path
