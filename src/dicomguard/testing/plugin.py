"""dicomguard's test kit as a pytest plugin (entry point ``pytest11``: ``dicomguard``).

Loaded by every pytest run in an environment where dicomguard is installed (``scripts/test``,
the bench); ``-p no:dicomguard`` turns it off. It gives:

* **The loopback-only guard** (:mod:`dicomguard.testing.guard`), installed at configure time:
  a socket aimed off loopback raises and fails the test that opened it; the report header says
  whether the run is inside a loopback-only network namespace (``scripts/test``).
* **Ports and peers**: ``loopback_port`` (a free TCP port on 127.0.0.1), ``reference_scp``
  (start a pynetdicom SCP with your handlers, :mod:`dicomguard.testing.reference`),
  ``raw_server`` (an asyncio TCP server with a given, often hostile, behaviour).
* **Certificates**: ``test_ca`` (a session CA issuing server, client, expired and
  not-yet-valid certificates, :mod:`dicomguard.testing.pki`).
* **Real servers**, started once per session on distinct loopback addresses
  (:mod:`dicomguard.testing.servers`): Orthanc presets, DCMTK dcmqrscp/storescp/wlmscpfs,
  pynetdicom's qrscp app and an in-process pynetdicom SCP. When the server software is missing,
  tests that need it are skipped locally but FAIL under CI (``CI=true``): CI must prove the
  integration tests ran, not quietly skip them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomguard.testing import guard
from dicomguard.testing.loopback import free_port
from dicomguard.testing.pki import TestCA
from dicomguard.testing.reference import start_scp
from dicomguard.testing.require import need_binaries
from dicomguard.testing.servers import (
    DcmqrscpServer,
    LoopbackServer,
    OrthancServer,
    PynetdicomFindServer,
    PynetdicomQrscpServer,
    StorescpServer,
    WlmscpfsServer,
    lab_address,
)
from dicomguard.testing.threads import LoopThread

LOCALHOST = "127.0.0.1"


# -- the loopback-only guard -------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    guard.install_socket_guard()


def pytest_report_header(config: pytest.Config) -> str:
    where = "yes" if guard.is_isolated() else "NO (Orthanc/DCMTK tests will refuse to start)"
    return f"dicomguard: loopback-only network namespace: {where}; socket guard on"


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """Fail a test during which a socket was aimed off loopback (the guard refused it)."""
    guard.violations.clear()
    yield
    seen, guard.violations[:] = list(guard.violations), []
    if seen:
        pytest.fail("; ".join(seen), pytrace=False)


# -- ports, peers, certificates -----------------------------------------------------------------


@pytest.fixture
def loopback_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now (see :func:`free_port` for the race)."""
    return free_port(LOCALHOST)


@pytest.fixture
def silent_port() -> Iterator[tuple[str, int]]:
    """(host, port) of a loopback listener that accepts and never answers (it closes when the
    client goes): an endpoint that holds a scan for its --timeout."""
    host = "127.0.0.1"

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client goes
        writer.close()

    thread = LoopThread()
    try:
        server = thread.call(asyncio.start_server(hold, host, 0))
        yield host, server.sockets[0].getsockname()[1]

        async def stop() -> None:
            server.close()

        thread.call(stop())
    finally:
        thread.close()


