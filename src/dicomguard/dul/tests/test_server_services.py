"""DIMSE services of the acceptor, checked with our requestor and with pynetdicom's AE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.scp import (
    VERIFICATION,
    AcceptorPolicy,
    FindRequest,
    Handlers,
    RetrieveRequest,
    StoreRequest,
    start_acceptor,
)
from dicomguard.dul.scu import associate
from dicomguard.knowledge.synthetic import instance_dataset, make_patients
from dicomguard.testing.reference import identifier, scu_association

HOST = "127.0.0.1"
STUDY_FIND = str(StudyRootQueryRetrieveInformationModelFind)
STUDY_MOVE = str(StudyRootQueryRetrieveInformationModelMove)
STUDY_GET = str(StudyRootQueryRetrieveInformationModelGet)
CT = str(CTImageStorage)
N_RESULTS = 300


async def numbered(request: FindRequest) -> AsyncIterator[tuple[int, Dataset | None]]:
    """N_RESULTS study matches, enough that a cancel lands before the end."""
    for i in range(N_RESULTS):
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = f"2.25.4242.99.{i}"
        yield 0xFF00, ds


async def move_nothing(request: RetrieveRequest) -> tuple[int, dict[str, int]]:
    """A C-MOVE SCP that knows one destination and holds nothing to move."""
    if request.move_destination != "KNOWN":
        return 0xA801, {}  # Refused: Move Destination unknown (PS3.4 C.4.2.1.4)
    counts = ("Completed", "Failed", "Warning")
    return 0x0000, {f"NumberOf{c}Suboperations": 0 for c in counts}


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[StoreRequest]]]:
    stored: list[StoreRequest] = []

    async def store(request: StoreRequest) -> int:
        stored.append(request)
        return 0

    policy = AcceptorPolicy(
        ae_title="DGTEST",
        abstract_syntaxes=(VERIFICATION, STUDY_FIND, STUDY_MOVE, CT),
        idle_timeout=5.0,
    )
    handlers = Handlers(find=numbered, store=store, move=move_nothing)
    srv = await start_acceptor(HOST, 0, policy, handlers)
    yield int(srv.sockets[0].getsockname()[1]), stored
    srv.close()


def study_query() -> Dataset:
    return identifier("STUDY", StudyInstanceUID="")


async def test_find_streams_every_result_then_success(server) -> None:
    port, _ = server
    outcome = await associate(HOST, port, AssociateRequest(abstract_syntaxes=(STUDY_FIND,)))
    assert outcome.association
    async with outcome.association as assoc:
        got = [ds.StudyInstanceUID async for ds in assoc.find(STUDY_FIND, study_query())]
        assert assoc.last_status == 0
    assert len(got) == N_RESULTS == len(set(got))


async def test_cancel_stops_the_find_and_keeps_the_association(server) -> None:
    port, _ = server
    req = AssociateRequest(abstract_syntaxes=(VERIFICATION, STUDY_FIND))
    outcome = await associate(HOST, port, req)
    assert outcome.association
    async with outcome.association as assoc:
        got = [ds async for ds in assoc.find(STUDY_FIND, study_query(), max_results=5)]
        assert len(got) == 5
        assert assoc.last_status == 0xFE00  # the server saw the C-CANCEL before its last result
        assert await assoc.echo() == 0


def _pynetdicom_echo_find_move_store(port: int) -> tuple[int, int, int, list[int], int]:
    contexts = (Verification, StudyRootQueryRetrieveInformationModelFind,
                StudyRootQueryRetrieveInformationModelMove, CTImageStorage)
    with scu_association(HOST, port, contexts, calling="PYNDSCU", called="DGTEST") as assoc:
        assert assoc.is_established
        echo = assoc.send_c_echo().Status
        statuses = [st.Status for st, _ in assoc.send_c_find(study_query(), STUDY_FIND)]
        pending = sum(1 for s in statuses if s == 0xFF00)
        moves = [
            st.Status
            for dest in ("NOWHERE", "KNOWN")
            for st, _ in assoc.send_c_move(study_query(), dest, STUDY_MOVE)
        ]
        patient = make_patients(3, 1)[0]
        store = assoc.send_c_store(instance_dataset(patient, patient.studies[0])).Status
    return echo, pending, statuses[-1], moves, store


async def test_pynetdicom_scu_interoperates(server) -> None:
    port, stored = server
    echo, pending, final, moves, store = await asyncio.to_thread(
        _pynetdicom_echo_find_move_store, port
    )
    assert echo == 0
    assert pending == N_RESULTS and final == 0
    assert moves == [0xA801, 0x0000]
    assert store == 0
    assert len(stored) == 1 and stored[0].sop_class == CT
    assert stored[0].association.calling_aet == "PYNDSCU"


def _pynetdicom_cancel(port: int) -> list[int]:
    statuses = []
    with scu_association(HOST, port, (StudyRootQueryRetrieveInformationModelFind,),
                         calling="PYNDSCU") as assoc:
        msg_id = 7
        for i, (status, _) in enumerate(
            assoc.send_c_find(study_query(), STUDY_FIND, msg_id=msg_id)
        ):
            statuses.append(int(status.Status))
            if i == 2:
                cx = assoc._get_valid_context(STUDY_FIND, "", "scu")
                assoc.send_c_cancel(msg_id, cx.context_id)
    return statuses


async def test_pynetdicom_cancel_is_honoured(server) -> None:
    port, _ = server
    statuses = await asyncio.to_thread(_pynetdicom_cancel, port)
    assert statuses[-1] == 0xFE00
    assert len(statuses) < N_RESULTS


def _pynetdicom_store_move_get(port: int) -> tuple[int, list[int], list[int]]:
    contexts = (StudyRootQueryRetrieveInformationModelMove,
                StudyRootQueryRetrieveInformationModelGet, CTImageStorage)
    with scu_association(HOST, port, contexts, calling="PYNDSCU") as assoc:
        assert assoc.is_established
        patient = make_patients(3, 1)[0]
        store = assoc.send_c_store(instance_dataset(patient, patient.studies[0])).Status
        move = [st.Status for st, _ in assoc.send_c_move(study_query(), "ANY", STUDY_MOVE)]
        get = [st.Status for st, _ in assoc.send_c_get(study_query(), STUDY_GET)]
    return store, move, get


async def test_requests_without_a_handler_are_answered_sop_class_not_supported() -> None:
    """The protocol layer invents no service: with contexts accepted but no handlers, C-STORE,
    C-MOVE and C-GET get status 0x0122 (Refused: SOP class not supported, PS3.7 C.4)."""
    policy = AcceptorPolicy(abstract_syntaxes=(STUDY_MOVE, STUDY_GET, CT), idle_timeout=5.0)
    srv = await start_acceptor(HOST, 0, policy, Handlers())
    try:
        port = int(srv.sockets[0].getsockname()[1])
        store, move, get = await asyncio.to_thread(_pynetdicom_store_move_get, port)
    finally:
        srv.close()
    assert (store, move, get) == (0x0122, [0x0122], [0x0122])
