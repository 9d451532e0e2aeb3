"""The end-of-scan joins (honeypot clusters, a host's DICOM ports named from its Orthanc REST
record) give the same stored records whether they read the summaries the store kept while
writing (a scan run in one go) or decode every stored record (a resumed scan)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from dicomguard.store import ScanStore


def _dicom(host: str, port: int, **extra: Any) -> dict[str, Any]:
    record = {
        "host": host,
        "port": port,
        "state": "open",
        "dicom": True,
        "implementation_class_uid": "1.2.276.0.7230010.3.0.3.6.7",
        "implementation_version_name": "OFFIS_DCMTK_367",
        "max_pdu": 16384,
        "product": "DCMTK",
        "product_version": "3.6.7",
        "toolkit": None,
        "services": {"verification": True, "find_study_root": True},
        "exposure": None,
        "findings": [{"id": "DG-004", "severity": "medium", "title": "DICOM without TLS"}],
        "honeypot": {"suspected": False, "score": 0, "confidence": "none", "signals": []},
        "confidence": {"product": "observed"},
    }
    record.update(extra)
    return record


def _records() -> list[dict[str, Any]]:
    canned = {"patients": 3, "studies": 7, "earliest_study_date": "20200101",
              "latest_study_date": "20211231", "complete": True}
    return [
        # identical archives on three hosts: canned data
        _dicom("127.9.0.1", 104, exposure=dict(canned)),
        _dicom("127.9.0.2", 104, exposure=dict(canned)),
        _dicom("127.9.0.3", 11112, exposure=dict(canned)),
        # an Orthanc named from its REST port on the same host, and its DCMTK DICOM port
        _dicom("127.9.0.4", 4242),
        {
            "host": "127.9.0.4", "port": 8042, "state": "open", "dicom": False,
            "web": {"scheme": "http", "product": "Orthanc", "product_version": "1.10.1",
                    "orthanc": {"dicom_port": 4242}},
            "findings": [],
        },
        # a budget cut-off: no honeypot verdict yet
        _dicom("127.9.0.5", 104, honeypot=None),
        # nothing to join
        _dicom("127.9.0.6", 104, implementation_class_uid="1.2.3", product=None),
        {"host": "127.9.0.7", "port": 104, "state": "closed"},
    ]


def _finished(path: Path, *, summaries: bool) -> list[dict[str, Any]]:
    store = ScanStore.create(path, argv=[], options={}, targets_total=8, store_all=True)
    for seq, record in enumerate(_records()):
        store.add({**copy.deepcopy(record), "seq": seq})
        store.mark_done(seq)
    if not summaries:
        store.commit()
        store._summaries = None  # as a resumed store: every stored record is read
    store.finish({})
    texts = list(store.record_texts())
    store.close()
    return [json.loads(t) for t in texts]


def test_joins_from_summaries_store_what_a_full_read_stores(tmp_path: Path) -> None:
    from_summaries = _finished(tmp_path / "a.db", summaries=True)
    full = _finished(tmp_path / "b.db", summaries=False)
    assert from_summaries == full
    by = {(r["host"], r["port"]): r for r in full}
    # the joins did change something: canned data, the Orthanc name, a verdict filled in
    assert any(s["id"] == "canned-data" for s in by[("127.9.0.1", 104)]["honeypot"]["signals"])
    assert by[("127.9.0.4", 4242)]["product"] == "Orthanc"
    assert by[("127.9.0.5", 104)]["honeypot"] is not None
