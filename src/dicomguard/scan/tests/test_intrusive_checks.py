"""C-STORE and C-MOVE are sent only with --intrusive: the lab counts what its servers received.

The lab's Fleet counts C-STORE requests (``stored``) and C-MOVE requests (``moved``) per host,
so "nothing was sent" is observed on the server side, not inferred from the scanner's output.
A real Orthanc shows what the checks conclude against a product that refuses unknown move
destinations but lets anyone store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX, make_patients
from dicomguard.lab.fleet import Fleet
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.intrusive import TEST_DESCRIPTION
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets
from dicomguard.testing.base import find_binary
from dicomguard.testing.orthanc import OrthancServer
from dicomguard.testing.servers import lab_address

NETWORK = "127.42.245.0/29"
PERSONAS = ["open", "store-only", "echo-only", "called-aet-guessable", "calling-aet-allowlist"]
TIMEOUTS = Timeouts(connect=1.0, associate=2.0, dimse=4.0, release=0.5)


async def _scan(fleet: Fleet, probe: ProbeOptions) -> dict[str, EndpointResult]:
    results: dict[str, EndpointResult] = {}

    def sink(r: EndpointResult) -> None:
        results[fleet_persona(fleet, r.host)] = r

    targets = build_targets([NETWORK], ports=(11112,))
    assert targets.all_loopback()
    await Engine(ScanConfig(targets=targets, probe=probe, rate=0), sink).run()
    return results


def fleet_persona(fleet: Fleet, host: str) -> str:
    return next(p.persona.name for p in fleet.plan if p.host == host)


def _ids(r: EndpointResult) -> set[str]:
    return {f["id"] for f in r.findings}


async def test_default_scan_sends_no_store_and_no_move_the_intrusive_one_does():
    async with Fleet(NETWORK, PERSONAS, max_patients=20) as fleet:
        by_persona = {p.persona.name: p.host for p in fleet.plan}

        default = await _scan(fleet, ProbeOptions(timeouts=TIMEOUTS))
        assert sum(fleet.stored.values()) == 0 and sum(fleet.moved.values()) == 0
        assert all(r.intrusive is None for r in default.values())
        assert not any(_ids(r) & {"DG-040", "DG-041"} for r in default.values())
        # the default scan did reach the archives (so "nothing sent" is not "nothing reached")
        assert default["open"].services["storage"] and default["open"].services["move"]

        intrusive = await _scan(fleet, ProbeOptions(timeouts=TIMEOUTS, intrusive=True))
        assert fleet.stored == {
            by_persona["open"]: 1,
            by_persona["store-only"]: 1,
            by_persona["called-aet-guessable"]: 1,  # reached after guessing its called AE
        }
        assert fleet.moved == {by_persona["open"]: 1, by_persona["called-aet-guessable"]: 1}

        open_ = intrusive["open"]
        assert open_.intrusive["store"]["accepted"] is True
        move = open_.intrusive["move"]
        # the lab answers success with zero sub-operations: not refused, but not proven
        assert move["accepted"] is True and move["confidence"] == "inferred"
        assert move["destination"].startswith("DGMV")
        assert {"DG-040", "DG-041"} <= _ids(open_)
        assert intrusive["store-only"].intrusive["move"] is None
        assert "DG-041" not in _ids(intrusive["store-only"])
        assert intrusive["echo-only"].intrusive == {"store": None, "move": None}
        assert intrusive["calling-aet-allowlist"].intrusive is None  # never got in
        text = json.dumps([r.to_dict() for r in intrusive.values()])
        assert NAME_PREFIX not in text and ID_PREFIX not in text


@pytest.fixture(scope="module")
def orthanc_for_writes() -> Iterator[OrthancServer]:
    """An Orthanc of its own: the store check adds a study, which shared fixtures must not see."""
    if find_binary("Orthanc") is None:
        pytest.skip("Orthanc missing: run scripts/bootstrap")
    with OrthancServer(lab_address(44), preset="open", patients=make_patients(44, 5)) as s:
        yield s


async def test_orthanc_accepts_the_test_object_and_refuses_unknown_move_destinations(
    orthanc_for_writes,
):
    s = orthanc_for_writes
    before = s.rest("/statistics")["CountStudies"]
    r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, intrusive=True, web=None))
    assert r.intrusive is not None
    store, move = r.intrusive["store"], r.intrusive["move"]
    assert store["status"] == 0 and store["accepted"] is True
    # Orthanc 1.10.1 answers an unknown destination with 0xC000 before any sub-operation
    assert move["status"] in (0xA801, 0xC000) and move["accepted"] is False
    ids = _ids(r)
    assert "DG-040" in ids and "DG-041" not in ids
    # the test object is in the archive, labelled, and findable by the UID we reported
    assert s.rest("/statistics")["CountStudies"] == before + 1
    found = s.rest(
        "/tools/find",
        json.dumps(
            {
                "Level": "Study",
                "Query": {"StudyInstanceUID": store["study_instance_uid"]},
                "Expand": True,
            }
        ).encode(),
    )
    assert found[0]["MainDicomTags"]["StudyDescription"] == TEST_DESCRIPTION
