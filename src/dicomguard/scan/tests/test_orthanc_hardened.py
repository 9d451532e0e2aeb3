"""Orthanc 1.10.1 hardened two common ways, scanned as a stranger, checked against DCMTK.

* ``nostore``: Orthanc's defaults plus ``DicomAlwaysAllowStore: false`` (what DG-008's own
  remediation says to do). Truth, DCMTK 3.6.7 as calling AE STRANGER: ``echoscu`` Success;
  ``storescu`` of a synthetic instance "Peer aborted Association"; ``findscu`` the same.
  A default scan cannot know whether a C-STORE would be accepted (it sends none): storage is
  inferred from the negotiated context, so DG-008 must say "inferred", never "confirmed".
  With ``--intrusive`` the C-STORE is aborted: storage is refused, not open, and the C-MOVE and
  C-GET checks after it run on a new association instead of a dead one.
* ``calledcheck``: ``DicomCheckCalledAet: true`` with every operation allowed. Truth:
  ``echoscu -aec WRONG`` "Called AE Title Not Recognized"; ``findscu -S -aec <DicomAet>``
  lists every study. The REST API (open, as at Orthanc's defaults on localhost) names the
  title in ``GET /system``: a stranger who reaches both ports reads the archive, so the scan
  must try that title and count the exposure.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from io import BytesIO

import pytest
from pydicom import dcmwrite

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import all_instances, make_patients
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.web import WebOptions
from dicomguard.testing.base import find_binary
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.orthanc import OrthancServer

TIMEOUTS = Timeouts(2.0, 5.0, 10.0, 1.0)
ABORTED = "Peer aborted Association"


def _need(*tools: str) -> None:
    for tool in ("Orthanc", *tools):
        if find_binary(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/bootstrap)")


@pytest.fixture(scope="module")
def orthanc_nostore() -> Iterator[OrthancServer]:
    _need()
    with OrthancServer(lab_address(80), preset="nostore", patients=make_patients(80, 4)) as s:
        yield s


@pytest.fixture(scope="module")
def orthanc_calledcheck() -> Iterator[OrthancServer]:
    _need()
    with OrthancServer(lab_address(81), preset="calledcheck",
                       patients=make_patients(81, 5)) as s:
        yield s


def _dcmtk(tool: str, server: OrthancServer, *args: str, called: str | None = None,
           files: tuple[str, ...] = ()) -> str:
    binary = find_binary(tool)
    if binary is None:
        pytest.skip(f"{tool} (dcmtk) not installed")
    done = subprocess.run(
        [binary, "-v", "-aet", "STRANGER", "-aec", called or server.aet, *args,
         server.host, str(server.port), *files],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return done.stdout + done.stderr


def test_truth_a_strangers_store_is_aborted(orthanc_nostore, tmp_path) -> None:
    path = tmp_path / "one.dcm"
    ds = next(iter(all_instances(make_patients(9080, 1))))
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    path.write_bytes(buf.getvalue())
    assert "Received Echo Response (Success)" in _dcmtk("echoscu", orthanc_nostore)
    assert ABORTED in _dcmtk("storescu", orthanc_nostore, files=(str(path),))
    assert orthanc_nostore.open_to_stranger["storage"] is False


async def test_untested_storage_is_an_inferred_finding(orthanc_nostore) -> None:
    r = await assess(orthanc_nostore.host, orthanc_nostore.port,
                     ProbeOptions(timeouts=TIMEOUTS, web=None))
    assert r.operations["storage"]["state"] == "untested"
    dg008 = [f for f in r.findings if f["id"] == "DG-008"]
    assert dg008 and dg008[0]["confidence"] == "inferred"


async def test_intrusive_store_aborted_is_refused_not_open(orthanc_nostore) -> None:
    before = orthanc_nostore.rest("/statistics")["CountInstances"]
    r = await assess(orthanc_nostore.host, orthanc_nostore.port,
                     ProbeOptions(timeouts=TIMEOUTS, web=None, intrusive=True))
    assert r.intrusive["store"]["accepted"] is None and "error" in r.intrusive["store"]
    assert r.operations["storage"]["state"] == "refused"
    assert r.services["storage"] is False and r.services_confidence["storage"] == "observed"
    assert "DG-008" not in {f["id"] for f in r.findings}
    # the C-MOVE and C-GET after it were sent on a live association and refused (aborted),
    # not left without an answer on a dead one
    assert r.operations["move"]["state"] == "refused", r.operations["move"]
    assert r.operations["get"]["state"] == "refused", r.operations["get"]
    assert orthanc_nostore.rest("/statistics")["CountInstances"] == before
    wanted = {k: r.services[k] for k in orthanc_nostore.open_to_stranger}
    assert wanted == orthanc_nostore.open_to_stranger


def test_truth_only_the_called_title_locks_it(orthanc_calledcheck) -> None:
    server = orthanc_calledcheck
    assert "Called AE Title Not Recognized" in _dcmtk("echoscu", server, called="WRONGAE")
    out = _dcmtk("findscu", server, "-S", "-k", "QueryRetrieveLevel=STUDY",
                 "-k", "StudyInstanceUID")
    assert out.count("Find Response:") == server.ground_truth.studies
    assert server.rest("/system")["DicomAet"] == server.aet


async def test_called_title_named_by_the_rest_api_is_tried(orthanc_calledcheck) -> None:
    server = orthanc_calledcheck
    opts = ProbeOptions(timeouts=TIMEOUTS, web=WebOptions(ports=(server.http_port,)))
    r = await assess(server.host, server.port, opts)
    assert r.called_aet["enforced"] is True and r.called_aet["accepted"] == server.aet
    assert r.called_aet["source"] == f"Orthanc REST API /system on port {server.http_port}"
    assert r.product == "Orthanc" and r.product_version == "1.10.1"
    truth = server.ground_truth
    assert r.exposure is not None and r.exposure["complete"] is True
    assert (r.exposure["studies"], r.exposure["patients"]) == (truth.studies, truth.patients)
    dg002 = [f for f in r.findings if f["id"] == "DG-002"]
    assert dg002 and "Orthanc REST API" in dg002[0]["detail"]
    assert "DG-005" in {f["id"] for f in r.findings}
    # without the web check (no REST port known), the title stays a secret to the wordlist
    r2 = await assess(server.host, server.port, ProbeOptions(timeouts=TIMEOUTS, web=None))
    assert r2.called_aet["enforced"] is True and r2.called_aet["accepted"] is None
