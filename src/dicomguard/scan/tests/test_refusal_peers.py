"""Field behaviours of per-operation access, as small loopback peers (pynetdicom SCPs).

* 0x0124 "Refused: Not authorized" (PS3.7 C.4, the general refusal status; dcm4che's
  dcmqrscp can be told to answer any status with ``--cfind-error``, dcm4che/dcm4che#472): the
  association stays up, the service is refused, access is enforced per operation.
* A C-FIND that is never answered (fo-dicom/fo-dicom-samples#100, a SANTESOFT/2.0.00 server
  "holds on"): silence is neither an answer nor a refusal; the service is not open and the
  scan does not claim per-operation enforcement either.

Truth checked with DCMTK findscu against the same peers
(:func:`test_findscu_sees_the_same_refusal_and_silence`): "Received Final Find Response
(Unknown Status: 0x124)" (DCMTK 3.6.7 has no name for the general status) and the association
released normally; against the silent peer findscu -td 1 gives up with a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pynetdicom import evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.testing.base import find_binary
from dicomguard.testing.reference import running_scp

HOST = "127.0.0.1"
OPTS = ProbeOptions(timeouts=Timeouts(1.0, 2.0, 1.0, 0.5), try_tls=False, web=None)


def _refuse(event: evt.Event) -> Iterator[tuple[int, None]]:
    yield 0x0124, None


def _hold(event: evt.Event) -> Iterator[tuple[int, None]]:
    time.sleep(3.0)  # longer than the scan's DIMSE timeout (1 s): the answer comes too late
    yield from ()


@contextmanager
def scp(handler) -> Iterator[int]:
    with running_scp(HOST, ae_title="DGPEER", handlers=[(evt.EVT_C_FIND, handler)],
                     contexts=(Verification, StudyRootQueryRetrieveInformationModelFind)) as port:
        yield port


async def test_not_authorized_status_is_a_per_operation_refusal() -> None:
    with scp(_refuse) as port:
        r = await assess(HOST, port, OPTS)
    op = r.operations["find_study_root"]
    assert op == {"state": "refused", "status": 0x0124, "detail": "C-FIND status 0x0124"}
    assert r.services_negotiated["find_study_root"] and not r.services["find_study_root"]
    assert r.services["verification"] and r.access_enforced_per_operation
    assert r.associations == 1  # a status refusal leaves the association usable
    ids = {f["id"] for f in r.findings}
    assert "DG-015" in ids and "DG-005" not in ids


async def test_a_find_never_answered_is_not_open_and_not_a_refusal() -> None:
    with scp(_hold) as port:
        r = await assess(HOST, port, OPTS)
    op = r.operations["find_study_root"]
    assert op["state"] == "failed" and op["status"] is None and "no answer" in op["detail"]
    assert not r.services["find_study_root"] and not r.access_enforced_per_operation
    ids = {f["id"] for f in r.findings}
    assert not ids & {"DG-005", "DG-015"}


async def test_findscu_sees_the_same_refusal_and_silence() -> None:
    findscu = find_binary("findscu")
    if findscu is None:
        pytest.skip("findscu (dcmtk) not installed")

    async def run(port: int) -> str:
        proc = await asyncio.create_subprocess_exec(
            findscu, "-v", "-S", "-to", "1", "-td", "1", "-k", "QueryRetrieveLevel=STUDY",
            "-k", "StudyInstanceUID=2.25.1", HOST, str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        return out.decode(errors="replace")

    with scp(_refuse) as port:
        refused = await run(port)
    with scp(_hold) as port:
        held = await run(port)
    assert "Received Final Find Response (Unknown Status: 0x124)" in refused
    assert "Final Find Response" not in held and "timeout" in held.lower()
