"""``--calling-aet`` set to a title the server admits does not make it "open to any calling AE".

Truth (DCMTK 3.6.7 dcmqrscp, AETable: DGVIEWER only): ``echoscu -aet DGVIEWER -aec DGQRSCP``
gets Success; ``echoscu -aet STRANGER -aec DGQRSCP`` gets "Rejected Permanent ... Called AE
Title Not Recognized" (dcmqrscp answers an unknown calling title with reason 7). A scan with
``--calling-aet DGVIEWER`` said calling AE ``enforced: false, verified: true`` and raised DG-003
(high, "Unknown calling AE titles are accepted"); a stranger's title is now tried as well.
"""

from __future__ import annotations

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess

TIMEOUTS = Timeouts(2.0, 5.0, 10.0, 1.0)


async def test_admitted_calling_title_is_found_enforced(dcmqrscp_aetable) -> None:
    server = dcmqrscp_aetable
    opts = ProbeOptions(timeouts=TIMEOUTS, calling_aet="DGVIEWER", probe_called_aet=server.aet,
                        web=None, try_tls=False, exposure=None)
    r = await assess(server.host, server.port, opts)
    assert r.dicom and r.services["verification"]
    assert r.calling_aet.enforced is True and r.calling_aet.verified is True
    assert r.calling_aet.accepted == "DGVIEWER"
    assert "DG-003" not in {f["id"] for f in r.findings}


async def test_open_server_with_own_calling_title_stays_open(orthanc_open) -> None:
    opts = ProbeOptions(timeouts=TIMEOUTS, calling_aet="DGVIEWER", web=None, try_tls=False,
                        exposure=None)
    r = await assess(orthanc_open.host, orthanc_open.port, opts)
    assert r.calling_aet.enforced is False and r.calling_aet.verified is True
    assert "DG-003" in {f["id"] for f in r.findings}
