"""--evidence keeps every PDU of an endpoint; identifiers are overwritten before writing."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomguard.dul.dimse import encode_dataset
from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX
from dicomguard.lab.fleet import Fleet
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.evidence import IMPLICIT_LE, redaction_ranges

NETWORK = "127.42.213.0/29"
TIMEOUTS = Timeouts(connect=1.0, associate=1.5, dimse=3.0, release=0.5)


def test_ranges_cover_nested_identifiers_in_both_vr_encodings() -> None:
    ds = Dataset()
    ds.PatientName = "DGFAKE^ALPHA"
    ds.PatientID = "DGSYN0001"
    ds.StudyDate = "20200101"
    other = Dataset()
    other.PatientID = "DGSYN0002"
    ds.OtherPatientIDsSequence = Sequence([other])
    for ts in (IMPLICIT_LE, "1.2.840.10008.1.2.1"):
        data = bytearray(encode_dataset(ds, ts))
        ranges = redaction_ranges(bytes(data), ts)
        assert ranges is not None and len(ranges) == 3
        for off, n in ranges:
            data[off : off + n] = b"X" * n
        assert b"DG" not in data and b"20200101" in data  # study date kept: it is the finding


async def test_scan_evidence_has_every_pdu_and_no_identifier(tmp_path: Path) -> None:
    async with Fleet(NETWORK, ["open"], max_patients=15) as fleet:
        host = fleet.host_of("open").host
        opts = ProbeOptions(timeouts=TIMEOUTS, evidence_dir=str(tmp_path))
        r = await assess(host, 11112, opts)
    assert r.exposure and r.exposure["studies"] > 0
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"{host}_11112.jsonl"]
    lines = [json.loads(x) for x in files[0].read_text().splitlines()]
    header, pdus = lines[0], lines[1:]
    assert header["endpoint"] == f"{host}:11112"
    kinds = [(p["dir"], p["pdu"]) for p in pdus]
    assert kinds[0] == ("out", "A-ASSOCIATE-RQ") and kinds[1] == ("in", "A-ASSOCIATE-AC")
    assert ("in", "P-DATA-TF") in kinds and ("in", "A-RELEASE-RP") in kinds
    raw = b"".join(bytes.fromhex(p["hex"]) for p in pdus)
    assert NAME_PREFIX.encode() not in raw and ID_PREFIX.encode() not in raw
    assert b"XXXXXX" in raw  # the identifiers were there, and are now X of the same length
    assert b"DICOMGUARD" in raw  # our own identity and calling AE are kept
