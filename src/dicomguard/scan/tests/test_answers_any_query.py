"""Servers whose answers are not records: decoys that answer any query, stubs that answer
placeholders (issue 10, items 9 and 10). Every peer is a stock pynetdicom SCP, so no identity
signal can flag it: only behaviour can.

Field behaviours behind the peers:

* fo-dicom #574: a C-FIND SCP that "returns fake data on any findscu query" (a random Study
  Instance UID and the date asked for) - what a low-interaction honeypot does;
* decoys that stamp their canned studies with the day of the scan;
* pynetdicom's and fo-dicom's example SCPs answering a placeholder match that carries no
  Study Instance UID (only the Query/Retrieve Level);
* dcm4chee-arc-light #1263: a proxying archive returned matches *with* data but an empty
  Study Instance UID: records whose key was lost, a flagged lower bound, never studies.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from pydicom.dataset import Dataset

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge import honeypot
from dicomguard.knowledge.synthetic import make_patients
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.store import ScanStore
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0), try_tls=False, web=None)


def _match(level: str, study_date: str, uid: str = "", pid: str = "") -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    if uid:
        ds.StudyInstanceUID = uid
    if study_date:
        ds.StudyDate = study_date
    if pid:
        ds.PatientID = pid
    return ds


class AnswersAnything(PynetdicomFindServer):
    """Five made-up studies for every query, dated as asked (fo-dicom #574's fake SCP)."""

    def _on_find(self, event):  # type: ignore[override]
        asked = str(event.identifier.get("StudyDate", "") or "").split("-")[0] or "20200101"
        level = str(event.identifier.QueryRetrieveLevel)
        for i in range(5):
            yield 0xFF00, _match(level, asked, f"2.25.{uuid.uuid4().int}", f"DGSYNFAKE{i}")


class StampsToday(PynetdicomFindServer):
    """Its canned studies all carry the date of the scan."""

    def _on_find(self, event):  # type: ignore[override]
        today = date.today().strftime("%Y%m%d")
        for status, ds in super()._on_find(event):
            if ds is not None and "StudyDate" in ds:
                ds.StudyDate = today
            yield status, ds


class Placeholder(PynetdicomFindServer):
    """One placeholder match per query: only the Query/Retrieve Level, no key, no data."""

    def _on_find(self, event):  # type: ignore[override]
        yield 0xFF00, _match(str(event.identifier.QueryRetrieveLevel), "")


class LostKeys(PynetdicomFindServer):
    """Real study matches whose Study Instance UID came back empty (dcm4chee-arc-light #1263)."""

    def _on_find(self, event):  # type: ignore[override]
        for status, ds in super()._on_find(event):
            if ds is not None and "StudyInstanceUID" in ds:
                ds.StudyInstanceUID = ""
            yield status, ds


async def test_a_server_answering_an_impossible_date_range_is_flagged():
    with AnswersAnything(lab_address(61)) as s:
        r = await assess(s.host, s.port, OPTS)
    assert r.product == "pynetdicom"  # a stock identity: nothing to see there
    assert r.exposure["answers_impossible_query"] is True
    ids = [sig["id"] for sig in r.honeypot["signals"]]
    assert "answers-impossible-query" in ids and r.honeypot["suspected"] is True


async def test_every_study_dated_the_scan_day_is_flagged():
    with StampsToday(lab_address(62), patients=make_patients(62, 4)) as s:
        r = await assess(s.host, s.port, OPTS)
    assert r.exposure["studies_all_on_scan_day"] is True
    assert r.exposure["answers_impossible_query"] is False
    assert r.honeypot["suspected"] is True


async def test_an_honest_archive_is_not_flagged():
    with PynetdicomFindServer(lab_address(63), patients=make_patients(63, 6)) as s:
        r = await assess(s.host, s.port, OPTS)
    assert r.exposure["answers_impossible_query"] is False
    assert r.exposure["studies_all_on_scan_day"] is False
    assert r.honeypot["suspected"] is False


async def test_placeholder_answers_are_not_studies():
    with Placeholder(lab_address(64)) as s:
        r = await assess(s.host, s.port, OPTS)
    exp = r.exposure
    assert exp["studies"] == 0 and exp["placeholder_matches"] >= 1
    assert exp["patients"] in (0, None)
    # a placeholder for the impossible range is no record either: not a honeypot signal
    assert exp["answers_impossible_query"] is False


async def test_matches_with_data_but_no_study_uid_are_a_flagged_lower_bound():
    with LostKeys(lab_address(65), patients=make_patients(65, 5)) as s:
        r = await assess(s.host, s.port, OPTS)
    exp = r.exposure
    assert exp["studies"] == 0 and exp["placeholder_matches"] >= s.ground_truth.studies
    assert exp["complete"] is False
    assert "matches with data but no Study Instance UID" in exp["inconsistencies"]


def _record(host: str, port: int) -> dict:
    return {
        "seq": int(host.rsplit(".", 1)[1]),
        "host": host,
        "port": port,
        "state": "open",
        "dicom": True,
        "implementation_class_uid": "1.2.826.0.1.3680043.9.3811.3.0.4",
        "implementation_version_name": "PYNETDICOM_304",
        "max_pdu": 16382,
        "services": {"find_study_root": True},
        "exposure": {"patients": 9, "studies": 17, "earliest_study_date": "19990101",
                     "latest_study_date": "20200101"},
        "honeypot": honeypot.verdict([]),
    }


def test_identical_data_on_several_hosts_reaches_each_record(tmp_path: Path):
    records = [_record("127.0.66.1", 104), _record("127.0.66.2", 104)]
    changed = honeypot.annotate(records)
    assert {r["host"] for r in changed} == {"127.0.66.1", "127.0.66.2"}
    for r in changed:
        assert [s["id"] for s in r["honeypot"]["signals"]] == ["canned-data"]
    assert honeypot.annotate(changed) == []  # idempotent
    # the scan database writes it into each stored record when the scan ends
    store = ScanStore.create(tmp_path / "s.db", argv=["scan"], options={}, targets_total=2)
    for r in records:
        store.add(r)
        store.mark_done(r["seq"])
    store.finish({})
    stored = store.records()
    store.close()
    assert all(
        "canned-data" in [s["id"] for s in r["honeypot"]["signals"]] for r in stored
    )