@pytest.fixture
def reference_scp() -> Iterator[Callable[..., int]]:
    """``reference_scp(**options) -> port``: a pynetdicom SCP on 127.0.0.1 with the options of
    :func:`dicomguard.testing.reference.start_scp`; shut down after the test."""
    running: list[Any] = []

    def start(**options: Any) -> int:
        server = start_scp(LOCALHOST, **options)
        running.append(server)
        return int(server.server_address[1])

    yield start
    for server in running:
        server.shutdown()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """``await raw_server(handler) -> port``: an asyncio TCP server on 127.0.0.1 running
    ``handler`` per connection (a hostile peer's behaviour); closed after the test."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, LOCALHOST, 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """A session CA: ``test_ca.issue(cn, server=..., hosts=..., valid_from_days=...,
    valid_days=...)``; its certificate is ``test_ca.ca_file``."""
    return TestCA(Path(tmp_path_factory.mktemp("pki")))


# -- real servers -------------------------------------------------------------------------------


#: Fixture names of the real DICOM servers scanner behaviours are checked against.
REAL_DICOM_SERVERS = (
    "orthanc_open",
    "orthanc_locked",
    "dcmqrscp_aetable",
    "storescp_server",
    "pynetdicom_scp",
)


@pytest.fixture(params=REAL_DICOM_SERVERS)
def real_dicom_server(request: pytest.FixtureRequest) -> LoopbackServer:
    """Each server of :data:`REAL_DICOM_SERVERS` in turn: a test using it runs once per server."""
    return request.getfixturevalue(request.param)


def _serve(factory: Callable[[], LoopbackServer]) -> Iterator[LoopbackServer]:
    server = factory()
    with server:
        yield server


@pytest.fixture(scope="session")
def orthanc_open() -> Iterator[LoopbackServer]:
    """Orthanc that lets anyone in with any called AE (preset ``open``) on 127.0.10.1."""
    need_binaries("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(1), preset="open"))


@pytest.fixture(scope="session")
def orthanc_locked() -> Iterator[LoopbackServer]:
    """Orthanc checking called AE and knowing only DGVIEWER (preset ``locked``) on 127.0.10.2."""
    need_binaries("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(2), preset="locked"))


@pytest.fixture(scope="session")
def dcmqrscp_aetable() -> Iterator[LoopbackServer]:
    """dcmqrscp: called AE DGQRSCP, calling AE DGVIEWER only, on 127.0.10.3."""
    need_binaries("dcmqrscp", "dcmqridx")
    yield from _serve(lambda: DcmqrscpServer(lab_address(3)))


@pytest.fixture(scope="session")
def storescp_server() -> Iterator[LoopbackServer]:
    """DCMTK storescp (store-only, any AE titles) on 127.0.10.4."""
    need_binaries("storescp")
    yield from _serve(lambda: StorescpServer(lab_address(4)))


@pytest.fixture(scope="session")
def storescp_big_pdu_server() -> Iterator[LoopbackServer]:
    """storescp accepting 128 KiB PDUs on 127.0.10.6 (large PDUs: the gateway's splice path)."""
    need_binaries("storescp")
    yield from _serve(lambda: StorescpServer(lab_address(6), max_pdu=131072))


@pytest.fixture(scope="session")
def pynetdicom_scp() -> Iterator[LoopbackServer]:
    """In-process pynetdicom Verification + C-FIND SCP, no AE checks, on 127.0.10.5."""
    yield from _serve(lambda: PynetdicomFindServer(lab_address(5)))


@pytest.fixture(scope="session")
def orthanc_default() -> Iterator[OrthancServer]:
    """Orthanc at its own defaults (preset ``default``: no DicomModalities, Find/Move/Get not
    always allowed) on 127.0.10.20: contexts accepted, a stranger's operations aborted."""
    need_binaries("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(20), preset="default"))


@pytest.fixture(scope="session")
def orthanc_modalities() -> Iterator[OrthancServer]:
    """Orthanc with DicomAlwaysAllowFind false and one DicomModalities entry (DGVIEWER)."""
    need_binaries("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(21), preset="modalities"))


@pytest.fixture(scope="session")
def orthanc_worklist() -> Iterator[OrthancServer]:
    """Orthanc with the worklist plugin, Q/R open, DicomAlwaysAllowFindWorklist false."""
    need_binaries("Orthanc")
    yield from _serve(lambda: OrthancServer(lab_address(22), preset="worklist"))


@pytest.fixture(scope="session")
def storescp_tls() -> Iterator[StorescpServer]:
    """DCMTK storescp speaking DICOM only inside TLS (``+tls key crt -ic``) on 127.0.10.23."""
    need_binaries("storescp")
    yield from _serve(lambda: StorescpServer(lab_address(23), tls="tls"))


@pytest.fixture(scope="session")
def storescp_mutual_tls() -> Iterator[StorescpServer]:
    """DCMTK storescp requiring a client certificate (``+tls key crt +cf ca -rc``), 127.0.10.24."""
    need_binaries("storescp")
    yield from _serve(lambda: StorescpServer(lab_address(24), tls="mutual"))


@pytest.fixture(scope="session")
def orthanc_mutual_tls() -> Iterator[OrthancServer]:
    """Orthanc with DicomTlsEnabled and DicomTlsRemoteCertificateRequired, on 127.0.10.25."""
    need_binaries("Orthanc")
    yield from _serve(
        lambda: OrthancServer(lab_address(25), preset="open", dicom_tls="mutual")
    )


@pytest.fixture(scope="session")
def storescp_mutual_tls12() -> Iterator[StorescpServer]:
    """storescp requiring a client certificate over TLS 1.2 only (``+pa``), on 127.0.10.28."""
    need_binaries("storescp")
    yield from _serve(
        lambda: StorescpServer(lab_address(28), tls="mutual", tls_profile="+pa")
    )


@pytest.fixture(scope="session")
def wlmscpfs_server() -> Iterator[LoopbackServer]:
    """DCMTK wlmscpfs with synthetic worklist files under its example title OFFIS, 127.0.10.8."""
    need_binaries("wlmscpfs")
    yield from _serve(lambda: WlmscpfsServer(lab_address(8)))


@pytest.fixture(scope="session")
def pynetdicom_qrscp() -> Iterator[LoopbackServer]:
    """``python -m pynetdicom qrscp`` (its Q/R archive app) on 127.0.10.9."""
    yield from _serve(lambda: PynetdicomQrscpServer(lab_address(9)))
