"""Capped or refusing archives: >= 90% of the studies within the default query budget, and
whatever is not reached is a flagged lower bound (issue 10, item 6).

Loopback peers with a few hundred synthetic studies, one per field behaviour. dcm4chee-arc-light
#1446 describes both kinds ("C-FIND SCP implementations which have a limit of the maximal number
of matches ... either they explicitly reject a C-FIND RQ as too broad or they just return only a
subset"); the Google Cloud DICOM adapter (healthcare-dicom-dicomweb-adapter #42) returns at most
50,000 matches with Success, since C-FIND has no status to say "there is more".

* ``refuse``: a query that would match more than N records fails (0xA700, Out of Resources)
  with no match: vendor archives that refuse "too broad" queries; the cap is never announced;
* ``silent``: at most M matches then Success (Orthanc's LimitFindResults before 1.x reported
  Success; vendor limits in the field);
* ``refuse+silent``: both, N > M: the broad query is refused, and a date range holding more
  than M but at most N studies answers exactly M with Success, which is *not* complete;
* ``cancel``: M matches then 0xFE00, as Orthanc 1.10.1 (checked with findscu in
  test_patient_counts_real_servers.py).
"""

from __future__ import annotations

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import make_patients
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.exposure import ExposureOptions
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer

TIMEOUTS = Timeouts(2.0, 5.0, 10.0, 1.0)
PENDING = (0xFF00, 0xFF01)


class LimitingServer(PynetdicomFindServer):
    """Refuses above ``refuse_above`` matches and/or stops at ``cap`` with ``final``."""

    refuse_above: int | None = None
    cap: int | None = None
    final: int = 0x0000
    #: answer in study-date order (the cap then keeps the oldest studies of any range)
    by_date: bool = False

    def _on_find(self, event):  # type: ignore[override]
        answers = list(super()._on_find(event))
        matches = [a for a in answers if a[0] in PENDING]
        if self.by_date:
            matches.sort(key=lambda a: str(a[1].get("StudyDate", "")))
        if self.refuse_above is not None and len(matches) > self.refuse_above:
            yield 0xA700, None
            return
        if self.cap is not None and len(matches) > self.cap:
            yield from matches[: self.cap]
            yield self.final, None
            return
        yield from answers


def _server(kind: str, address: int) -> LimitingServer:
    refuse, cap, final, by_date = {
        "refuse": (50, None, 0, False),
        "silent": (None, 50, 0x0000, False),
        "refuse+silent": (200, 40, 0x0000, False),
        "refuse+silent, oldest first": (200, 40, 0x0000, True),
        "cancel": (None, 50, 0xFE00, False),
    }[kind]
    attrs = {"refuse_above": refuse, "cap": cap, "final": final, "by_date": by_date}
    cls = type(f"Limiting_{kind.replace(' ', '_')}", (LimitingServer,), attrs)
    return cls(lab_address(address), patients=make_patients(30 + address, 150))


@pytest.mark.parametrize(
    ("kind", "address"),
    [
        ("refuse", 51),
        ("silent", 52),
        ("refuse+silent", 53),
        ("cancel", 54),
        ("refuse+silent, oldest first", 57),
    ],
)
async def test_capped_archive_recovers_nine_tenths_within_the_default_budget(kind, address):
    with _server(kind, address) as s:
        truth = s.ground_truth
        assert truth.studies >= 250
        r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False))
    exp = r.exposure
    assert exp is not None
    assert exp["queries"] <= ExposureOptions().query_budget
    assert exp["studies"] >= 0.9 * truth.studies, (kind, exp["studies"], truth.studies)
    assert exp["studies"] <= truth.studies
    if exp["complete"]:
        assert exp["studies"] == truth.studies and exp["patients"] == truth.patients
    else:
        assert exp["studies"] < truth.studies or exp["patients"] != truth.patients
    if kind.startswith("refuse+silent"):
        assert exp["result_cap"] == 40  # learnt although the broad query never showed it


async def test_a_small_budget_leaves_a_flagged_lower_bound():
    with _server("refuse+silent", 55) as s:
        opts = ProbeOptions(
            timeouts=TIMEOUTS, try_tls=False, exposure=ExposureOptions(query_budget=6)
        )
        r = await assess(s.host, s.port, opts)
    exp = r.exposure
    assert exp["complete"] is False and exp["queries"] <= 6
    assert exp["studies"] is not None and exp["studies"] < s.ground_truth.studies


class RefusesEverything(PynetdicomFindServer):
    """Accepts the Q/R presentation contexts, then fails every C-FIND (0xC000): access control
    per operation, not a "too broad" refusal (Orthanc without DicomAlwaysAllowFind refuses a
    stranger's C-FIND this way)."""

    def _on_find(self, event):  # type: ignore[override]
        yield 0xC000, None


async def test_a_server_refusing_every_query_costs_a_few_queries_not_the_budget():
    with RefusesEverything(lab_address(56), patients=make_patients(56, 20)) as s:
        r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False))
    exp = r.exposure
    assert exp["refuses_every_query"] is True and exp["refusal_status"] == 0xC000
    assert exp["studies"] is None and exp["patients"] is None and exp["complete"] is False
    assert exp["patient_level"]["state"] == "refused"
    assert exp["queries"] <= 8


async def test_real_orthanc_with_limit_find_results_recovers_nine_tenths():
    """Orthanc 1.10.1, ``LimitFindResults: 10``, ~120 studies: every level answers 10 matches
    then 0xFE00 (checked with findscu in test_patient_counts_real_servers.py)."""
    from dicomguard.testing.findscu import STUDY_ROOT, findscu
    from dicomguard.testing.orthanc import OrthancServer
    from dicomguard.testing.servers import find_binary

    if find_binary("Orthanc") is None or find_binary("findscu") is None:
        pytest.skip("Orthanc / findscu not installed")
    with OrthancServer(lab_address(58), patients=make_patients(58, 60), limit_find_results=10) as s:
        seen = findscu(s.host, s.port, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"],
                       model=STUDY_ROOT, called_aet=s.aet)
        assert len(seen.matches) == 10 and seen.final.startswith("Cancel")
        r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False, web=None))
    exp = r.exposure
    truth = s.ground_truth
    assert exp["result_cap"] == 10 and exp["queries"] <= ExposureOptions().query_budget
    assert exp["studies"] >= 0.9 * truth.studies
    if exp["complete"]:
        assert (exp["studies"], exp["patients"]) == (truth.studies, truth.patients)
