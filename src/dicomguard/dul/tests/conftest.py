"""Reference peers for the upper-layer tests: a real pynetdicom SCP and hostile raw servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicomguard.knowledge.synthetic import make_patients, study_dataset

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pynetdicom_scp() -> Iterator[tuple[str, int, int]]:
    """A pynetdicom SCP (thread) answering C-ECHO and STUDY-level C-FIND from 20 fake patients.

    Yields (host, port, number of studies).
    """
    patients = make_patients(7, 20)
    studies = [study_dataset(p, s) for p in patients for s in p.studies]

    def on_find(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        for ds in studies:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            out = Dataset()
            out.QueryRetrieveLevel = "STUDY"
            out.StudyInstanceUID = ds.StudyInstanceUID
            out.StudyDate = ds.StudyDate
            yield 0xFF00, out

    ae = AE(ae_title="REFSCP")
    ae.add_supported_context(Verification)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = ae.start_server((HOST, port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find)])
    try:
        yield HOST, port, len(studies)
    finally:
        server.shutdown()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """Start an asyncio TCP server on loopback with a given (hostile) behaviour; returns port."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, HOST, 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()
