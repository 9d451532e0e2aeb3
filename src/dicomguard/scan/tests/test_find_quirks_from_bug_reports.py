"""C-FIND quirks reported against public DICOM projects, each as a small loopback peer (the lab
acceptor, ``dul/server.py``, with a handler that behaves as reported). The exposure count must
stay exact where the quirk loses nothing, and be a flagged lower bound where it does.

=====================================  =================================================
report                                 peer behaviour
=====================================  =================================================
pynetdicom #571, PR #122               the final Success response repeats the last
                                       match's identifier (DCMTK findscu warns "Status
                                       Success, but DataSetType!=NULL")
pynetdicom #163; dicomweb-proxy #110   every match with 0xFF01 (Pending, optional keys
                                       not supported)
dcm4che #586                           a final Warning status 0xB100 after all matches
dcm4chee-arc-light #3                  pending responses without Query/Retrieve Level
dicom-rs #434                          the SCP stops sending before its final response
                                       (the SCU "would wait eternally")
=====================================  =================================================
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from pydicom.dataset import Dataset

from dicomguard.dul.scp import AcceptorPolicy, FindRequest, Handlers, start_acceptor
from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import make_patients
from dicomguard.lab.personas import SERVICE_SOP_CLASSES
from dicomguard.lab.query import Archive
from dicomguard.scan.assess import ProbeOptions, assess

HOST = "127.0.0.1"
PATIENTS = make_patients(71, 10)
STUDIES = sum(len(p.studies) for p in PATIENTS)
SOP = tuple(
    uid for k in ("verification", "find_patient_root", "find_study_root")
    for uid in SERVICE_SOP_CLASSES[k]
)

Quirk = Callable[[list[Dataset]], AsyncIterator[tuple[int, Dataset | None]]]


async def _final_repeats_identifier(matches):
    for ds in matches:
        yield 0xFF00, ds
    yield 0x0000, matches[-1] if matches else None


async def _pending_warning(matches):
    for ds in matches:
        yield 0xFF01, ds


async def _final_warning(matches):
    for ds in matches:
        yield 0xFF00, ds
    yield 0xB100, None


async def _no_level(matches):
    for ds in matches:
        if "QueryRetrieveLevel" in ds:
            del ds.QueryRetrieveLevel
        yield 0xFF00, ds


async def _goes_silent(matches):
    for ds in matches[:3]:
        yield 0xFF00, ds
    await asyncio.sleep(30)  # longer than the requestor's DIMSE timeout


def _handler(quirk: Quirk):
    archive = Archive.from_patients(PATIENTS)

    async def find(request: FindRequest) -> AsyncIterator[tuple[int, Dataset | None]]:
        matches = list(archive.find(request.sop_class, request.identifier))
        async for item in quirk(matches):
            yield item

    return find


async def _scan(quirk: Quirk, dimse_timeout: float = 5.0) -> dict:
    policy = AcceptorPolicy(abstract_syntaxes=SOP)
    server = await start_acceptor(HOST, 0, policy, Handlers(find=_handler(quirk)))
    port = server.sockets[0].getsockname()[1]
    try:
        opts = ProbeOptions(timeouts=Timeouts(1.0, 2.0, dimse_timeout, 0.5), try_tls=False,
                            web=None)
        r = await assess(HOST, port, opts)
    finally:
        server.close()
    return r.exposure


@pytest.mark.parametrize(
    "quirk", [_final_repeats_identifier, _pending_warning, _final_warning, _no_level]
)
async def test_quirks_that_lose_nothing_give_exact_counts(quirk):
    exp = await _scan(quirk)
    assert exp["studies"] == STUDIES and exp["patients"] == len(PATIENTS), quirk.__name__
    assert exp["complete"] is True, quirk.__name__
    # nothing made the scanner partition (a final warning is not a cut)
    assert exp["result_cap"] is None and exp["queries"] <= 5, quirk.__name__


async def test_a_peer_that_goes_silent_costs_one_timeout_and_leaves_a_lower_bound():
    started = time.monotonic()
    exp = await _scan(_goes_silent, dimse_timeout=1.0)
    assert time.monotonic() - started < 10
    assert exp["complete"] is False and "PeerTimeout" in exp["error"]
    assert exp["studies"] == 3  # what arrived before the silence: a lower bound, not nothing
