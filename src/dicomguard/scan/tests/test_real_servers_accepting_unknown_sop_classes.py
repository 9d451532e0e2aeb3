"""Real archives told to accept unknown SOP classes are not honeypots.

Orthanc 1.10.1 with ``"UnknownSopClassAccepted": true`` and DCMTK 3.6.7 ``storescp
--promiscuous`` accept dicomguard's canary SOP class (a made-up UID under its own root), as the
decoys do. Truth, with pynetdicom 3 as an independent requestor proposing the canary beside
Verification: the canary's presentation context is accepted (result 0) by both, and refused
(result 3, abstract syntax not supported) by the same servers without the option. Alone, that
must not make an endpoint a (likely) honeypot, which would take a real archive's patients out
of every survey total.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge import sopclasses as sc
from dicomguard.knowledge.synthetic import make_patients
from dicomguard.report.stats import per_ip
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.testing.base import LoopbackServer, find_binary
from dicomguard.testing.dcmtk import StorescpServer
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.orthanc import OrthancServer
from dicomguard.testing.reference import scu_association

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0), web=None, try_tls=False)
VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture(scope="module")
def storescp_promiscuous() -> Iterator[StorescpServer]:
    if find_binary("storescp") is None:
        pytest.skip("storescp (dcmtk) not installed")
    with StorescpServer(lab_address(84), promiscuous=True) as s:
        yield s


@pytest.fixture(scope="module")
def orthanc_unknown_sop() -> Iterator[OrthancServer]:
    if find_binary("Orthanc") is None:
        pytest.skip("Orthanc not installed")
    with OrthancServer(lab_address(85), preset="open", patients=make_patients(85, 4),
                       unknown_sop_class_accepted=True) as s:
        yield s


def _canary_result(server: LoopbackServer) -> int | None:
    """pynetdicom proposes Verification and the canary; the canary context's result."""
    with scu_association(server.host, server.port, (VERIFICATION, sc.CANARY),
                         calling="STRANGER", called=server.aet) as assoc:
        assert assoc.is_established
        for cx in assoc.accepted_contexts + assoc.rejected_contexts:
            if cx.abstract_syntax == sc.CANARY:
                return cx.result
        return None


@pytest.mark.parametrize("fixture", ["storescp_promiscuous", "orthanc_unknown_sop"])
async def test_accepting_the_canary_alone_is_not_a_honeypot(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(fixture)
    assert _canary_result(server) == 0  # truth: the real server accepts it
    r = await assess(server.host, server.port, OPTS)
    assert r.canary_result == 0
    assert [s["id"] for s in r.honeypot["signals"]] == ["accepts-unknown-sop-class"]
    assert r.honeypot["suspected"] is False
    rec = r.to_dict()
    figures = per_ip([rec], 1)
    assert figures["honeypots"] == 0 and figures["likely_honeypots"] == 0, figures
    assert figures["servers"] == 1
    if fixture == "orthanc_unknown_sop":  # its patients stay in the totals
        assert figures["studies_exposed"] == server.ground_truth.studies
