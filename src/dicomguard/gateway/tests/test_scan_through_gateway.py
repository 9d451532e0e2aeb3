"""`dicomguard scan` of the gateway: the bare backend's findings are gone.

The same scanner assesses a real, open Orthanc directly and through the gateway configured
with a non-guessable route title and a calling-AE allow-list; every finding that depends on a
stranger getting in must disappear.
"""

from __future__ import annotations

from typing import Any

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess

from .conftest import GATEWAY_HOST

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0), try_tls=False)
#: findings that exist only because a stranger got an association
STRANGER_FINDINGS = {"DG-001", "DG-003", "DG-005", "DG-006", "DG-008", "DG-009", "DG-010"}


async def test_gateway_hides_the_findings_of_an_open_orthanc(
    orthanc_open: Any, gateway_factory: Any
) -> None:
    bare = await assess(orthanc_open.host, orthanc_open.port, OPTS)
    bare_ids = {f["id"] for f in bare.findings}
    assert bare_ids >= STRANGER_FINDINGS  # the backend really is wide open

    gw = gateway_factory(
        {
            "listen": [{"address": GATEWAY_HOST, "port": 0}],
            "sources": {"allow": ["127.0.0.0/8"]},
            "client": [{"calling_aet": "DGVIEWER", "sources": ["127.0.0.1/32"]}],
            "route": [
                {
                    "called_aet": "DGQ7XSECURE",
                    "backend_host": orthanc_open.host,
                    "backend_port": orthanc_open.port,
                    "backend_aet": orthanc_open.aet,
                }
            ],
            "identity": {"default": {"operations": ["ECHO", "FIND"]}},
        }
    )
    host, port = gw.address(0)
    guarded = await assess(host, port, OPTS)
    guarded_ids = {f["id"] for f in guarded.findings}

    assert guarded.dicom  # it still answers like DICOM: with a proper reject, never silence
    assert guarded.called_aet["enforced"] is True and guarded.called_aet["accepted"] is None
    assert not any(guarded.services.values()) and guarded.exposure is None
    assert guarded_ids.isdisjoint(STRANGER_FINDINGS), guarded_ids
    assert guarded_ids < bare_ids | {"DG-004"}
