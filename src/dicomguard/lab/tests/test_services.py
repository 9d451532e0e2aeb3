"""The lab's service behaviour (lab/services.py) on the protocol layer, seen by pynetdicom's SCU.

pynetdicom is the independent requestor: what it decodes is what any SCU would read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicomguard.dul.scp import AcceptorPolicy, Handlers, StoreRequest, serve_association
from dicomguard.knowledge.synthetic import instance_dataset, make_patients
from dicomguard.lab.services import delayed, discarding_store, retrieving_nothing
from dicomguard.testing.reference import scu_association

HOST = "127.0.0.1"
MOVE = str(StudyRootQueryRetrieveInformationModelMove)
GET = str(StudyRootQueryRetrieveInformationModelGet)
CT = str(CTImageStorage)
SUBOPS = ("NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
          "NumberOfWarningSuboperations")


def _query() -> Dataset:
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = "2.25.4242.1"
    return q


@pytest.fixture
async def archive() -> AsyncIterator[tuple[int, list[str], list[str]]]:
    """A lab archive: discarding C-STORE, C-MOVE knowing VIEWER1, C-GET; counts what came."""
    stored: list[str] = []
    moved: list[str] = []
    policy = AcceptorPolicy(abstract_syntaxes=(MOVE, GET, CT), idle_timeout=5.0)

    def on_store(request: StoreRequest) -> None:
        stored.append(request.sop_class)

    handlers = Handlers(
        store=discarding_store(on_store),
        move=retrieving_nothing(frozenset({"VIEWER1"}), on_move=lambda d, _a: moved.append(d)),
        get=retrieving_nothing(),
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_association(reader, writer, policy, handlers)

    server = await asyncio.start_server(serve, HOST, 0)
    yield int(server.sockets[0].getsockname()[1]), stored, moved
    server.close()


def _store_move_get(port: int) -> tuple[int, list[tuple[int, tuple]], list[tuple[int, tuple]]]:
    with scu_association(HOST, port, (MOVE, GET, CT), calling="PYNDSCU") as assoc:
        assert assoc.is_established
        patient = make_patients(3, 1)[0]
        store = int(assoc.send_c_store(instance_dataset(patient, patient.studies[0])).Status)
        moves = [
            (int(st.Status), tuple(st.get(k) for k in SUBOPS))
            for dest in ("NOWHERE", "VIEWER1")
            for st, _ in assoc.send_c_move(_query(), dest, MOVE)
        ]
        gets = [(int(st.Status), tuple(st.get(k) for k in SUBOPS))
                for st, _ in assoc.send_c_get(_query(), GET)]
    return store, moves, gets


async def test_store_discards_and_retrievals_move_nothing(archive) -> None:
    port, stored, moved = archive
    store, moves, gets = await asyncio.to_thread(_store_move_get, port)
    assert store == 0x0000 and stored == [CT]
    # unknown destination: 0xA801 without counts; known: Success with zero sub-operations
    assert moves == [(0xA801, (None, None, None)), (0x0000, (0, 0, 0))]
    assert moved == ["NOWHERE", "VIEWER1"]
    assert gets == [(0x0000, (0, 0, 0))]


def _echo_after(port: int) -> tuple[float, int]:
    started = time.monotonic()
    with scu_association(HOST, port, (Verification,), calling="PYNDSCU") as assoc:
        took = time.monotonic() - started
        assert assoc.is_established
        return took, int(assoc.send_c_echo().Status)


async def test_a_delayed_server_answers_the_associate_request_late() -> None:
    policy = AcceptorPolicy()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_association(reader, writer, policy)

    server = await asyncio.start_server(delayed(serve, 0.6), HOST, 0)
    try:
        took, echo = await asyncio.to_thread(_echo_after, int(server.sockets[0].getsockname()[1]))
    finally:
        server.close()
    assert took >= 0.55 and echo == 0
    assert delayed(serve, 0) is serve
