"""Issue 12: the bound on responses after C-CANCEL never fires against servers that honour it.

Real servers: DCMTK 3.6.7 dcmqrscp and pynetdicom (its Q/R SCP in a thread). Each gets a
C-FIND for every study, cancelled after 2 matches; the answer must end with a final status
(Cancel 0xFE00, or Success when the last match was already on its way), never with
CancelIgnored, and the association stays usable for another query, then releases normally.
The number of studies is checked with DCMTK findscu, an independent requestor.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset

from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.scu import Association, Timeouts, associate
from dicomguard.testing.dcmtk import DcmqrscpServer
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer
from dicomguard.testing.reference import identifier

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _query() -> Dataset:
    return identifier("STUDY", StudyInstanceUID="")


@pytest.fixture(params=["dcmqrscp", "pynetdicom"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int, str, str]]:
    """(host, port, called AE, calling AE) of a real Q/R SCP holding synthetic studies."""
    if request.param == "dcmqrscp":
        with DcmqrscpServer(lab_address(41)) as s:
            yield s.host, s.port, s.aet, s.calling_aets[0]
    else:
        with PynetdicomFindServer(lab_address(42)) as s:
            yield s.host, s.port, s.aet, "DICOMGUARD"


def _findscu_studies(host: str, port: int, called: str, calling: str) -> int:
    out = subprocess.run(
        [
            "findscu",
            "-S",
            "-aet",
            calling,
            "-aec",
            called,
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID",
            host,
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return len(re.findall(r"\(0020,000d\)", out.stdout + out.stderr))


def test_honoured_cancel_keeps_the_association(server: tuple[str, int, str, str]) -> None:
    host, port, called, calling = server
    studies = _findscu_studies(host, port, called, calling)
    assert studies > 2, "the server needs more studies than the cancel point"

    async def go() -> tuple[list[int], int | None, int]:
        request = AssociateRequest(
            called_aet=called, calling_aet=calling, abstract_syntaxes=(STUDY_FIND,)
        )
        outcome = await associate(host, port, request, timeouts=Timeouts(3.0, 10.0, 10.0, 2.0))
        assoc: Association | None = outcome.association
        assert assoc is not None, outcome.reject
        got = [1 async for _ in assoc.find_raw(STUDY_FIND, _query(), max_results=2)]
        status = assoc.last_status
        everything = [1 async for _ in assoc.find_raw(STUDY_FIND, _query())]
        await assoc.release()
        return got, status, len(everything)

    got, status, again = asyncio.run(go())
    assert len(got) == 2
    assert status in (0xFE00, 0x0000), hex(status or -1)
    assert again == studies  # the association went on after the cancel
