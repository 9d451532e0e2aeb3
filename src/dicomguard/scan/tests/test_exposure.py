"""Exposure counts are exact where the server allows, flagged lower bounds where it caps."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX, make_patients
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.exposure import ExposureOptions
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer

OPTS = ProbeOptions(timeouts=Timeouts(1.0, 3.0, 5.0, 0.5), try_tls=False)


class CappedFindServer(PynetdicomFindServer):
    """Answers at most ``cap`` matches per C-FIND and still says success, like Orthanc's
    LimitFindResults: the silent cap a scanner must detect."""

    cap = 25

    def _on_find(self, event):  # type: ignore[override]
        for i, item in enumerate(super()._on_find(event)):
            if i >= self.cap and item[0] in (0xFF00, 0xFF01):
                return
            yield item


@pytest.fixture(scope="module")
def full_server() -> Iterator[PynetdicomFindServer]:
    with PynetdicomFindServer(lab_address(31), patients=make_patients(11, 40)) as s:
        yield s


@pytest.fixture(scope="module")
def capped_server() -> Iterator[PynetdicomFindServer]:
    with CappedFindServer(lab_address(32), patients=make_patients(12, 60)) as s:
        yield s


async def test_counts_are_exact_on_an_open_archive(full_server):
    r = await assess(full_server.host, full_server.port, OPTS)
    truth = full_server.ground_truth
    exp = r.exposure
    assert exp is not None and exp["complete"] is True
    assert exp["studies"] == truth.studies
    assert exp["patients"] == truth.patients
    assert exp["earliest_study_date"] == truth.earliest_study_date
    assert exp["latest_study_date"] == truth.latest_study_date
    assert set(exp["modalities"]) == set(truth.modalities)


async def test_silent_cap_is_detected_and_partitioned(capped_server):
    r = await assess(capped_server.host, capped_server.port, OPTS)
    truth = capped_server.ground_truth
    exp = r.exposure
    assert exp is not None
    assert exp["result_cap"] == CappedFindServer.cap
    # date partitioning recovers every study, every leaf below the cap: exact; the patients
    # are those the study answers named (keyed hashes of PatientID), the capped PATIENT
    # level's answers de-duplicated into them, never summed
    assert exp["studies"] == truth.studies
    assert exp["earliest_study_date"] == truth.earliest_study_date
    assert exp["patients"] == truth.patients
    assert exp["patient_level"]["state"] == "capped"
    assert exp["complete"] is True


async def test_budget_exhaustion_gives_lower_bound(capped_server):
    opts = ProbeOptions(
        timeouts=OPTS.timeouts, try_tls=False, exposure=ExposureOptions(query_budget=4)
    )
    r = await assess(capped_server.host, capped_server.port, opts)
    exp = r.exposure
    assert exp is not None and exp["complete"] is False
    assert exp["queries"] <= 4
    assert exp["studies"] is not None and exp["studies"] < capped_server.ground_truth.studies


async def test_no_identifier_reaches_the_record(full_server):
    r = await assess(full_server.host, full_server.port, OPTS)
    text = json.dumps(r.to_dict())
    assert NAME_PREFIX not in text and ID_PREFIX not in text
    for p in full_server.patients:
        assert p.patient_id not in text and p.birth_date not in text


async def test_collect_identifiers_stores_only_salted_hashes(full_server):
    opts = ProbeOptions(
        timeouts=OPTS.timeouts,
        try_tls=False,
        exposure=ExposureOptions(collect_identifiers=True, salt=b"s1"),
    )
    r = await assess(full_server.host, full_server.port, opts)
    exp = r.exposure
    assert exp is not None and len(exp["patient_id_hashes"]) == full_server.ground_truth.patients
    assert ID_PREFIX not in json.dumps(r.to_dict())


def test_queries_ask_only_for_the_unique_key_of_the_patient():
    """PatientID is requested (the level's unique key, hashed with a per-meter key on
    arrival); names and birth dates never are."""
    from dicomguard.scan.exposure import ExposureMeter

    meter = ExposureMeter.__new__(ExposureMeter)
    meter.opts = ExposureOptions()
    q: Dataset = meter._study_identifier("20000101-20001231")
    assert {"PatientName", "PatientBirthDate"}.isdisjoint(q.dir())
    assert "PatientID" in q.dir() and q.PatientID == ""
